"""A next-visit recommendation service: an HTTP API over a model that learns as check-ins arrive.

* :mod:`stlab.serve.model` -- :class:`Recommender`: :class:`stlab.online.OnlineCountModel`
  with its catalogue, users' recent check-ins and a cold-start answer; built from a data set or
  loaded from a state file.
* :mod:`stlab.serve.store` -- :class:`EventStore`: the durable check-in log (SQLite, WAL,
  ``synchronous=FULL``), replayed into the model at every start.
* :mod:`stlab.serve.app` -- :func:`create_app`: the FastAPI application (``POST /recommend``,
  ``POST /events``, ``GET /health``), every request validated by pydantic.
* :mod:`stlab.serve.launch` -- :func:`run_in_background`: start the service in a subprocess or a
  thread, wait until it is healthy, stop, kill or restart it.

Run it with ``python -m stlab.serve --data synthetic --smoke --db events.sqlite``. Needs the
``serve`` extra (FastAPI, uvicorn, httpx).

Introduced in chapter 14 (Testing and running a recommender).
"""

from stlab.serve.app import MAX_BATCH, MAX_K, create_app
from stlab.serve.launch import (
    ServiceHandle,
    free_port,
    run_app_in_background,
    run_in_background,
)
from stlab.serve.model import (
    Recommendation,
    Recommender,
    ServeConfig,
    ServiceData,
    UnknownPOIError,
    build_recommender,
    load_service_data,
)
from stlab.serve.store import CheckIn, EventStore

__all__ = [
    "MAX_BATCH", "MAX_K", "CheckIn", "EventStore", "Recommendation", "Recommender", "ServeConfig", "ServiceData",
    "ServiceHandle", "UnknownPOIError", "build_recommender", "create_app", "free_port", "load_service_data",
    "run_app_in_background", "run_in_background",
]
