"""The study (Part VI): every model on every data set under every protocol, with seeds and intervals.

* :mod:`stlab.study.presets` -- the protocol presets ``book``, ``getnext``, ``flashback``, ``stan``.
* :mod:`stlab.study.grid` -- the experiment grid as typed data, and each family's search space.
* :mod:`stlab.study.jobs` -- one run: fit, score, measure (a pure function of its job).
* :mod:`stlab.study.store` -- finished runs as Parquet files with provenance, queried with DuckDB.
* :mod:`stlab.study.runner` -- the resumable runner, on Ray Tune or in-process.
* :mod:`stlab.study.stats` -- intervals, paired tests with Holm's correction, segments.
* :mod:`stlab.study.literature` -- published numbers with their protocol and data.

``python -m stlab.study run`` (``make study``) runs a grid; chapter 12 reads the store.

Introduced in chapter 12 (The study).
"""

from stlab.study.grid import GRIDS, Cell, StudyGrid, get_grid
from stlab.study.presets import PRESETS, ProtocolPreset, get_preset, prepare_task
from stlab.study.runner import run_study
from stlab.study.store import ResultsStore

__all__ = ["GRIDS", "PRESETS", "Cell", "ProtocolPreset", "ResultsStore", "StudyGrid", "get_grid", "get_preset",
           "prepare_task", "run_study"]
