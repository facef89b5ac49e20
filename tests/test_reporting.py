"""Provenance and results files."""

from __future__ import annotations


def test_write_report_is_atomic_and_creates_folders(tmp_path):
    from stlab.reporting import write_report

    path = write_report(tmp_path / "results" / "table.md", "| a |\n")
    assert path.read_text() == "| a |\n"
    assert [p.name for p in path.parent.iterdir()] == ["table.md"]  # no temporary file left
