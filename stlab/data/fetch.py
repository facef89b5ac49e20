"""Find, download and verify the files of registered data sets.

Resolution order for each file (first hit wins, every hit is verified):

1. an explicit folder passed by the caller (``path=``);
2. ``$STLAB_DATA/<dataset>/<file>`` -- a local copy the user names;
3. ``<project root>/data/<dataset>/<file>`` -- the project's own data folder
   (:func:`stlab.config.project_data_dir`);
4. the user cache, ``$STLAB_CACHE/<dataset>/<file>`` (default ``~/.cache/stlab``);
5. a download from the original URL into the cache.

Checksums are verified after every download and on every use of a cached or local file. A
local file that fails is an error (it is the user's file: we never overwrite it); a cached file
that fails is deleted and fetched again. Downloads go through pooch: into a temporary file in
the cache, checked against the registered hash, and renamed into place only if it matches, so a
half-written or wrong file never looks like data. Archives (zip, gzip) are kept under
``<cache>/downloads/`` and the registered file is extracted from them, verified, and renamed into
place the same way. Nothing ever prompts.

Introduced in chapter 1 (Behaviour logs).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import tempfile
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pooch
import requests

from stlab import config
from stlab.config import cache_dir, data_dir, env_setting
from stlab.data.errors import ChecksumError, DataNotFoundError
from stlab.data.registry import DataFile, Dataset, get_dataset

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks so large files use little memory."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` only if the block succeeds."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


@dataclass(frozen=True)
class Resolved:
    """Where a verified file was found: ``explicit``, ``STLAB_DATA``, ``project data``, ``cache`` or ``download``."""

    path: Path
    source: str


def _recorded_digest_path(cached: Path) -> Path:
    return cached.with_name(cached.name + ".sha256")


def verify_file(path: Path, dataset: Dataset, entry: DataFile, *, where: str) -> None:
    """Check ``path`` against the registry; raise :class:`ChecksumError` naming both hashes.

    Files without a registered sha256 are checked against the publisher's md5 when the file is
    the download itself, else against the digest recorded at first download (``<file>.sha256``).
    """
    if entry.size is not None and path.stat().st_size != entry.size:
        actual = file_digest(path)
        raise ChecksumError(
            f"{where} file {path} of data set {dataset.name!r} has {path.stat().st_size:,} bytes, "
            f"expected {entry.size:,}.\n  expected sha256: {entry.sha256}\n  actual sha256:   {actual}\n"
            f"Fix: replace it with the original from {entry.url or dataset.homepage}."
        )
    if entry.sha256 is not None:
        expected, actual, algorithm = entry.sha256, file_digest(path), "sha256"
    elif entry.download_md5 is not None and entry.member is None and not entry.gunzip:
        expected, actual, algorithm = entry.download_md5, file_digest(path, "md5"), "md5"
    else:
        recorded = _recorded_digest_path(path)
        actual = file_digest(path)
        if not recorded.exists():
            warnings.warn(
                f"{path.name} of {dataset.name!r} has no published checksum; its sha256 is {actual}. "
                "Pin it in the registry to make later uses verifiable.",
                stacklevel=3,
            )
            return
        expected, algorithm = recorded.read_text().split()[0], "sha256"
    if actual != expected:
        raise ChecksumError(
            f"{where} file {path} of data set {dataset.name!r} is corrupt or not the registered "
            f"version.\n  expected {algorithm}: {expected}\n  actual {algorithm}:   {actual}\n"
            f"Fix: delete it and fetch the original from {entry.url or dataset.homepage}."
        )


@contextmanager
def _quiet_pooch() -> Iterator[None]:
    """Hide pooch's own log lines (they name pooch's API, not ours); its progress bar stays."""
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _download(url: str, dest: Path, *, known_hash: str | None, progress: bool) -> None:
    """Download ``url`` to ``dest`` through pooch, checking ``known_hash`` (``"sha256:..."``).

    Pooch streams into a temporary file beside ``dest`` and renames it only when the hash
    matches; on a mismatch the temporary file is deleted and nothing is left behind.

    Raises:
        ChecksumError: the download does not match ``known_hash``.
        requests.RequestException: the server could not be reached or refused the file.
    """
    timeout = float(env_setting("download_timeout") or 30)
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=timeout,
                                      headers={"User-Agent": "stlab-data/0.1"})
    try:
        with _quiet_pooch():
            pooch.retrieve(url, known_hash=known_hash, fname=dest.name, path=dest.parent, downloader=downloader)
    except ValueError as err:
        if "hash" not in str(err):
            raise DataNotFoundError(f"cannot download {url}: {err}") from None
        raise ChecksumError(
            f"download of {url} is corrupt or not the registered version; it was discarded.\n  {err}\n"
            "Fix: retry later, or download it by hand and put it in a folder named by STLAB_DATA."
        ) from None


def _known_hash(sha256: str | None, md5: str | None) -> str | None:
    if sha256 is not None:
        return f"sha256:{sha256}"
    return None if md5 is None else f"md5:{md5}"


def _download_archive(url: str, md5: str | None, progress: bool) -> Path:
    """Return a verified local copy of an archive, downloading it into the cache when needed."""
    dest = cache_dir() / "downloads" / url.rstrip("/").rsplit("/", 1)[-1]
    # Pooch re-downloads a cached archive whose md5 no longer matches.
    _download(url, dest, known_hash=_known_hash(None, md5), progress=progress)
    return dest


def _fetch_into_cache(dataset: Dataset, entry: DataFile, dest: Path, progress: bool) -> None:
    """Download ``entry`` from its original URL and place it, verified, at ``dest``."""
    assert entry.url is not None
    if entry.member is not None:
        archive = _download_archive(entry.url, entry.download_md5, progress)
        with zipfile.ZipFile(archive) as zf, atomic_path(dest) as tmp:
            try:
                with zf.open(entry.member) as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
            except KeyError:
                raise DataNotFoundError(
                    f"archive {entry.url} has no member {entry.member!r} (members: "
                    f"{zf.namelist()[:10]} ...). The publisher changed its layout: update the registry."
                ) from None
            verify_file(tmp, dataset, entry, where="downloaded")
    elif entry.gunzip:
        archive = _download_archive(entry.url, entry.download_md5, progress)
        with gzip.open(archive, "rb") as src, atomic_path(dest) as tmp:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
            verify_file(tmp, dataset, entry, where="downloaded")
    else:
        _download(entry.url, dest, known_hash=_known_hash(entry.sha256, entry.download_md5), progress=progress)
        try:
            verify_file(dest, dataset, entry, where="downloaded")
        except ChecksumError:
            dest.unlink()
            raise
    if entry.sha256 is None and entry.download_md5 is None:
        # Trust on first use: record what we got so every later use is checked against it.
        with atomic_path(_recorded_digest_path(dest)) as tmp:
            tmp.write_text(f"{file_digest(dest)}  {dest.name}\n")


def _not_found_message(dataset: Dataset, entry: DataFile, looked: list[str]) -> str:
    lines = [f"Data set {dataset.name!r}: file {entry.name!r} was not found.", "Looked in:"]
    lines += [f"  - {item}" for item in looked]
    lines.append("Fixes (any one):")
    if entry.url and entry.manual:
        lines.append(f"  - download it by hand from {entry.url}")
    elif entry.url:
        lines.append(f"  - connect to the internet: it is downloaded from {entry.url}")
    elif dataset.subset_of:
        lines.append(
            f"  - it is a local subset of {dataset.subset_of!r}; loaders can cut it from the full "
            f"data set ({get_dataset(dataset.subset_of).homepage})"
        )
    lines.append(
        f"  - put the file at <folder>/{dataset.name}/{entry.name} and set STLAB_DATA=<folder> "
        "(for example STLAB_DATA=../shared/data)"
    )
    lines.append(f"  - or put it in the project's data folder: {config.project_data_dir() / dataset.name / entry.name}")
    lines.append('  - or use the simulated city: dataset="synthetic" (make book DATASET=synthetic)')
    return "\n".join(lines)


def fetch_file(
    dataset: str | Dataset,
    filename: str,
    *,
    path: str | os.PathLike[str] | None = None,
    download: bool | None = None,
    progress: bool = True,
) -> Resolved:
    """Return a verified local copy of one registered file, following the resolution order.

    Args:
        dataset: registry name (or entry).
        filename: the file's registered name.
        path: a folder to look in first (holding the file directly, or ``<dataset>/<file>``).
        download: allow downloading; default is yes unless ``STLAB_OFFLINE=1``.
        progress: show a progress bar while downloading.

    Raises:
        DataNotFoundError: nowhere to be found and no download possible; the message lists
            where it looked and the fixes.
        ChecksumError: a local file differs from the registry (never silently replaced).
    """
    ds = get_dataset(dataset) if isinstance(dataset, str) else dataset
    entry = ds.file(filename)
    if download is None:
        download = env_setting("offline") not in {"1", "true", "yes"}
    looked: list[str] = []

    candidates: list[tuple[str, Path]] = []
    if path is not None:
        base = Path(path).expanduser()
        candidates += [("explicit", base / entry.name), ("explicit", base / ds.name / entry.name)]
    local = data_dir()
    if local is not None:
        candidates.append(("STLAB_DATA", local / ds.name / entry.name))
    else:
        looked.append("$STLAB_DATA (not set)")
    candidates.append(("project data", config.project_data_dir() / ds.name / entry.name))
    for source, candidate in candidates:
        if candidate.is_file():
            verify_file(candidate, ds, entry, where=f"local ({source})")
            return Resolved(candidate, source)
        looked.append(f"{source}: {candidate} (missing)")

    cached = cache_dir() / ds.name / entry.name
    if cached.is_file():
        try:
            verify_file(cached, ds, entry, where="cached")
            return Resolved(cached, "cache")
        except ChecksumError as err:
            log.warning("%s\nDeleting the cached copy and fetching it again.", err)
            warnings.warn(f"corrupt cached file {cached} removed; fetching it again", stacklevel=2)
            cached.unlink()
            if not (download and entry.url and not entry.manual):
                raise ChecksumError(
                    f"{err}\nThe corrupt cached copy was deleted, and it cannot be fetched again "
                    "here (offline or no download URL)."
                ) from None
    else:
        looked.append(f"cache: {cached} (missing)")

    if not entry.url:
        looked.append("download: no original URL for this file")
    elif entry.manual:
        looked.append(f"download: needs a login or a click at {entry.url}")
    elif not download:
        looked.append("download: disabled (STLAB_OFFLINE is set)")
    else:
        try:
            _fetch_into_cache(ds, entry, cached, progress)
            return Resolved(cached, "download")
        except (requests.RequestException, OSError, DataNotFoundError) as err:
            looked.append(f"download: {entry.url} failed ({err})")
    raise DataNotFoundError(_not_found_message(ds, entry, looked))


def fetch(
    dataset: str,
    files: list[str] | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    download: bool | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Resolve several files of one data set (all non-manual files by default).

    Returns:
        A mapping from registered file name to a verified local path.
    """
    ds = get_dataset(dataset)
    names = files if files is not None else [f.name for f in ds.files if not f.manual]
    return {
        name: fetch_file(ds, name, path=path, download=download, progress=progress).path
        for name in names
    }
