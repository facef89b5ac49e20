"""Start the service from Python, wait until it is healthy, stop it -- or kill it.

:func:`run_in_background` runs ``python -m stlab.serve`` in a subprocess (as it runs in
production, and so that it can be killed with ``SIGKILL`` to show that no acknowledged check-in
is lost), or in a thread of this process. :func:`run_app_in_background` serves an application
you built yourself in a thread. Either way you get a :class:`ServiceHandle` with the service's
``url`` and a ``stop()``; it is also a context manager::

    with run_in_background("synthetic", smoke=True) as service:
        httpx.post(f"{service.url}/recommend", json={...})

Introduced in chapter 14 (Testing and running a recommender).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
import uvicorn
from fastapi import FastAPI

import stlab

#: Seconds between two health checks while waiting for a service to come up.
POLL_SECONDS = 0.1


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now (the system picks it; another process could still take
    it before the service binds it, which on a test machine is rare enough)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class ServiceHandle:
    """A running service.

    Attributes:
        url: its address, e.g. ``http://127.0.0.1:8123``.
        db: its event log.
        command: the command line of a subprocess service (``None`` in process).
        log_path: where a subprocess service writes its output.
    """

    url: str
    db: Path
    command: list[str] | None = None
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _server: uvicorn.Server | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def health(self, timeout: float = 5.0) -> dict[str, Any]:
        """``GET /health``, decoded."""
        response = httpx.get(f"{self.url}/health", timeout=timeout)
        response.raise_for_status()
        return response.json()

    def client(self, timeout: float = 30.0) -> httpx.Client:
        """An HTTP client for this service (close it, or use it in a ``with``)."""
        return httpx.Client(base_url=self.url, timeout=timeout)

    def log(self) -> str:
        """What a subprocess service has written so far (``""`` in process)."""
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 15.0) -> None:
        """Shut the service down gracefully (``SIGTERM`` for a subprocess); idempotent."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout)
        elif self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout)

    def kill(self) -> None:
        """Kill a subprocess service with ``SIGKILL``, as a crash would: no shutdown code runs."""
        if self.process is None:
            raise RuntimeError("only a service in a subprocess can be killed; start it with in_process=False")
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def restart(self, timeout: float = 120.0) -> ServiceHandle:
        """Start a stopped or killed subprocess service again with the same command (same port,
        same log), and wait until it is healthy."""
        if self.command is None:
            raise RuntimeError("only a service in a subprocess can be restarted")
        if self.running:
            raise RuntimeError("the service is still running; stop() or kill() it first")
        self.process = _spawn(self.command, self.log_path)  # type: ignore[arg-type]
        _wait_until_healthy(self, timeout)
        return self

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _spawn(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    # The child imports this very stlab, installed or not.
    package_root = str(Path(stlab.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    with open(log_path, "ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


def _wait_until_healthy(handle: ServiceHandle, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not handle.running:
            code = handle.process.returncode if handle.process is not None else None
            raise RuntimeError(f"the service stopped (exit code {code}) before it was ready; its output ends:\n"
                               + handle.log()[-3000:])
        try:
            if httpx.get(f"{handle.url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(POLL_SECONDS)
    handle.stop()
    raise TimeoutError(f"the service at {handle.url} was not healthy after {timeout:.0f} s; its output ends:\n"
                       + handle.log()[-3000:])


def run_app_in_background(app: FastAPI, *, host: str = "127.0.0.1", port: int | None = None,
                          db: str | Path = "", timeout: float = 60.0) -> ServiceHandle:
    """Serve ``app`` with uvicorn in a thread of this process; return once it is listening.

    Args:
        app: for instance ``create_app(recommender, db)``.
        host, port: where to listen (``port=None``: a free port).
        db: the app's event log, recorded in the handle for reference.
    """
    port = port or free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name=f"stlab.serve:{port}", daemon=True)
    handle = ServiceHandle(url=f"http://{host}:{port}", db=Path(db), _server=server, _thread=thread)
    thread.start()
    _wait_until_healthy(handle, timeout)
    return handle


def run_in_background(data: str = "synthetic", db: str | Path | None = None, *, smoke: bool = False, seed: int = 0,
                      timezone: str | None = None, model_state: str | Path | None = None, host: str = "127.0.0.1",
                      port: int | None = None, in_process: bool = False, extra_args: Sequence[str] = (),
                      timeout: float = 120.0) -> ServiceHandle:
    """Start the service on ``data`` and return once ``/health`` answers.

    Args:
        data: ``"synthetic"``, a registered check-in data set or a file (see ``python -m stlab.serve -h``).
        db: the event log; ``None``: a new one in a temporary folder.
        smoke: the small synthetic city, so the service starts in about a second.
        seed: seed of the synthetic city and of the distance fit.
        timezone: the city's zone (needed for any data but ``"synthetic"``).
        model_state: start from a state saved by ``--save-state`` instead of building from ``data``.
        host, port: where to listen (``port=None``: a free port).
        in_process: serve in a thread of this process instead of a subprocess (it cannot then be
            killed or restarted; stop it with ``stop()``).
        extra_args: more command-line options for the subprocess (``["--weight", "0.7"]``).
        timeout: seconds to wait for the service to become healthy.

    Raises:
        RuntimeError: the service exited before it was ready (its output is in the message).
        TimeoutError: it did not become healthy in time.
    """
    db = Path(db) if db is not None else Path(tempfile.mkdtemp(prefix="stlab-serve-")) / "events.sqlite"
    port = port or free_port(host)
    if in_process:
        from stlab.serve.app import create_app
        from stlab.serve.model import Recommender, build_recommender, load_service_data

        if model_state is not None:
            recommender, label = Recommender.load(model_state), f"state {model_state}"
        else:
            source = load_service_data(data, smoke=smoke, seed=seed, timezone=timezone)
            recommender, label = build_recommender(source), source.label
        return run_app_in_background(create_app(recommender, db, data_label=label), host=host, port=port, db=db,
                                     timeout=timeout)
    command = [sys.executable, "-m", "stlab.serve", "--data", data, "--db", str(db), "--host", host,
               "--port", str(port), "--seed", str(seed), "--log-level", "warning"]
    command += ["--smoke"] if smoke else []
    command += ["--timezone", timezone] if timezone else []
    command += ["--model-state", str(model_state)] if model_state is not None else []
    command += list(extra_args)
    log_path = db.with_name(db.name + ".log")
    handle = ServiceHandle(url=f"http://{host}:{port}", db=db, command=command, log_path=log_path)
    handle.process = _spawn(command, log_path)
    _wait_until_healthy(handle, timeout)
    return handle


__all__ = ["ServiceHandle", "free_port", "run_app_in_background", "run_in_background"]
