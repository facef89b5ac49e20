"""Resolution order, checksum verification on every use, downloads, and the errors' wording.

Downloads are served by a local HTTP server over a temporary folder: no test uses the network.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import io
import socket
import threading
import zipfile

import pytest

from stlab.data import ChecksumError, DataNotFoundError, fetch, fetch_file, registry
from stlab.data.registry import DataFile, Dataset

PAYLOAD = b"user\ttime\n1\t2010-01-01T00:00:00Z\n"


def make_dataset(monkeypatch, files: tuple[DataFile, ...], name: str = "toy") -> Dataset:
    dataset = Dataset(name=name, description="toy", kind="checkins", homepage="https://example.org",
                      licence="none", citation="none", files=files)
    monkeypatch.setitem(registry.REGISTRY, name, dataset)
    return dataset


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Remote:
    """A folder served over HTTP on localhost, standing in for the publisher's server."""

    def __init__(self, folder, port):
        self.folder, self.port = folder, port

    def __truediv__(self, name):
        return self.folder / name

    def url(self, name):
        return f"http://127.0.0.1:{self.port}/{name}"


@pytest.fixture
def remote(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    folder = tmp_path / "remote"
    folder.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Remote(folder, server.server_address[1])
    server.shutdown()
    server.server_close()


def test_download_then_cache_hit(monkeypatch, remote):
    (remote / "a.tsv").write_bytes(PAYLOAD)
    make_dataset(monkeypatch, (DataFile("a.tsv", sha(PAYLOAD), len(PAYLOAD), remote.url("a.tsv")),))
    first = fetch_file("toy", "a.tsv", download=True, progress=False)
    assert first.source == "download" and first.path.read_bytes() == PAYLOAD
    (remote / "a.tsv").unlink()  # the server is gone; the cache must serve it
    second = fetch_file("toy", "a.tsv", download=True, progress=False)
    assert second.source == "cache" and second.path == first.path


def test_resolution_order(monkeypatch, tmp_path, remote):
    (remote / "a.tsv").write_bytes(PAYLOAD)
    make_dataset(monkeypatch, (DataFile("a.tsv", sha(PAYLOAD), len(PAYLOAD), remote.url("a.tsv")),))
    fetch_file("toy", "a.tsv", download=True, progress=False)  # fills the cache
    local = tmp_path / "local"
    (local / "toy").mkdir(parents=True)
    (local / "toy" / "a.tsv").write_bytes(PAYLOAD)
    monkeypatch.setenv("STLAB_DATA", str(local))
    assert fetch_file("toy", "a.tsv").source == "STLAB_DATA"
    explicit = tmp_path / "explicit"
    explicit.mkdir()
    (explicit / "a.tsv").write_bytes(PAYLOAD)
    resolved = fetch_file("toy", "a.tsv", path=explicit)
    assert resolved.source == "explicit" and resolved.path == explicit / "a.tsv"


def test_local_file_with_wrong_checksum_is_an_error_naming_both_hashes(monkeypatch, tmp_path):
    make_dataset(monkeypatch, (DataFile("a.tsv", sha(PAYLOAD), None, None),))
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "a.tsv").write_bytes(PAYLOAD + b"tampered\n")
    monkeypatch.setenv("STLAB_DATA", str(tmp_path))
    with pytest.raises(ChecksumError) as err:
        fetch_file("toy", "a.tsv")
    message = str(err.value)
    assert sha(PAYLOAD) in message and sha(PAYLOAD + b"tampered\n") in message and "Fix" in message
    assert (tmp_path / "toy" / "a.tsv").exists()  # never deletes the user's file


def test_wrong_size_is_reported_before_hashing_matters(monkeypatch, tmp_path):
    make_dataset(monkeypatch, (DataFile("a.tsv", sha(PAYLOAD), len(PAYLOAD) + 1, None),))
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "a.tsv").write_bytes(PAYLOAD)
    monkeypatch.setenv("STLAB_DATA", str(tmp_path))
    with pytest.raises(ChecksumError, match="bytes, expected"):
        fetch_file("toy", "a.tsv")


def test_corrupted_cache_is_refetched(monkeypatch, remote):
    (remote / "a.tsv").write_bytes(PAYLOAD)
    make_dataset(monkeypatch, (DataFile("a.tsv", sha(PAYLOAD), len(PAYLOAD), remote.url("a.tsv")),))
    cached = fetch_file("toy", "a.tsv", download=True, progress=False).path
    cached.write_bytes(PAYLOAD.replace(b"1", b"2"))  # same size, different content: bit rot
    with pytest.warns(UserWarning, match="corrupt cached file"):
        again = fetch_file("toy", "a.tsv", download=True, progress=False)
    assert again.source == "download" and again.path.read_bytes() == PAYLOAD


def test_corrupted_cache_offline_is_reported(monkeypatch, remote):
    (remote / "a.tsv").write_bytes(PAYLOAD)
    make_dataset(monkeypatch, (DataFile("a.tsv", sha(PAYLOAD), len(PAYLOAD), remote.url("a.tsv")),))
    cached = fetch_file("toy", "a.tsv", download=True, progress=False).path
    cached.write_bytes(PAYLOAD.replace(b"1", b"2"))
    with pytest.warns(UserWarning), pytest.raises(ChecksumError, match="cannot be fetched again"):
        fetch_file("toy", "a.tsv", download=False)
    assert not cached.exists()


def test_failed_download_leaves_nothing_behind(monkeypatch, remote):
    (remote / "a.tsv").write_bytes(b"something else entirely\n")
    make_dataset(monkeypatch, (DataFile("a.tsv", sha(PAYLOAD), None, remote.url("a.tsv")),))
    with pytest.raises(ChecksumError):
        fetch_file("toy", "a.tsv", download=True, progress=False)
    folder = fetch_cache_folder()
    assert not any(folder.rglob("a.tsv*")), list(folder.rglob("*"))


def fetch_cache_folder():
    from stlab.config import cache_dir

    return cache_dir()


def test_not_found_message_lists_places_and_fixes(monkeypatch):
    make_dataset(monkeypatch, (DataFile("a.tsv", sha(PAYLOAD), None, "https://example.org/a.tsv"),))
    with pytest.raises(DataNotFoundError) as err:
        fetch_file("toy", "a.tsv")  # STLAB_OFFLINE=1 in tests
    message = str(err.value)
    for needle in ("'toy'", "$STLAB_DATA (not set)", "cache:", "STLAB_OFFLINE", "STLAB_DATA=", 'dataset="synthetic"',
                   "https://example.org/a.tsv"):
        assert needle in message, needle


def test_unreachable_host_is_a_not_found_error(monkeypatch):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    make_dataset(monkeypatch, (DataFile("a.tsv", sha(PAYLOAD), None, f"http://127.0.0.1:{port}/a.tsv"),))
    with pytest.raises(DataNotFoundError, match="failed"):
        fetch_file("toy", "a.tsv", download=True, progress=False)


def test_missing_file_on_the_server_is_a_not_found_error(monkeypatch, remote):
    make_dataset(monkeypatch, (DataFile("a.tsv", sha(PAYLOAD), None, remote.url("a.tsv")),))
    with pytest.raises(DataNotFoundError, match="(?s)404.*STLAB_DATA="):
        fetch_file("toy", "a.tsv", download=True, progress=False)


def test_zip_member_with_publisher_md5(monkeypatch, remote):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("pack/a.tsv", PAYLOAD)
        zf.writestr("pack/b.tsv", PAYLOAD * 2)
    (remote / "pack.zip").write_bytes(buffer.getvalue())
    md5 = hashlib.md5(buffer.getvalue()).hexdigest()
    url = remote.url("pack.zip")
    make_dataset(monkeypatch, (
        DataFile("a.tsv", sha(PAYLOAD), None, url, member="pack/a.tsv", download_md5=md5),
        DataFile("b.tsv", sha(PAYLOAD * 2), None, url, member="pack/b.tsv", download_md5=md5),
    ))
    paths = fetch("toy", download=True, progress=False)
    assert paths["a.tsv"].read_bytes() == PAYLOAD and paths["b.tsv"].read_bytes() == PAYLOAD * 2


def test_zip_with_wrong_md5_is_refused(monkeypatch, remote):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("pack/a.tsv", PAYLOAD)
    (remote / "pack.zip").write_bytes(buffer.getvalue())
    make_dataset(monkeypatch, (DataFile("a.tsv", sha(PAYLOAD), None, remote.url("pack.zip"),
                                        member="pack/a.tsv", download_md5="0" * 32),))
    with pytest.raises(ChecksumError, match="md5"):
        fetch_file("toy", "a.tsv", download=True, progress=False)


def test_gunzip_download(monkeypatch, remote):
    (remote / "a.tsv.gz").write_bytes(gzip.compress(PAYLOAD))
    make_dataset(monkeypatch, (DataFile("a.tsv", sha(PAYLOAD), len(PAYLOAD), remote.url("a.tsv.gz"), gunzip=True),))
    assert fetch_file("toy", "a.tsv", download=True, progress=False).path.read_bytes() == PAYLOAD


def test_unpinned_file_is_recorded_on_first_download_and_checked_after(monkeypatch, remote):
    (remote / "a.tsv").write_bytes(PAYLOAD)
    make_dataset(monkeypatch, (DataFile("a.tsv", None, None, remote.url("a.tsv")),))
    with pytest.warns(UserWarning, match="no published checksum"):
        path = fetch_file("toy", "a.tsv", download=True, progress=False).path
    assert path.with_name("a.tsv.sha256").read_text().startswith(sha(PAYLOAD))
    path.write_bytes(PAYLOAD.replace(b"1", b"3"))
    with pytest.warns(UserWarning), pytest.raises(ChecksumError):
        fetch_file("toy", "a.tsv", download=False)


def test_manual_file_says_where_to_get_it(monkeypatch):
    make_dataset(monkeypatch, (DataFile("big.csv", None, None, "https://example.org/login", manual=True),))
    with pytest.raises(DataNotFoundError, match="by hand from https://example.org/login"):
        fetch_file("toy", "big.csv")


def test_unknown_names_are_clear():
    with pytest.raises(KeyError, match="registered"):
        fetch_file("no-such-data", "x")
    with pytest.raises(KeyError, match="its files are"):
        fetch_file("gowalla-nyc", "x")


def test_registry_is_well_formed():
    for dataset in registry.REGISTRY.values():
        assert dataset.licence and dataset.citation and dataset.homepage.startswith("http")
        names = [f.name for f in dataset.files]
        assert len(names) == len(set(names))
        for f in dataset.files:
            assert f.sha256 is None or (len(f.sha256) == 64 and int(f.sha256, 16) >= 0)
            assert f.url is None or f.url.startswith(("https://", "http://"))
            assert f.url or dataset.subset_of or f.manual or dataset.name in {"taobao-userbehavior"}
            if f.member or f.gunzip:
                assert f.url


def test_full_and_subset_forms_are_both_registered():
    subset = registry.REGISTRY["gowalla-nyc"]
    assert subset.subset_of == "gowalla"
    full = registry.REGISTRY["gowalla"].files[0]
    assert full.gunzip and full.size == 394_645_737 and full.sha256.startswith("4e02ea12")
    assert dataclasses.asdict(subset.files[0])["sha256"].startswith("82bde513")


def test_project_data_folder_sits_between_stlab_data_and_the_cache(monkeypatch, tmp_path, remote, empty_project_data):
    (remote / "a.tsv").write_bytes(PAYLOAD)
    make_dataset(monkeypatch, (DataFile("a.tsv", sha(PAYLOAD), len(PAYLOAD), remote.url("a.tsv")),))
    assert fetch_file("toy", "a.tsv", download=True, progress=False).source == "download"  # fills the cache
    (empty_project_data / "toy").mkdir()
    (empty_project_data / "toy" / "a.tsv").write_bytes(PAYLOAD)
    resolved = fetch_file("toy", "a.tsv")
    assert resolved.source == "project data" and resolved.path == empty_project_data / "toy" / "a.tsv"
    local = tmp_path / "local"
    (local / "toy").mkdir(parents=True)
    (local / "toy" / "a.tsv").write_bytes(PAYLOAD)
    monkeypatch.setenv("STLAB_DATA", str(local))
    assert fetch_file("toy", "a.tsv").source == "STLAB_DATA"


def test_project_data_file_is_verified_and_never_deleted(monkeypatch, empty_project_data):
    make_dataset(monkeypatch, (DataFile("a.tsv", sha(PAYLOAD), None, None),))
    (empty_project_data / "toy").mkdir()
    (empty_project_data / "toy" / "a.tsv").write_bytes(b"edited by hand\n")
    with pytest.raises(ChecksumError, match="project data"):
        fetch_file("toy", "a.tsv")
    assert (empty_project_data / "toy" / "a.tsv").exists()


def test_not_found_message_names_the_project_data_folder(monkeypatch, empty_project_data):
    make_dataset(monkeypatch, (DataFile("a.tsv", sha(PAYLOAD), None, None),))
    with pytest.raises(DataNotFoundError) as err:
        fetch_file("toy", "a.tsv")
    assert str(empty_project_data / "toy" / "a.tsv") in str(err.value)


def test_downloads_go_through_pooch_with_the_registered_hash(monkeypatch, remote):
    import pooch

    (remote / "a.tsv").write_bytes(PAYLOAD)
    make_dataset(monkeypatch, (DataFile("a.tsv", sha(PAYLOAD), len(PAYLOAD), remote.url("a.tsv")),))
    calls = []
    real_retrieve = pooch.retrieve

    def spy(url, known_hash=None, **kwargs):
        calls.append((url, known_hash, kwargs["downloader"].progressbar))
        return real_retrieve(url, known_hash=known_hash, **kwargs)

    monkeypatch.setattr(pooch, "retrieve", spy)
    fetch_file("toy", "a.tsv", download=True, progress=True)
    assert calls == [(remote.url("a.tsv"), f"sha256:{sha(PAYLOAD)}", True)]


def test_md5_mismatch_of_a_plain_download_leaves_nothing_behind(monkeypatch, remote):
    (remote / "a.tsv").write_bytes(PAYLOAD)
    make_dataset(monkeypatch, (DataFile("a.tsv", None, None, remote.url("a.tsv"), download_md5="0" * 32),))
    with pytest.raises(ChecksumError, match="(?s)discarded.*md5:0{32}"):
        fetch_file("toy", "a.tsv", download=True, progress=False)
    assert not any(fetch_cache_folder().rglob("a.tsv*"))
