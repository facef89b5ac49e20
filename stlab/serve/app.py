"""The HTTP API of the recommendation service (FastAPI).

Three endpoints:

* ``POST /recommend`` -- ``{user, time, lat, lon, k}``: the ``k`` POIs most likely to be the
  user's next check-in, with ids, scores and coordinates. A user without a check-in gets the
  cold-start answer (popular at this local hour, near ``lat, lon``), flagged ``cold_start``.
* ``POST /events`` -- one check-in ``{user, poi, time, lat?, lon?, event_id?}`` or a list of
  them: stored durably (:mod:`stlab.serve.store`), then learned by the model, and only then
  acknowledged. A check-in at an unknown POI adds it when it carries coordinates.
* ``GET /health`` -- the model, catalogue sizes, check-ins learned and stored, uptime.

Every request body is validated by pydantic before anything runs: a time without an offset or
not in ISO 8601, a coordinate out of range, ``k <= 0``, an unknown field -- each is answered
``422`` with the offending field named in ``detail[i].loc``.

The model is not thread-safe and each write must reach the log before the model, so requests
are served one at a time under a lock (scoring one user over a city's POIs takes about a
millisecond; the commit of a check-in, one flush to disk).

Introduced in chapter 14 (Testing and running a recommender).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

try:
    from fastapi import FastAPI, Request
    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
except ImportError as err:  # an optional extra
    raise ImportError("stlab.serve needs FastAPI and uvicorn: pip install 'stlab[serve]' "
                      "(or pip install fastapi uvicorn httpx)") from err
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from stlab.serve.model import Recommender
from stlab.serve.store import CheckIn, EventStore

#: The most POIs one request may ask for.
MAX_K = 1000
#: The most check-ins one ``POST /events`` may carry.
MAX_BATCH = 10_000


def _id_as_text(value: Any) -> Any:
    """Ids may be sent as integers or strings; they are compared as text."""
    if isinstance(value, bool):  # pydantic turns a ValueError, not a TypeError, into a 422
        raise ValueError("an id is a string or an integer, not a boolean")  # noqa: TRY004
    return str(value) if isinstance(value, int) else value


def _time_as_text(value: Any) -> Any:
    """Only ISO 8601 text (or a datetime, in process): a bare number could be seconds or
    milliseconds, and has no zone a reader can see."""
    if isinstance(value, (int, float)):
        raise ValueError(  # noqa: TRY004 -- pydantic turns a ValueError, not a TypeError, into a 422
            "give the time as ISO 8601 text with an offset, such as 2024-05-01T18:30:00+02:00")
    return value


Id = Annotated[str, BeforeValidator(_id_as_text), StringConstraints(strip_whitespace=True, min_length=1,
                                                                    max_length=128)]
IsoTime = Annotated[AwareDatetime, BeforeValidator(_time_as_text)]
Latitude = Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False, description="degrees north")]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False, description="degrees east")]


class _Located(BaseModel):
    """A body with an optional place: both coordinates or neither."""

    model_config = ConfigDict(extra="forbid")

    lat: Latitude | None = None
    lon: Longitude | None = Field(None, validate_default=True)

    @field_validator("lon")
    @classmethod
    def _lat_and_lon_together(cls, lon: float | None, info: ValidationInfo) -> float | None:
        lat = info.data.get("lat")
        # A bad lat has its own error and is absent from info.data; say nothing more about it here.
        if "lat" in info.data and (lat is None) != (lon is None):
            raise ValueError("give lat and lon together, or neither")
        return lon


class RecommendRequest(_Located):
    """``POST /recommend``: who, when, where, how many."""

    user: Id = Field(description="the user's id (string or integer)")
    time: IsoTime = Field(description="ISO 8601 with an offset, e.g. 2024-05-01T18:30:00+02:00")
    k: int = Field(10, ge=1, le=MAX_K, description="how many POIs")


class RecommendedPOI(BaseModel):
    rank: int
    poi: int | str
    score: float = Field(description="the model's probability of this POI (all POIs sum to one)")
    lat: float
    lon: float


class RecommendResponse(BaseModel):
    user: str
    cold_start: bool = Field(description="no check-in of this user yet: popular at this hour near lat, lon")
    model: str
    time: datetime
    k: int
    items: list[RecommendedPOI]


class EventIn(_Located):
    """One check-in."""

    user: Id
    poi: Id
    time: IsoTime
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        None, description="your unique name for this check-in: a retry with the same id is not counted twice")


class EventBatch(RootModel[Annotated[list[EventIn], Field(min_length=1, max_length=MAX_BATCH)]]):
    """One check-in, or a list of them."""

    @model_validator(mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value


class EventsResponse(BaseModel):
    accepted: int = Field(description="check-ins stored and learned")
    duplicates: int = Field(description="check-ins whose event_id was already stored (not counted again)")
    ids: list[int | None] = Field(description="log position of each check-in (null for a duplicate)")
    events_stored: int


class HealthResponse(BaseModel):
    status: str
    model: str
    data: str
    timezone: str
    users: int
    pois: int
    events_learned: int = Field(description="check-ins in the model: the data set's and the service's")
    events_stored: int = Field(description="check-ins in the service's log")
    events_replayed: int = Field(description="check-ins replayed from the log at start")
    replay_seconds: float
    uptime_seconds: float
    database: str
    base_fingerprint: str


def _json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as text: a 422 echoes the bad input, and JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 answer, which can also echo an input such as ``NaN``."""
    return JSONResponse(status_code=422, content={"detail": _json_safe(jsonable_encoder(exc.errors()))})


class Service:
    """The recommender, its event log and the lock that serialises them.

    Args:
        recommender: the model as built or loaded (before any check-in of the log).
        store: the event log.
        data_label: what the model was built from, for ``/health``.
        replay: learn the log's check-ins now (what a restart must do).

    Raises:
        ValueError: the recommender already holds check-ins learned through a service, so
            replaying the log would count them twice.
    """

    def __init__(self, recommender: Recommender, store: EventStore, *, data_label: str = "",
                 replay: bool = True) -> None:
        self.recommender, self.store, self.data_label = recommender, store, data_label
        self.lock = threading.Lock()
        self.events_replayed, self.replay_seconds = 0, 0.0
        if replay:
            if recommender.service_events:
                raise ValueError(f"this model already learned {recommender.service_events} check-ins through a "
                                 "service; replaying the log would count them twice. Start from the model as built "
                                 "(or a state saved before serving)")
            start = time.perf_counter()
            for batch in store.replay():
                recommender.learn([stored.check_in for stored in batch])
                self.events_replayed += len(batch)
            self.replay_seconds = time.perf_counter() - start
        self.started = time.monotonic()

    def recommend(self, request: RecommendRequest) -> RecommendResponse:
        r = self.recommender
        with self.lock:
            top, scores, cold = r.rank(request.user, int(request.time.timestamp() // 1), lat=request.lat,
                                       lon=request.lon, k=request.k)
            items = [RecommendedPOI(rank=rank, poi=r.poi_ids[i], score=float(score), lat=float(r.poi_lat[i]),
                                    lon=float(r.poi_lon[i]))
                     for rank, (i, score) in enumerate(zip(top.tolist(), scores.tolist()), start=1)]
        return RecommendResponse(user=request.user, cold_start=cold, model=r.name, time=request.time, k=len(items),
                                 items=items)

    def post_events(self, events: list[EventIn]) -> EventsResponse:
        check_ins = [CheckIn(user_id=e.user, poi_id=e.poi, time=int(e.time.timestamp() // 1), lat=e.lat, lon=e.lon,
                             event_id=e.event_id) for e in events]
        with self.lock:
            problems = self.recommender.check(check_ins)
            if problems:
                raise RequestValidationError([{"type": "value_error", "loc": ("body", p.position, "poi"),
                                               "msg": str(p), "input": p.poi_id} for p in problems])
            ids = self.store.append(check_ins)  # committed to disk before the model sees it
            self.recommender.learn([c for c, i in zip(check_ins, ids) if i is not None])
            stored = self.store.count()
        accepted = sum(i is not None for i in ids)
        return EventsResponse(accepted=accepted, duplicates=len(ids) - accepted, ids=ids, events_stored=stored)

    def health(self) -> HealthResponse:
        with self.lock:
            r = self.recommender
            return HealthResponse(
                status="ok", model=r.name, data=self.data_label, timezone=r.timezone, users=r.num_users,
                pois=r.num_pois, events_learned=r.num_events, events_stored=self.store.count(),
                events_replayed=self.events_replayed, replay_seconds=self.replay_seconds,
                uptime_seconds=time.monotonic() - self.started, database=str(self.store.path),
                base_fingerprint=r.base_fingerprint)


def create_app(recommender: Recommender, db: str | Path | EventStore, *, data_label: str = "",
               replay: bool = True) -> FastAPI:
    """The service as a FastAPI application.

    Args:
        recommender: the model as built (:func:`~stlab.serve.model.build_recommender`) or
            loaded (:meth:`~stlab.serve.model.Recommender.load`); the service updates it in place.
        db: the SQLite event log (a path, or an open :class:`~stlab.serve.store.EventStore`).
        data_label: what the model was built from, shown by ``/health``.
        replay: replay the log into the model now, as every start of a service must; ``False``
            only for a fresh log.

    Raises:
        ValueError: the log was written for another model (see
            :class:`~stlab.serve.store.EventStore`), or the model already holds service check-ins.
    """
    store = db if isinstance(db, EventStore) else EventStore(db, base=recommender.base_fingerprint)
    store.bind(recommender.base_fingerprint)
    service = Service(recommender, store, data_label=data_label, replay=replay)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()  # every acknowledged check-in is already on disk

    app = FastAPI(title="stlab next-visit recommender", version="1",
                  description="Next-POI recommendations from an online count model; check-ins are logged durably "
                              "and learned as they arrive.", lifespan=lifespan)
    app.state.service = service
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]

    @app.post("/recommend", response_model=RecommendResponse)
    def recommend(request: RecommendRequest) -> RecommendResponse:
        """The k POIs most likely to be the user's next check-in."""
        return service.recommend(request)

    @app.post("/events", response_model=EventsResponse)
    def post_events(batch: EventBatch) -> EventsResponse:
        """Store check-ins durably, learn them, then acknowledge."""
        return service.post_events(batch.root)

    @app.get("/health", response_model=HealthResponse)
    def health() -> HealthResponse:
        """The model, its catalogue and the log."""
        return service.health()

    return app


__all__ = ["MAX_BATCH", "MAX_K", "EventBatch", "EventIn", "EventsResponse", "HealthResponse", "RecommendRequest",
           "RecommendResponse", "RecommendedPOI", "Service", "create_app"]
