"""The literature table: sources exist in the bibliography, values are in range, the anchor numbers
are there exactly, and the table filters by protocol."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from stlab.study import literature
from stlab.study.literature import (BOOK_DATASETS, PROTOCOLS, PUBLISHED, RELATIONS, PublishedResult, book_metrics,
                                    closest_data, is_error, is_rate, literature_table, published)

ROOT = Path(__file__).resolve().parents[2]


def _bib_keys() -> set[str]:
    return set(re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "references.bib").read_text(), re.MULTILINE))


def _entry(model: str, protocol: str, dataset_word: str = "") -> PublishedResult:
    found = [e for e in PUBLISHED if e.model == model and e.protocol == protocol and dataset_word in e.dataset]
    assert len(found) == 1, (model, protocol, dataset_word, found)
    return found[0]


# --------------------------------------------------------------------------- the entries


def test_every_source_key_is_in_the_bibliography():
    keys = _bib_keys()
    assert {e.source_key for e in PUBLISHED} <= keys


def test_the_bibliography_has_no_duplicate_keys():
    keys = re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "references.bib").read_text(), re.MULTILINE)
    assert len(keys) == len(set(keys))


def test_metrics_are_in_range_and_named_as_the_book_names_them():
    for e in PUBLISHED:
        assert e.metrics, e.model
        for name, value in e.metrics.items():
            assert is_rate(name) or is_error(name), (e.model, name)
            if is_rate(name):
                assert 0.0 <= value <= 1.0, (e.model, name, value)
            else:
                assert value > 0.0, (e.model, name, value)
        ranks = [n for n in e.metrics if n.startswith(("Acc@", "Recall@", "HitRate@"))]
        ks = sorted(int(n.split("@")[1]) for n in ranks)
        values = [book_metrics(e.metrics)[f"Acc@{k}"] for k in ks]
        assert values == sorted(values), f"{e.model}: Acc@k must not fall as k grows"
        if "Acc@1" in e.metrics and "MRR" in e.metrics:
            assert e.metrics["Acc@1"] <= e.metrics["MRR"], e.model


def test_errors_grow_with_the_horizon():
    for e in published("dcrnn"):
        for family in ("MAE", "RMSE", "MAPE"):
            values = [e.metrics[f"{family}@{m}min"] for m in (15, 30, 60) if f"{family}@{m}min" in e.metrics]
            assert values == sorted(values), (e.model, family)


def test_every_entry_names_a_known_protocol_data_set_and_relation():
    assert set(PROTOCOLS) == {"book", "getnext", "flashback", "stan", "dcrnn"}
    for e in PUBLISHED:
        assert e.protocol in PROTOCOLS
        assert e.closest in BOOK_DATASETS
        assert e.relation in RELATIONS
        for text in (e.model, e.table, e.dataset, e.data_note, e.run_by, e.differs, e.verified):
            assert text.strip(), e.model


def test_every_entry_is_distinct():
    keys = [(e.model, e.protocol, e.dataset, e.source_key, e.table) for e in PUBLISHED]
    assert len(keys) == len(set(keys))


# --------------------------------------------------------------------------- anchors


def test_stan_on_the_nyc_file_under_its_own_protocol():
    e = _entry("STAN", "stan")
    assert dict(e.metrics) == {"Recall@5": 0.4669, "Recall@10": 0.5962}
    assert e.source_key == "luo2021stan"
    assert (e.closest, e.relation) == ("foursquare-nyc-stan", "same data")
    assert "Not confirmed" in e.verified


@pytest.mark.parametrize("model, source_key, values", [
    ("GETNext", "yang2022getnext", (0.2435, 0.5089, 0.6143, 0.3621)),
    ("STHGCN", "yan2023sthgcn", (0.2734, 0.5361, 0.6244, 0.3915)),
])
def test_getnext_protocol_anchors(model, source_key, values):
    e = _entry(model, "getnext")
    assert e.source_key == source_key
    assert tuple(e.metrics[m] for m in ("Acc@1", "Acc@5", "Acc@10", "MRR")) == values


def test_baselines_under_getnext_say_who_ran_them():
    rerun = [e for e in published("getnext") if e.model not in ("GETNext", "STHGCN")]
    assert {e.model for e in rerun} >= {"LSTM", "PLSPL", "STAN"}
    for e in rerun:
        assert e.source_key == "yang2022getnext"
        assert "baseline" in e.run_by and "GETNext" in e.run_by


def test_flashback_on_worldwide_gowalla():
    e = _entry("Flashback (RNN)", "flashback", "Gowalla")
    assert e.metrics["Acc@1"] == 0.1158
    assert dict(e.metrics) == {"Acc@1": 0.1158, "Acc@5": 0.2754, "Acc@10": 0.3479, "MRR": 0.1925}
    assert (e.closest, e.relation) == ("gowalla-nyc", "different")
    assert "worldwide" in e.dataset.lower()


@pytest.mark.parametrize("model, mae60", [("ARIMA (Kalman filter)", 6.90), ("FC-LSTM", 4.37), ("DCRNN", 3.60)])
def test_dcrnn_sixty_minute_mae_on_metr_la(model, mae60):
    e = _entry(model, "dcrnn")
    assert e.source_key == "li2018dcrnn"
    assert e.dataset == "METR-LA"
    assert e.metrics["MAE@60min"] == mae60
    assert e.closest == "los-loop"


def test_dcrnn_table_ranks_the_models_as_published():
    mae = {m: _entry(m, "dcrnn").metrics for m in ("ARIMA (Kalman filter)", "FC-LSTM", "DCRNN")}
    for horizon in (15, 30, 60):
        key = f"MAE@{horizon}min"
        assert mae["DCRNN"][key] < mae["FC-LSTM"][key] < mae["ARIMA (Kalman filter)"][key]


# --------------------------------------------------------------------------- the dataclass


def test_metrics_are_read_only_and_entries_hashable():
    e = PUBLISHED[0]
    with pytest.raises(TypeError):
        e.metrics["Recall@5"] = 1.0  # type: ignore[index]
    assert len({hash(x) for x in PUBLISHED}) >= 1


@pytest.mark.parametrize("change, message", [
    ({"metrics": {"Acc@5": 1.2}}, "must lie in"),
    ({"metrics": {"MAE@60min": 0.0}}, "must be positive"),
    ({"metrics": {"Precision@5": 0.3}}, "unknown metric"),
    ({"metrics": {}}, "no metrics"),
    ({"protocol": "leave-one-out"}, "unknown protocol"),
    ({"closest": "yelp"}, "closest"),
    ({"relation": "similar"}, "relation"),
])
def test_invalid_entries_are_refused(change, message):
    base = {k: getattr(PUBLISHED[0], k) for k in PUBLISHED[0].__dataclass_fields__}
    base["metrics"] = dict(base["metrics"])
    with pytest.raises(ValueError, match=message):
        PublishedResult(**{**base, **change})
    with pytest.raises(ValueError, match=message):
        replace(PUBLISHED[0], **change)


def test_closest_data_names_the_data_set_and_how_close():
    assert closest_data(_entry("Flashback (RNN)", "flashback", "Gowalla")) == "gowalla-nyc (different)"
    assert closest_data(_entry("STAN", "stan")) == "foursquare-nyc-stan (same data)"


def test_book_metrics_folds_recall_and_hit_rate_into_accuracy():
    assert book_metrics({"Recall@5": 0.4, "HitRate@10": 0.5, "MRR": 0.2}) == {"Acc@5": 0.4, "Acc@10": 0.5, "MRR": 0.2}
    assert book_metrics({"Acc@5": 0.4, "Recall@5": 0.4}) == {"Acc@5": 0.4}
    with pytest.raises(ValueError, match="disagrees"):
        book_metrics({"Acc@5": 0.4, "Recall@5": 0.5})


# --------------------------------------------------------------------------- the table


def test_table_has_one_row_per_entry_and_the_metrics_as_columns():
    table = literature_table()
    assert isinstance(table, pd.DataFrame)
    assert len(table) == len(PUBLISHED)
    assert list(table.columns[:7]) == ["model", "protocol", "dataset", "closest_data", "run_by", "source", "table"]
    metrics = list(table.columns[7:])
    assert all(is_rate(m) or is_error(m) for m in metrics)
    assert set(metrics) == {name for e in PUBLISHED for name in e.metrics}
    # ranking metrics first (MRR last among them), then errors by horizon
    assert metrics.index("MRR") < metrics.index("MAE@15min") < metrics.index("MAE@60min")
    assert metrics.index("Acc@1") < metrics.index("Acc@5") < metrics.index("Acc@10") < metrics.index("MRR")


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_table_filters_by_protocol(protocol):
    table = literature_table(protocol)
    expected = [e for e in PUBLISHED if e.protocol == protocol]
    assert len(table) == len(expected)
    assert (table["protocol"] == protocol).all()
    assert list(table["model"]) == [e.model for e in expected]
    kept = {name for e in expected for name in e.metrics}
    assert set(table.columns[7:]) == kept


def test_table_keeps_published_values_and_leaves_missing_ones_empty():
    table = literature_table("getnext").set_index("model")
    assert table.loc["GETNext", "Acc@1"] == 0.2435
    dcrnn = literature_table("dcrnn").set_index("model")
    assert math.isnan(dcrnn.loc["DCRNN", "RMSE@60min"])
    assert dcrnn.loc["DCRNN", "MAE@60min"] == 3.60


def test_table_can_use_the_book_names():
    assert "Recall@5" in literature_table("stan").columns
    table = literature_table("stan", book_names=True)
    assert "Recall@5" not in table.columns
    assert table.loc[table["model"] == "STAN", "Acc@5"].item() == 0.4669


def test_unknown_protocol_is_refused():
    with pytest.raises(ValueError, match="unknown protocol"):
        literature_table("leave-one-out")
    with pytest.raises(ValueError, match="unknown protocol"):
        published("leave-one-out")


def test_module_is_documented():
    doc = literature.__doc__ or ""
    assert doc.rstrip().endswith("Introduced in chapter 12 (The study).")
    for name in PROTOCOLS:
        assert f"``{name}``" in doc
