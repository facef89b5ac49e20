"""Provenance lines for results: data checksum, seed, package versions and hardware.

Every chapter ends by printing :func:`provenance`, so a reader can tell whether their rerun
should give the same numbers. Introduced in chapter 1 (Behaviour logs).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
from pathlib import Path

import pandas as pd


def frame_checksum(frame: pd.DataFrame) -> str:
    """Short sha256 of a table's content (row order and values), independent of memory layout."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def provenance(data: pd.DataFrame | None = None, *, dataset: str = "", seed: int | None = None,
               packages: tuple[str, ...] = ("stlab", "numpy", "pandas")) -> pd.Series:
    """What produced a result: data set and content checksum, seed, versions, machine."""
    info: dict[str, str] = {}
    if dataset:
        info["dataset"] = dataset
    if data is not None:
        info["data rows"] = f"{len(data):,}"
        info["data sha256 (content)"] = frame_checksum(data)
    if seed is not None:
        info["seed"] = str(seed)
    info["python"] = platform.python_version()
    for package in packages:
        info[package] = _version(package)
    info["machine"] = f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}"
    return pd.Series(info, name="provenance")


def markdown_table(rows: list[dict[str, object]], *, significant: int = 4) -> str:
    """A Markdown table of ``rows`` (dicts with the same keys, the columns): floats of 10 and
    more with one decimal and thousands separators, smaller ones to ``significant`` digits,
    ints with separators, ``None`` as ``--``."""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = ["--" if v is None else f"{v:,.1f}" if isinstance(v, float) and abs(v) >= 10
                 else f"{v:.{significant}g}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)
                 for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(path: str | Path, text: str) -> Path:
    """Write a results file atomically (a temporary file, then a rename), creating its folder."""
    from stlab.data.fetch import atomic_path

    path = Path(path)
    with atomic_path(path) as temporary:
        temporary.write_text(text)
    return path
