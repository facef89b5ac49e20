"""Papermill reruns: chapter lookup, parameter parsing, refusal of unknown parameters, execution."""

from __future__ import annotations

import json

import pytest

from stlab import rerun


def test_find_and_parse():
    assert rerun.find_chapter("01").stem == "01-behaviour-logs"
    assert rerun.parse_params(["seed=3", "smoke=true", "dataset=synthetic"]) == {
        "seed": 3, "smoke": True, "dataset": "synthetic"}
    with pytest.raises(SystemExit, match="no single chapter"):
        rerun.find_chapter("99")
    with pytest.raises(SystemExit, match="name=value"):
        rerun.parse_params(["seed"])


def test_unknown_parameter_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="has no parameter"):
        rerun.rerun("01", {"epochs": 3}, output_dir=tmp_path)


@pytest.mark.book
def test_rerun_injects_parameters(tmp_path):
    output = rerun.rerun("02", {"dataset": "synthetic", "smoke": True, "seed": 1, "test_frac": 0.1}, output_dir=tmp_path)
    notebook = json.loads(output.read_text())
    injected = [c for c in notebook["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "test_frac = 0.1" in "".join(injected[0]["source"])
