"""Data-layer tests: an empty project data folder, so files placed in ``data/`` never leak in."""

from __future__ import annotations

import pytest

from stlab import config


@pytest.fixture(autouse=True)
def empty_project_data(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.mktemp("project-data")
    monkeypatch.setattr(config, "project_data_dir", lambda: folder)
    return folder
