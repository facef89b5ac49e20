"""Papermill reruns: chapter lookup, parameter parsing and type checks, refusal of unknown parameters."""

from __future__ import annotations

import json
import re

import jupytext
import pytest

from stlab import rerun

CHAPTER_4 = rerun.CHAPTERS / "04-next-visit-baselines.md"


@pytest.fixture(scope="module")
def types():
    """The declared types of chapter 4's parameters cell (read only)."""
    return rerun.parameter_types(rerun._parameters_cell(jupytext.read(CHAPTER_4)))


@pytest.mark.parametrize(("name", "stem"), [
    ("1", "01-behaviour-logs"), ("01", "01-behaviour-logs"), ("11", "11-spatiotemporal-graphs"),
    ("10", "10-graph-convolutions"), ("01-behaviour-logs", "01-behaviour-logs"), ("02-time", "02-time-and-place"),
    ("time-and-place", "02-time-and-place"), ("chapters/04-next-visit-baselines.md", "04-next-visit-baselines"),
])
def test_find_chapter_by_number_name_or_path(name, stem):
    if name.endswith(".md"):
        name = str(rerun.ROOT / name)
    assert rerun.find_chapter(name).stem == stem


def test_find_chapter_refuses_none_or_several():
    with pytest.raises(SystemExit, match="no single chapter matches '99'"):
        rerun.find_chapter("99")
    with pytest.raises(SystemExit, match="no single chapter matches '0'"):
        rerun.find_chapter("0")  # a number: chapter 0, not every chapter whose name starts with 0
    with pytest.raises(SystemExit, match="it matches 06-recurrent-keras, 07-recurrent-pytorch"):
        rerun.find_chapter("recurrent")


def test_values_are_literals_first_then_text():
    assert rerun.parse_params(["seed=3", "smoke=true", "dataset=synthetic", "lr=1e-3", "arima_nodes=None",
                               "learning_rates=(0.01, 0.02)", "flag=True", "dataset2=my.csv"]) == {
        "seed": 3, "smoke": True, "dataset": "synthetic", "lr": 1e-3, "arima_nodes": None,
        "learning_rates": (0.01, 0.02), "flag": True, "dataset2": "my.csv"}
    assert rerun.parse_value("gowalla-nyc") == "gowalla-nyc" and rerun.parse_value("false") is False
    with pytest.raises(SystemExit, match="name=value"):
        rerun.parse_params(["seed"])


def test_types_are_read_from_the_parameters_cell(types):
    assert types["dataset"] == "str | None" and types["seed"] == "int" and types["smoke"] == "bool"
    assert types["val_frac"] == "float"


def test_values_are_checked_against_the_declared_types(types):
    params = rerun.parse_params(["dataset=None", "seed=2", "smoke=True", "val_frac=1", "test_frac=0.25"], types,
                                chapter="04")
    assert params == {"dataset": None, "seed": 2, "smoke": True, "val_frac": 1.0, "test_frac": 0.25}
    assert isinstance(params["val_frac"], float)  # an int is accepted where a float is due
    assert rerun.parse_params(["dataset=2024"], types)["dataset"] == "2024"  # text where text is due
    for pair, expected in [("seed=1.5", r"\(int\)"), ("smoke=1", r"\(bool\)"), ("val_frac=big", r"\(float\)"),
                           ("history_len=None", r"\(int\)"), ("seed=(1, 2)", r"\(int\)")]:
        name, value = pair.split("=")
        with pytest.raises(SystemExit, match=f"parameter {name} of 04 expects {expected}, got .*{re.escape(value[:3])}"):
            rerun.parse_params([pair], types, chapter="04")


@pytest.mark.parametrize(("value", "declared", "ok"), [
    ((0.01, 0.02), "tuple", True), ([0.01], "tuple", False), ((0.01, 2), "tuple[float, ...]", True),
    ((0.01, "a"), "tuple[float, ...]", False), (None, "tuple | None", True), ((1, 2), "tuple[int, int]", True),
    ((1, 2, 3), "tuple[int, int]", False), (True, "int", False), (3, "int | None", True), ("x", "str", True),
    (3, "float | None", True), ("auto", "whatever this is", True),
])
def test_type_expressions(value, declared, ok):
    assert rerun._matches(value, declared) is ok


def test_unknown_parameter_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="has no parameter"):
        rerun.rerun("01", {"epochs": 3}, output_dir=tmp_path)
    with pytest.raises(SystemExit, match="parameter seed of 01-behaviour-logs expects \\(int\\)"):
        rerun.rerun("1", {"seed": "one"}, output_dir=tmp_path)


def test_command_line_checks_before_running(monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("the chapter ran")

    monkeypatch.setattr(rerun, "_execute", must_not_run)
    with pytest.raises(SystemExit, match="has no parameter"):
        rerun.main(["4", "epochs=3"])
    with pytest.raises(SystemExit, match="expects \\(float\\), got 'x'"):
        rerun.main(["4", "val_frac=x"])


def test_relative_data_folder_is_made_absolute(monkeypatch, tmp_path):
    seen = {}

    def fake_execute(notebook, output, **kwargs):
        import os

        seen["data"] = os.environ["STLAB_DATA"]

    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STLAB_DATA", "some/data")
    rerun.rerun("1", {"seed": 1}, output_dir=tmp_path)
    assert seen["data"] == str(tmp_path / "some" / "data")


@pytest.mark.book
def test_rerun_injects_parameters(tmp_path):
    output = rerun.rerun("02", {"dataset": "synthetic", "smoke": True, "seed": 1, "test_frac": 0.1}, output_dir=tmp_path)
    notebook = json.loads(output.read_text())
    injected = [c for c in notebook["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "test_frac = 0.1" in "".join(injected[0]["source"])


def test_tuples_reach_the_chapter_as_lists():
    """papermill would write a tuple as its text ("(0.01, 0.02)"), which a chapter would iterate by character."""
    from papermill.translators import PythonTranslator

    from stlab.rerun import _papermill_value

    value = _papermill_value((0.01, (1, 2)))
    assert value == [0.01, [1, 2]]
    assert PythonTranslator.translate(value) == "[0.01, [1, 2]]"


def test_make_rerun_hands_parameters_over_in_the_environment(monkeypatch):
    seen = {}
    monkeypatch.setattr(rerun, "_execute", lambda path, notebook, params, out: seen.update(params) or path)
    monkeypatch.setenv(rerun.PARAMS_ENV, "seed=3 'dataset=synthetic' history_len=5")
    assert rerun.main(["4"]) == 0
    assert seen == {"seed": 3, "dataset": "synthetic", "history_len": 5}
    seen.clear()
    assert rerun.main(["4", "seed=4"]) == 0  # parameters on the command line win
    assert seen == {"seed": 4}


def test_a_relative_file_path_is_made_absolute(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(rerun, "_execute", lambda path, notebook, params, out: seen.update(params) or path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "log.csv").write_text("x")
    monkeypatch.chdir(tmp_path)
    assert rerun.main(["4", "dataset=mine/log.csv", "timezone=Europe/Paris"]) == 0
    assert seen["dataset"] == str(tmp_path / "mine" / "log.csv") and seen["timezone"] == "Europe/Paris"
