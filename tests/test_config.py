"""The override order: explicit > environment > default."""

from __future__ import annotations

import pytest

from stlab.config import ChapterSettings, cache_dir, resolve


def test_override_order(monkeypatch):
    assert resolve(ChapterSettings).dataset == "gowalla-nyc"
    monkeypatch.setenv("STLAB_DATASET", "synthetic")
    monkeypatch.setenv("STLAB_SEED", "7")
    monkeypatch.setenv("STLAB_SMOKE", "true")
    settings = resolve(ChapterSettings, dataset=None)
    assert (settings.dataset, settings.seed, settings.smoke) == ("synthetic", 7, True)
    assert resolve(ChapterSettings, dataset="gowalla-nyc", seed=1).seed == 1


def test_bad_values_are_named(monkeypatch):
    monkeypatch.setenv("STLAB_SMOKE", "maybe")
    with pytest.raises(ValueError, match="STLAB_SMOKE"):
        resolve(ChapterSettings)
    with pytest.raises(TypeError, match="unknown setting"):
        resolve(ChapterSettings, epochs=3)


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("STLAB_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path


def test_project_data_dir_is_the_data_folder_beside_the_package():
    from stlab.config import PROJECT_ROOT, project_data_dir

    assert project_data_dir() == PROJECT_ROOT / "data"
    assert (PROJECT_ROOT / "stlab" / "config.py").is_file()
    assert (project_data_dir() / "README.md").is_file()  # the only tracked file in it
