"""Published numbers the study sets beside its own, as typed data.

A number copied from a paper is only comparable with the book's when the data, the split and the
scoring agree, and they rarely do. Each :class:`PublishedResult` therefore carries, beside its
metrics, where it was printed (a key of ``references.bib`` and the table), the data set as the
paper used it, the protocol it was measured under, who ran the model (the authors of the model,
or the authors of a later paper re-running it as a baseline), what differs from the book, and
where the number was checked. :data:`PUBLISHED` holds the entries; :func:`literature_table` lays
them out one row per entry.

Protocols (the names the study uses, :data:`PROTOCOLS`):

=============  ==================================================================================
``book``       The book's protocol (chapter 4): a leak-free *global* temporal split (70/10/20),
               every later check-in a query, every POI ranked.
``getnext``    GETNext (Yang et al., SIGIR 2022), also used by STHGCN: check-ins cut into 24-hour
               trajectories, a chronological 80/10/10 split, only the last check-in of each
               validation and test trajectory a query, users and POIs unseen in training dropped.
``flashback``  Flashback (Yang et al., IJCAI 2020): each user's check-ins in time order, the first
               80 % train and the last 20 % test, every position a query.
``stan``       STAN (Luo et al., WWW 2021): per user, the last check-in tests (the one before it
               validates), all POIs ranked.
``dcrnn``      Traffic forecasting as DCRNN (Li et al., ICLR 2018) on METR-LA and the LOS-LOOP
               papers after it: a 70/10/20 split in time, forecasts 15, 30 and 60 minutes ahead,
               MAE, RMSE and MAPE.
=============  ==================================================================================

Metric names are the book's (:mod:`stlab.metrics`): ``Acc@k``, ``NDCG@k`` and ``MRR`` for the next
visit, ``MAE@60min``, ``RMSE@60min``, ``MAPE@60min`` ... for forecasts, MAPE in percent. A paper's
own name is kept where it differs only in wording: STAN reports ``Recall@k``. With one relevant
item per query -- the place actually visited next -- Recall@k, Acc@k and HitRate@k are the same
number: the share of queries whose target is ranked in the top ``k``.
``literature_table(book_names=True)`` folds them into ``Acc@k``.

Rates (Acc, Recall, HitRate, NDCG, MRR) lie in [0, 1]; errors are positive. A number that could
not be confirmed in a source is kept, and its ``verified`` note says so.

Introduced in chapter 12 (The study).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import pandas as pd

Protocol = Literal["book", "getnext", "flashback", "stan", "dcrnn"]
Relation = Literal["same data", "same city", "different"]

#: The study's protocol names and what each means.
PROTOCOLS: dict[str, str] = {
    "book": "global temporal split 70/10/20 without leakage; every later check-in a query; full ranking",
    "getnext": "24-hour trajectories; chronological 80/10/10; the last check-in of each validation/test "
               "trajectory a query; users and POIs unseen in training dropped",
    "flashback": "per user, chronological 80/20; every test position a query",
    "stan": "per user, the last check-in held out (the one before validates); all POIs ranked",
    "dcrnn": "70/10/20 split in time; horizons 15/30/60 min; MAE, RMSE, MAPE (%)",
}

#: The book's data sets an entry can be closest to (:mod:`stlab.data` and the study's grid).
BOOK_DATASETS: tuple[str, ...] = ("foursquare-nyc-stan", "foursquare-nyc", "gowalla-nyc", "gowalla",
                                  "los-loop", "metr-la", "montevideo-bus")

#: How close the published data are to the book's closest data set.
RELATIONS: tuple[str, ...] = ("same data", "same city", "different")

_RATE = re.compile(r"^(?:(?:Acc|Recall|HitRate|NDCG)@[1-9]\d*|MRR)$")
_ERROR = re.compile(r"^(?:MAE|RMSE|MAPE)@[1-9]\d*min$")
_RANK_ORDER = ("Acc", "Recall", "HitRate", "NDCG", "MRR")
_ERROR_ORDER = ("MAE", "RMSE", "MAPE")


def is_rate(name: str) -> bool:
    """Whether ``name`` is a ranking metric (a rate in [0, 1]): ``Acc@k``, ``Recall@k``,
    ``HitRate@k``, ``NDCG@k`` or ``MRR``."""
    return bool(_RATE.match(name))


def is_error(name: str) -> bool:
    """Whether ``name`` is a forecast error at a horizon: ``MAE@15min``, ``RMSE@60min``, ``MAPE@30min``."""
    return bool(_ERROR.match(name))


@dataclass(frozen=True)
class PublishedResult:
    """One published row: a model's numbers on one data set under one protocol.

    Attributes:
        model: (str) the model as the table names it.
        source_key: (str) the key in ``references.bib`` of the paper (or code) that printed it.
        table: (str) where in the source: ``"Table 1"``, or the README table of the official code.
        dataset: (str) the data set as the paper used it.
        data_note: (str) what that data set is: its extent, filters and preprocessing.
        protocol: (str) one of :data:`PROTOCOLS`.
        metrics: (Mapping[str, float]) metric name -> value, read-only after construction.
        run_by: (str) who ran the model for this number: its authors, or a later paper's authors.
        differs: (str) how the protocol and data differ from the book's.
        verified: (str) where the number was checked, or that it could not be confirmed.
        closest: (str) the book's data set that is the same or closest (:data:`BOOK_DATASETS`).
        relation: (str) ``"same data"``, ``"same city"`` or ``"different"``: how close ``closest`` is.
    """

    model: str
    source_key: str
    table: str
    dataset: str
    data_note: str
    protocol: Protocol
    metrics: Mapping[str, float] = field(hash=False)
    run_by: str
    differs: str
    verified: str
    closest: str
    relation: Relation

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"{self.model}: unknown protocol {self.protocol!r}; use one of {sorted(PROTOCOLS)}")
        if self.closest not in BOOK_DATASETS:
            raise ValueError(f"{self.model}: closest={self.closest!r} is not one of {BOOK_DATASETS}")
        if self.relation not in RELATIONS:
            raise ValueError(f"{self.model}: relation={self.relation!r} is not one of {RELATIONS}")
        if not self.metrics:
            raise ValueError(f"{self.model}: no metrics")
        for name, value in self.metrics.items():
            if is_rate(name):
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{self.model}: {name} = {value} is a rate and must lie in [0, 1]")
            elif is_error(name):
                if not value > 0.0:
                    raise ValueError(f"{self.model}: {name} = {value} is an error and must be positive")
            else:
                raise ValueError(f"{self.model}: unknown metric name {name!r} (Acc@k, Recall@k, HitRate@k, "
                                 "NDCG@k, MRR, MAE@<m>min, RMSE@<m>min, MAPE@<m>min)")
        object.__setattr__(self, "metrics", MappingProxyType({k: float(v) for k, v in self.metrics.items()}))


def closest_data(entry: PublishedResult) -> str:
    """The book's data set closest to ``entry``'s and how close: ``"gowalla-nyc (different)"``."""
    return f"{entry.closest} ({entry.relation})"


def book_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """``metrics`` under the book's names: ``Recall@k`` and ``HitRate@k`` become ``Acc@k`` (the same
    number with one relevant item per query); other names are kept."""
    out: dict[str, float] = {}
    for name, value in metrics.items():
        book = re.sub(r"^(?:Recall|HitRate)@", "Acc@", name)
        if book in out and out[book] != value:
            raise ValueError(f"{name} = {value} disagrees with {book} = {out[book]}")
        out[book] = value
    return out


# --------------------------------------------------------------------------- the entries
_STAN_NYC = ("Foursquare NYC as STAN's code ships it (data/NYC.npy: user, POI and time of each check-in), "
             "preprocessed from the TSMC2014 New York file (Yang et al. 2015): 147,938 check-ins, 1,083 users, "
             "5,135 POIs. The book registers this very file as foursquare-nyc-stan.")
_GETNEXT_NYC = ("Foursquare NYC (TSMC2014) as GETNext preprocessed and published it (NYC.zip: train, "
                "validation and test files). After preprocessing: 1,048 users, 4,981 POIs, 103,941 check-ins, "
                "14,130 trajectories, 1,347 test queries (counts from STHGCN's README, which uses these files).")
_GETNEXT_DIFFERS = ("Same city and underlying check-ins, different cut and scoring: the split is global in time as in "
                    "the book, but 80/10/10; only the last check-in of each 24-hour validation/test trajectory is a "
                    "query (the book scores every later check-in); users and POIs unseen in training are dropped, so "
                    "no cold-start query is scored (the book keeps them and reports seen/unseen users apart).")
_GETNEXT_SECONDARY = ("The paper itself was not read. All of FPMC, LSTM, PRME, STGCN, PLSPL, STAN, GETNext and "
                      "STHGCN on NYC match, value for value, a later comparison table on GETNext's NYC files found "
                      "in a public repository's research notes (a secondary copy); STHGCN's row is also in its "
                      "official README.")
_GETNEXT_TABLE = "main results table, NYC columns (table number not checked)"
_FLASHBACK_DIFFERS = ("Per-user, not global: the first 80 % of each user's check-ins train and the rest test, so one "
                      "user's test period overlaps other users' training period in time; every position is a query; "
                      "no validation part; only users with at least 101 check-ins, in sequences of 20. Full ranking.")
_FLASHBACK_VERIFIED = ("Confirmed in the official code's README (eXascaleInfolab/Flashback_code, 'Results', row "
                       "'Flashback (RNN)'). Protocol confirmed in its dataset.py (80/20 per user, test check-ins "
                       "strictly after training ones) and setting.py (min_checkins = 101, sequence_length = 20). "
                       "Table number in the paper not checked.")
_METR_LA = ("METR-LA: 5-minute speeds of 207 loop detectors on Los Angeles highways, four months of 2012 (March "
            "to June, 34,272 steps); DCRNN's generate_training_data.py windows 12 steps in, 12 out, then splits "
            "70/10/20 in time.")
_DCRNN_DIFFERS = ("Same 70/10/20 time split, horizons and metrics as the book's forecasting protocol (chapter 11), "
                  "different extent: four months of METR-LA against LOS-LOOP's one week (2012-03-01 .. 03-07) of the "
                  "same 207 sensors, so a test period of weeks rather than about a day. DCRNN forecasts from every "
                  "5-minute step, the book from one origin an hour; DCRNN scores only non-zero readings (masked "
                  "metrics), the book leaves out missing readings and takes MAPE over actuals >= 1 mph.")
_DCRNN_TABLE = "Table 1, METR-LA rows (table number not checked against the paper)"
_DCRNN_SECONDARY = ("The paper itself was not read. Every value agrees with two later comparison tables in public "
                    "repositories that copy DCRNN's METR-LA results, and a paper index lists DCRNN's 12-step METR-LA "
                    "MAE as 3.6.")


def _r(model: str, source_key: str, table: str, dataset: str, data_note: str, protocol: Protocol,
       metrics: Mapping[str, float], run_by: str, differs: str, verified: str, closest: str,
       relation: Relation) -> PublishedResult:
    return PublishedResult(model, source_key, table, dataset, data_note, protocol, metrics, run_by, differs,
                           verified, closest, relation)


def _getnext_row(model: str, acc1: float, acc5: float, acc10: float, mrr: float, run_by: str,
                 source_key: str = "yang2022getnext", table: str = _GETNEXT_TABLE,
                 verified: str = _GETNEXT_SECONDARY) -> PublishedResult:
    return _r(model, source_key, table, "Foursquare NYC (GETNext preprocessing)", _GETNEXT_NYC, "getnext",
              {"Acc@1": acc1, "Acc@5": acc5, "Acc@10": acc10, "MRR": mrr}, run_by, _GETNEXT_DIFFERS, verified,
              "foursquare-nyc-stan", "same city")


_BY_GETNEXT = "GETNext's authors (Yang et al. 2022), as a baseline"

#: Every published result of the study, grouped by protocol.
PUBLISHED: tuple[PublishedResult, ...] = (
    # ---------------------------------------------------------------- STAN's own protocol
    _r("STAN", "luo2021stan", "main results table, NYC column (table number not checked)",
       "Foursquare NYC (STAN's file)", _STAN_NYC, "stan", {"Recall@5": 0.4669, "Recall@10": 0.5962},
       "STAN's authors",
       "Per user, not global in time: each user's last check-in is the only test query (the one before it "
       "validates), so a user's test check-in may come before other users' training check-ins; one query per user "
       "against every later check-in in the book. All POIs are ranked, as in the book. The code trains and scores "
       "partitions of 100 users, and the README says the published values average ten runs.",
       "Not confirmed: the paper's table could not be read in the sources searched. The official code "
       "(yingtaoluo/Spatial-Temporal-Attention-Network-for-POI-Recommendation, train.py) confirms the protocol: "
       "dname = 'NYC', the last position tests, the one before validates, top-k over all locations. Its README "
       "prints one run on the first 100 users with test recall@5 0.46 and recall@10 0.59, consistent with these "
       "averages but coarser.",
       "foursquare-nyc-stan", "same data"),
    # ---------------------------------------------------------------- the GETNext protocol (NYC)
    _getnext_row("FPMC", 0.1003, 0.2126, 0.2970, 0.1701, _BY_GETNEXT),
    _getnext_row("LSTM", 0.1305, 0.2719, 0.3283, 0.1857, _BY_GETNEXT),
    _getnext_row("PRME", 0.1159, 0.2236, 0.3105, 0.1712, _BY_GETNEXT),
    _getnext_row("STGCN (spatio-temporal gated network, Zhao et al.)", 0.1799, 0.3425, 0.4279, 0.2788, _BY_GETNEXT),
    _getnext_row("PLSPL", 0.1917, 0.3678, 0.4523, 0.2806, _BY_GETNEXT),
    _getnext_row("STAN", 0.2231, 0.4582, 0.5734, 0.3253, _BY_GETNEXT),
    _getnext_row("GETNext", 0.2435, 0.5089, 0.6143, 0.3621, "GETNext's authors"),
    _getnext_row("STHGCN", 0.2734, 0.5361, 0.6244, 0.3915, "STHGCN's authors (Yan et al. 2023)",
                 source_key="yan2023sthgcn",
                 table="main results table, NYC column (table number not checked); README 'Main Experimental Results'",
                 verified="Confirmed in the official code's README (ant-research/Spatio-Temporal-Hypergraph-Model, "
                          "'Main Experimental Results', NYC row), which also states that NYC uses GETNext's "
                          "preprocessed files. The paper's table number was not checked."),
    # ---------------------------------------------------------------- the Flashback protocol
    _r("Flashback (RNN)", "yang2020flashback", "results table, Gowalla columns (table number not checked)",
       "Gowalla worldwide (Flashback's checkins-gowalla.txt)",
       "Gowalla check-ins worldwide from SNAP (Cho et al. 2011) as distributed with the Flashback code, users with "
       "at least 101 check-ins. The book's gowalla-nyc is the New York box cut from the same SNAP file.",
       "flashback", {"Acc@1": 0.1158, "Acc@5": 0.2754, "Acc@10": 0.3479, "MRR": 0.1925}, "Flashback's authors",
       "Different data: the whole world rather than one city, only heavy users. " + _FLASHBACK_DIFFERS,
       _FLASHBACK_VERIFIED, "gowalla-nyc", "different"),
    _r("Flashback (RNN)", "yang2020flashback", "results table, Foursquare columns (table number not checked)",
       "Foursquare (Flashback's checkins-4sq.txt)",
       "Foursquare check-ins as distributed with the Flashback code, users with at least 101 check-ins; not the "
       "TSMC2014 New York file. Its extent beyond the code's filter was not checked here.",
       "flashback", {"Acc@1": 0.2496, "Acc@5": 0.5399, "Acc@10": 0.6236, "MRR": 0.3805}, "Flashback's authors",
       "Different data: not the New York file, only heavy users. " + _FLASHBACK_DIFFERS,
       _FLASHBACK_VERIFIED, "foursquare-nyc-stan", "different"),
    # ---------------------------------------------------------------- forecasting: DCRNN on METR-LA
    _r("ARIMA (Kalman filter)", "li2018dcrnn", _DCRNN_TABLE, "METR-LA", _METR_LA, "dcrnn",
       {"MAE@15min": 3.99, "RMSE@15min": 8.21, "MAE@30min": 5.15, "RMSE@30min": 10.45, "MAPE@30min": 12.7,
        "MAE@60min": 6.90, "RMSE@60min": 13.23, "MAPE@60min": 17.4},
       "DCRNN's authors, as a baseline", _DCRNN_DIFFERS,
       _DCRNN_SECONDARY + " MAPE@15min left out: not in the copies read.",
       "los-loop", "same city"),
    _r("FC-LSTM", "li2018dcrnn", _DCRNN_TABLE, "METR-LA", _METR_LA, "dcrnn",
       {"MAE@15min": 3.44, "RMSE@15min": 6.30, "MAE@30min": 3.77, "RMSE@30min": 7.23, "MAPE@30min": 10.9,
        "MAE@60min": 4.37, "RMSE@60min": 8.69, "MAPE@60min": 13.2},
       "DCRNN's authors, as a baseline", _DCRNN_DIFFERS,
       _DCRNN_SECONDARY + " MAPE@15min left out: not in the copies read.",
       "los-loop", "same city"),
    _r("DCRNN", "li2018dcrnn", _DCRNN_TABLE, "METR-LA", _METR_LA, "dcrnn",
       {"MAE@15min": 2.77, "RMSE@15min": 5.38, "MAPE@15min": 7.3, "MAE@30min": 3.15, "RMSE@30min": 6.45,
        "MAPE@30min": 8.8, "MAE@60min": 3.60, "MAPE@60min": 10.5},
       "DCRNN's authors", _DCRNN_DIFFERS,
       _DCRNN_SECONDARY + " RMSE@60min left out: the later tables give 7.60, which was not checked against the "
                          "paper.",
       "los-loop", "same city"),
    _r("DCRNN (code after its 2018-10-01 fix)", "li2018dcrnn", "README of the official code, 'Metric for different "
       "horizons and datasets' (not in the paper)", "METR-LA", _METR_LA, "dcrnn",
       {"MAE@15min": 2.67, "RMSE@15min": 5.17, "MAPE@15min": 6.84, "MAE@30min": 3.08, "RMSE@30min": 6.30,
        "MAPE@30min": 8.38, "MAE@60min": 3.56, "RMSE@60min": 7.52, "MAPE@60min": 10.30},
       "DCRNN's authors, re-run after a bug fix", _DCRNN_DIFFERS,
       "Confirmed in the official code's README (liyaguang/DCRNN), which says these are better than the paper's "
       "because of a bug fixed on 2018-10-01 (commit 2e4b8c8). Split confirmed in scripts/generate_training_data.py "
       "(round 70 % train, 20 % test, the rest validation) and masking in lib/metrics.py.",
       "los-loop", "same city"),
)


def published(protocol: str | None = None) -> tuple[PublishedResult, ...]:
    """The entries of :data:`PUBLISHED` measured under ``protocol`` (all of them for ``None``)."""
    if protocol is None:
        return PUBLISHED
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {sorted(PROTOCOLS)} or None")
    return tuple(e for e in PUBLISHED if e.protocol == protocol)


def _metric_key(name: str) -> tuple[int, int, int, str]:
    """Column order: ranking metrics by family then k, MRR last; errors by horizon then MAE, RMSE, MAPE."""
    if is_error(name):
        family, minutes = name.split("@")
        return (1, int(minutes.removesuffix("min")), _ERROR_ORDER.index(family), name)
    if name == "MRR":
        return (0, len(_RANK_ORDER), 0, name)
    family, k = name.split("@")
    return (0, _RANK_ORDER.index(family), int(k), name)


def literature_table(protocol: str | None = None, *, book_names: bool = False) -> pd.DataFrame:
    """The published results as a table, one row per entry, one column per metric.

    Args:
        protocol: keep the entries of this protocol only (:data:`PROTOCOLS`); ``None`` keeps all.
        book_names: report ``Recall@k`` and ``HitRate@k`` as ``Acc@k`` (:func:`book_metrics`).

    Returns:
        Columns ``model``, ``protocol``, ``dataset``, ``closest_data``, ``run_by``, ``source``,
        ``table``, then the metrics any kept entry reports (ranking metrics, then errors by horizon);
        a metric an entry does not report is ``NaN``.
    """
    entries = published(protocol)
    rows = []
    for e in entries:
        metrics = book_metrics(e.metrics) if book_names else dict(e.metrics)
        rows.append({"model": e.model, "protocol": e.protocol, "dataset": e.dataset,
                     "closest_data": closest_data(e), "run_by": e.run_by, "source": e.source_key,
                     "table": e.table, **metrics})
    info = ["model", "protocol", "dataset", "closest_data", "run_by", "source", "table"]
    names = sorted({k for row in rows for k in row if k not in info}, key=_metric_key)
    return pd.DataFrame(rows, columns=info + names)
