"""Typed settings and the one override order used everywhere.

Override order, highest first (introduced in chapter 1):

1. an explicit argument -- in a chapter, a papermill parameter;
2. an environment variable ``STLAB_<NAME>`` (for example ``STLAB_DATASET=synthetic``);
3. the default written in the dataclass.

Paths (see :mod:`stlab.data.fetch` for the order in which they are searched):

* ``STLAB_DATA`` -- a folder holding data sets as ``<name>/<file>`` (read only, never written);
* ``<project root>/data/`` -- the project's own data folder, laid out the same way; git ignores
  everything in it but its README (:func:`project_data_dir`);
* ``STLAB_CACHE`` -- where downloads and processed files go (default ``~/.cache/stlab``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def env_setting(name: str) -> str | None:
    """Return ``$STLAB_<NAME>`` or ``None`` when it is unset or empty."""
    value = os.environ.get(f"STLAB_{name.upper()}", "").strip()
    return value or None


def data_dir() -> Path | None:
    """The user's local data folder (``$STLAB_DATA``), if set."""
    value = env_setting("data")
    return Path(value).expanduser() if value else None


#: The project's root: the folder holding ``stlab/``, ``chapters/`` and ``data/``.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def project_data_dir() -> Path:
    """The project's own data folder, ``<project root>/data`` (looked in after ``$STLAB_DATA``)."""
    return PROJECT_ROOT / "data"


def cache_dir() -> Path:
    """Where downloads and processed files are kept (``$STLAB_CACHE``, default ``~/.cache/stlab``)."""
    value = env_setting("cache")
    if value:
        return Path(value).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "stlab"


def _coerce(value: str, target: Any) -> Any:
    """Turn an environment string into the type of the field's default."""
    if isinstance(target, bool):
        if value.lower() in {"1", "true", "yes", "on"}:
            return True
        if value.lower() in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"expected a boolean (1/0, true/false), got {value!r}")
    if isinstance(target, int):
        return int(value)
    if isinstance(target, float):
        return float(value)
    return value


def resolve(cls: type[T], **explicit: Any) -> T:
    """Build the dataclass ``cls`` by the override order: explicit > environment > default.

    An explicit value of ``None`` counts as "not given", so a chapter's parameters cell can
    leave a setting to the environment.

    Example:
        >>> from stlab.config import resolve, ChapterSettings
        >>> resolve(ChapterSettings, seed=3).seed
        3
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(explicit) - names
    if unknown:
        raise TypeError(
            f"unknown setting(s) {sorted(unknown)} for {cls.__name__}; known: {sorted(names)}"
        )
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if explicit.get(field.name) is not None:
            values[field.name] = explicit[field.name]
            continue
        from_env = env_setting(field.name)
        if from_env is not None:
            default = (
                field.default
                if field.default is not dataclasses.MISSING
                else field.default_factory()  # type: ignore[misc]
            )
            try:
                values[field.name] = _coerce(from_env, default)
            except ValueError as err:
                raise ValueError(f"STLAB_{field.name.upper()}: {err}") from None
    return cls(**values)


@dataclasses.dataclass(frozen=True)
class ChapterSettings:
    """Settings shared by every chapter's parameters cell.

    Attributes:
        dataset: (str) name of the data set the chapter studies; ``"synthetic"`` needs no files.
        seed: (int) seed for every random number generator the chapter uses.
        smoke: (bool) run on a small slice so the chapter finishes in seconds (tests use this).
    """

    dataset: str = "gowalla-nyc"
    seed: int = 0
    smoke: bool = False
