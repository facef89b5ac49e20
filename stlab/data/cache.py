"""Processed-data cache: Parquet files fingerprinted by their settings and inputs.

A processed table is stored as ``<cache>/processed/<key>.parquet`` with a JSON sidecar holding
the fingerprint (a hash of the preprocessing settings, the input files' checksums and the
cache format version) and the Parquet file's own sha256. On each use the sidecar's fingerprint
must match the one asked for and the Parquet file must match its recorded checksum; otherwise
the table is rebuilt. Both files are written atomically.

Introduced in chapter 1 (Behaviour logs).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from stlab.config import cache_dir
from stlab.data.fetch import atomic_path, file_digest

log = logging.getLogger(__name__)

#: Version of the code that builds processed tables, part of every fingerprint. Bump it in the
#: same commit as any change to a loader's ``build`` (parsing, dtypes, filters, column order) or
#: to the layout of processed files: the fingerprint sees settings and input checksums, not code,
#: so without a bump every reader would keep loading tables made by the old code.
CACHE_FORMAT = 1


def fingerprint(settings: Mapping[str, Any], inputs: Sequence[str]) -> str:
    """Stable hash of preprocessing settings, input checksums and :data:`CACHE_FORMAT`."""
    payload = json.dumps(
        {"settings": settings, "inputs": list(inputs), "format": CACHE_FORMAT},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def cached_frame(
    key: str,
    settings: Mapping[str, Any],
    inputs: Sequence[str],
    build: Callable[[], pd.DataFrame],
    *,
    directory: Path | None = None,
) -> pd.DataFrame:
    """Return the processed table ``key``, rebuilding it when settings, inputs or file changed.

    Args:
        key: file stem, unique per kind of table (for example ``"gowalla-nyc.checkins"``).
        settings: every setting that changes the output (bounding box, filters, ...).
        inputs: checksums (or other identities) of the raw inputs.
        build: makes the table from raw inputs.
        directory: where to keep it; default ``<STLAB_CACHE>/processed``.
    """
    directory = directory or cache_dir() / "processed"
    table_path = directory / f"{key}.parquet"
    meta_path = directory / f"{key}.json"
    wanted = fingerprint(settings, inputs)
    if table_path.exists() and meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            meta = {}
        if meta.get("fingerprint") == wanted:
            if meta.get("sha256") == file_digest(table_path):
                return pd.read_parquet(table_path)
            log.warning("processed file %s does not match its recorded checksum; rebuilding", table_path)
        else:
            log.info("settings or inputs of %s changed; rebuilding", key)
    frame = build()
    with atomic_path(table_path) as tmp:
        frame.to_parquet(tmp, index=False)
    meta = {"fingerprint": wanted, "sha256": file_digest(table_path), "settings": settings,
            "inputs": list(inputs), "rows": len(frame)}
    with atomic_path(meta_path) as tmp:
        tmp.write_text(json.dumps(meta, indent=2, default=str))
    return frame
