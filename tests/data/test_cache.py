"""Processed tables are rebuilt exactly when their settings, inputs or file change."""

from __future__ import annotations

import json

import pandas as pd

import stlab.data.cache as cache_module
from stlab.data import cached_frame, fingerprint


def test_rebuilds_only_when_needed(tmp_path):
    builds = []

    def build():
        builds.append(1)
        return pd.DataFrame({"x": [1, 2, 3]})

    for _ in range(2):
        frame = cached_frame("t", {"k": 1}, ["sha-a"], build, directory=tmp_path)
    assert len(builds) == 1 and frame["x"].tolist() == [1, 2, 3]
    cached_frame("t", {"k": 2}, ["sha-a"], build, directory=tmp_path)  # settings changed
    assert len(builds) == 2
    cached_frame("t", {"k": 2}, ["sha-b"], build, directory=tmp_path)  # input changed
    assert len(builds) == 3
    meta = json.loads((tmp_path / "t.json").read_text())
    assert meta["settings"] == {"k": 2} and meta["rows"] == 3


def test_corrupted_parquet_is_rebuilt(tmp_path):
    builds = []

    def build():
        builds.append(1)
        return pd.DataFrame({"x": [1.5]})

    cached_frame("t", {}, [], build, directory=tmp_path)
    (tmp_path / "t.parquet").write_bytes(b"not parquet at all")
    frame = cached_frame("t", {}, [], build, directory=tmp_path)
    assert len(builds) == 2 and frame["x"].tolist() == [1.5]
    assert not list(tmp_path.glob("*.part"))


def test_the_format_version_is_part_of_the_fingerprint(monkeypatch, tmp_path):
    builds = []

    def build():
        builds.append(1)
        return pd.DataFrame({"x": [1]})

    before = fingerprint({"k": 1}, ["sha-a"])
    cached_frame("t", {"k": 1}, ["sha-a"], build, directory=tmp_path)
    monkeypatch.setattr(cache_module, "CACHE_FORMAT", cache_module.CACHE_FORMAT + 1)  # the parsing code changed
    assert fingerprint({"k": 1}, ["sha-a"]) != before
    cached_frame("t", {"k": 1}, ["sha-a"], build, directory=tmp_path)
    assert len(builds) == 2
