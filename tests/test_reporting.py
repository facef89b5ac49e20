"""Provenance and results files."""

from __future__ import annotations


def test_write_report_is_atomic_and_creates_folders(tmp_path):
    from stlab.reporting import write_report

    path = write_report(tmp_path / "results" / "table.md", "| a |\n")
    assert path.read_text() == "| a |\n"
    assert [p.name for p in path.parent.iterdir()] == ["table.md"]  # no temporary file left


def test_markdown_table_formats_each_kind_of_cell():
    from stlab.reporting import markdown_table

    table = markdown_table([{"n": 12345, "seconds": 1234.56, "ratio": 0.0123456, "missing": None, "name": "a"}])
    assert table.splitlines() == ["| n | seconds | ratio | missing | name |", "|---|---|---|---|---|",
                                  "| 12,345 | 1,234.6 | 0.01235 | -- | a |"]
    assert markdown_table([{"ratio": 0.0123456}], significant=3).splitlines()[-1] == "| 0.0123 |"
