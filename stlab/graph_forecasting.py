"""The spatio-temporal forecasting protocol: one set of rules for every model of a network.

A network is a :class:`~stlab.data.GraphSeries`: readings ``[T, N]`` at ``N`` nodes (``NaN`` =
missing) and a graph. The protocol (chapter 11):

1. **Chronological split.** The first ``1 - test_share`` of the steps are history: models fit on
   them, and neural models hold out the last ``validation_share`` of that history, again by
   time, for early stopping. The last ``test_share`` are the test part.
2. **Rolling origins.** From each origin in the test part (every ``step`` steps) every model
   forecasts ``horizon`` steps of all nodes, seeing only readings before the origin (models are
   fitted once; later origins only append observations -- :func:`stlab.forecasting.rolling_origin`).
3. **Metrics.** MAE, RMSE and MAPE at chosen steps ahead, averaged over *all valid* (origin,
   node) points at once; missing actuals are left out (a missing forecast is an error); MAPE
   only where the actual is at least ``mape_min_true`` (the table's MAPE column names it).

:class:`NetworkSetup` holds what differs between networks (time step, window, horizon, which
steps to report, the transform of counts, how the adjacency is made) as typed data, with one
entry per registered network in :data:`NETWORK_SETUPS`; a network of your own gets its own.

Introduced in chapter 11 (Spatio-temporal graph forecasting).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from stlab.data.loaders import GraphSeries
from stlab.forecasting import Forecaster, RollingOriginResult, check_new_rows, horizon_table, rolling_origin
from stlab.metrics import DEFAULT_MAPE_FLOOR
from stlab.models.windows.inputs import fill_causal


@dataclass(frozen=True)
class NetworkSetup:
    """How one network is forecast and scored.

    Attributes:
        minutes_per_step: (int) the time step (5 for loop detectors, 60 for hourly counts).
        window: (int) steps of history the neural models read.
        horizon: (int) steps forecast from each origin.
        report_steps: (tuple[int, ...]) steps ahead shown in tables: short, medium, long.
        step: (int) steps between rolling origins.
        season: (int) steps per day: MASE's season.
        average_season: (int) the historical average's season: steps per day, or per week when
            the history holds several weeks.
        clock_periods: (tuple[int, ...]) periods (steps) of the neural models' clock inputs.
        transform: (str | None) ``"log1p"`` for counts, ``None`` for speeds.
        adjacency: (str) ``"weights"`` uses the published weights (similarities); ``"binary"``
            keeps only which pairs are linked (for weights that are distances) and symmetrises.
        mape_min_true: (float) MAPE keeps actuals of at least this, in the data's unit (default
            :data:`stlab.metrics.DEFAULT_MAPE_FLOOR`, 1: speeds below 1 mph are failed detectors,
            and a percentage of a near-zero reading is unbounded).
        test_share: (float) last share of the steps used for testing.
        validation_share: (float) last share of the history held out for early stopping.
        unit: (str) the unit of the readings, for labels.
    """

    minutes_per_step: int
    window: int
    horizon: int
    report_steps: tuple[int, ...]
    step: int
    season: int
    average_season: int
    clock_periods: tuple[int, ...] = ()
    transform: Literal["log1p"] | None = None
    adjacency: Literal["weights", "binary"] = "weights"
    mape_min_true: float = DEFAULT_MAPE_FLOOR
    test_share: float = 0.2
    validation_share: float = 0.125
    unit: str = ""

    def __post_init__(self) -> None:
        if not all(1 <= s <= self.horizon for s in self.report_steps):
            raise ValueError(f"report_steps {self.report_steps} must lie in 1..horizon = {self.horizon}")
        if not 0 < self.test_share < 1 or not 0 <= self.validation_share < 1:
            raise ValueError("test_share must be in (0, 1) and validation_share in [0, 1)")
        if not self.mape_min_true > 0:
            raise ValueError(f"mape_min_true must be > 0 (MAPE's floor, in the data's unit), got {self.mape_min_true!r}")

    def step_label(self, steps: int) -> str:
        """``"15 min"`` or ``"3 h"``: how far ahead ``steps`` steps are."""
        minutes = steps * self.minutes_per_step
        return f"{minutes // 60} h" if minutes % 60 == 0 and minutes >= 60 else f"{minutes} min"

    def first_test_step(self, num_steps: int) -> int:
        """Index of the first test step (the first origin) for a series of ``num_steps``."""
        return int(round(num_steps * (1 - self.test_share)))

    def adjacency_of(self, series: GraphSeries) -> np.ndarray:
        """The ``[N, N]`` adjacency the graph models use."""
        adjacency = series.adjacency()
        if self.adjacency == "binary":
            linked = (adjacency > 0).astype(np.float32)
            return np.maximum(linked, linked.T)
        return adjacency


#: The registered networks' setups. LOS-LOOP follows the T-GCN and DCRNN papers: one hour in,
#: one hour out, reported at 15, 30 and 60 minutes. Montevideo's edge weights are distances
#: along the bus line, so the graph keeps only which stops are consecutive, in both directions.
NETWORK_SETUPS: dict[str, NetworkSetup] = {
    "los-loop": NetworkSetup(minutes_per_step=5, window=12, horizon=12, report_steps=(3, 6, 12), step=12,
                             season=288, average_season=288, clock_periods=(288,), unit="mph"),
    "montevideo-bus": NetworkSetup(minutes_per_step=60, window=12, horizon=6, report_steps=(1, 3, 6), step=5,
                                   season=24, average_season=168, clock_periods=(24, 168), transform="log1p", adjacency="binary",
                                   mape_min_true=1.0, unit="passengers / h"),
    # One series (Capital Bikeshare's hourly rentals, chapter 3) on the same protocol: a day in, six hours out.
    "bike-sharing": NetworkSetup(minutes_per_step=60, window=24, horizon=6, report_steps=(1, 3, 6), step=6,
                                 season=24, average_season=168, clock_periods=(24, 168), transform="log1p",
                                 mape_min_true=1.0, unit="rentals / h"),
    "synthetic": NetworkSetup(minutes_per_step=15, window=12, horizon=8, report_steps=(1, 4, 8), step=8,
                              season=96, average_season=96, clock_periods=(96,), unit="mph"),
}


def network_setup(dataset: str) -> NetworkSetup:
    """The setup of a registered network; for your own, build a :class:`NetworkSetup`."""
    try:
        return NETWORK_SETUPS[dataset]
    except KeyError:
        raise KeyError(f"no setup for {dataset!r}; registered: {sorted(NETWORK_SETUPS)}. For your own network, "
                       "create NetworkSetup(minutes_per_step=..., window=..., horizon=..., ...)") from None


# --------------------------------------------------------------------------- the chapter's models
#: Training budget of the chapter's neural models: maximum epochs of each graph model, and
#: node-windows drawn per epoch (windows times the nodes each holds, equal on both networks).
NUM_EPOCHS = 10
NODE_WINDOWS_PER_EPOCH = 53_000


def graph_model_config(setup: NetworkSetup, model: Literal["tgcn", "stgcn"], num_nodes: int, *, seed: int = 0,
                       num_epochs: int = NUM_EPOCHS, node_windows_per_epoch: int = NODE_WINDOWS_PER_EPOCH) -> Any:
    """The chapter's :class:`~stlab.models.torch.stgraph.GraphForecasterConfig` for a network.

    A window of the bus network holds 675 nodes, one of LOS-LOOP 207: an epoch draws as many
    node-windows on both, and a network of more than 300 nodes gets narrower layers, so both
    cost about the same. The graph models read the historical profile and forecast the
    deviation from it, and hold out the last ``validation_share`` of the history for early
    stopping.
    """
    from stlab.models.torch.stgraph import GraphForecasterConfig

    return GraphForecasterConfig(
        model=model, window=setup.window, horizon=setup.horizon, hidden_size=32 if num_nodes <= 300 else 16,
        spatial_channels=16, clock_periods=setup.clock_periods, transform=setup.transform, num_epochs=num_epochs,
        samples_per_epoch=max(node_windows_per_epoch // num_nodes, 8), validation_share=setup.validation_share,
        seed=seed, profile_season=setup.average_season, progress=False)


def node_lstm_config(setup: NetworkSetup, *, seed: int = 0) -> Any:
    """The chapter's per-node LSTM (:class:`~stlab.models.windows.ForecasterConfig`): one network
    shared by all nodes, each reading its own window, trained to convergence (patience 6)."""
    from stlab.models.windows import ForecasterConfig

    return ForecasterConfig(
        window=setup.window, horizon=setup.horizon, hidden_size=32, seasonal_lags=(),
        clock_periods=setup.clock_periods, transform=setup.transform, num_epochs=30, patience=6,
        samples_per_epoch=4096, validation_share=setup.validation_share, seed=seed, progress=False,
        calibration_share=0.0,  # point forecasts only: the whole held-out part early-stops, as for the graph models
        name="LSTM per node")


def network_forecasters(series: GraphSeries, setup: NetworkSetup, *, seed: int = 0, num_epochs: int = NUM_EPOCHS,
                        node_windows_per_epoch: int = NODE_WINDOWS_PER_EPOCH,
                        models: Sequence[str] | None = None) -> dict[str, Callable[[], Forecaster]]:
    """Factories of the chapter's models on one network, by name.

    ``"historical average"``, ``"LSTM per node"`` (fed causally filled readings: its windows
    cannot skip a gap), ``"T-GCN"``, ``"STGCN"`` and ``"STGCN without edges"`` (the same STGCN
    with ``S = I``: every node on its own). ``models`` keeps only the named ones, in that order.
    """
    from stlab.forecasting import HistoricalAverageForecaster
    from stlab.models.torch.forecast import TorchRecurrentForecaster
    from stlab.models.torch.stgraph import GraphForecaster

    adjacency = setup.adjacency_of(series)
    n = series.num_nodes
    budget = {"seed": seed, "num_epochs": num_epochs, "node_windows_per_epoch": node_windows_per_epoch}
    every: dict[str, Callable[[], Forecaster]] = {
        "historical average": lambda: HistoricalAverageForecaster(setup.average_season),
        "LSTM per node": lambda: CausallyFilled(TorchRecurrentForecaster(node_lstm_config(setup, seed=seed))),
        "T-GCN": lambda: GraphForecaster(adjacency, graph_model_config(setup, "tgcn", n, **budget)),
        "STGCN": lambda: GraphForecaster(adjacency, graph_model_config(setup, "stgcn", n, **budget)),
        "STGCN without edges": lambda: GraphForecaster(np.zeros_like(adjacency),
                                                       graph_model_config(setup, "stgcn", n, **budget)),
    }
    if models is None:
        return every
    unknown = set(models) - set(every)
    if unknown:
        raise ValueError(f"unknown models {sorted(unknown)}; choose from {list(every)}")
    return {name: every[name] for name in models}


def arima_per_node(setup: NetworkSetup) -> Forecaster:
    """The chapter's per-node ARIMA: ARIMA(1,1,1) for speeds, AR(2) on ``log(1 + y)`` for counts."""
    from stlab.forecasting import SarimaForecaster

    if setup.transform == "log1p":
        return SarimaForecaster((2, 0, 0), transform="log1p", name="AR(2) per node")
    return SarimaForecaster((1, 1, 1), name="ARIMA(1,1,1) per node")


class CausallyFilled:
    """A forecaster that cannot skip missing readings, fed with them filled from the past.

    Each ``NaN`` becomes the node's last earlier reading -- only the past is used -- or, before
    the node's first reading, its mean over the history given to ``fit`` (never test data). The metrics still
    score the true, unfilled actuals: :func:`evaluate_network` takes them from the series.

    Args:
        forecaster: the wrapped forecaster (for example the per-node LSTM).
    """

    def __init__(self, forecaster: Forecaster) -> None:
        self.forecaster = forecaster
        self.name = getattr(forecaster, "name", type(forecaster).__name__)
        self._last: np.ndarray | None = None

    def _fill(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        flat = y.reshape(len(y), -1)
        assert self._last is not None
        filled = fill_causal(np.concatenate([self._last[None], flat]), self._last)[1:].astype(np.float64)
        self._last = filled[-1]
        return filled.reshape(y.shape)

    def fit(self, y: np.ndarray, exog: np.ndarray | None = None) -> CausallyFilled:
        flat = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        with np.errstate(all="ignore"):
            self._last = np.nan_to_num(np.nanmean(flat, axis=0))
        self.forecaster.fit(self._fill(y), exog)
        return self

    def update(self, y_new: np.ndarray, exog_new: np.ndarray | None = None) -> CausallyFilled:
        if self._last is None:
            raise RuntimeError(f"{self.name}: call fit() before update()")
        y_new = np.asarray(y_new, dtype=np.float64)
        check_new_rows(y_new, len(self._last) if y_new.ndim == 2 or len(self._last) > 1 else None, self.name)
        self.forecaster.update(self._fill(y_new), exog_new)
        return self

    def forecast(self, horizon: int, exog_future: np.ndarray | None = None, *, level: float = 0.9) -> Any:
        return self.forecaster.forecast(horizon, exog_future, level=level)


@dataclass
class NetworkEvaluation:
    """Every model's rolling-origin result on one network, under one setup.

    Attributes:
        series: the network.
        setup: its :class:`NetworkSetup`.
        results: one :class:`~stlab.forecasting.RollingOriginResult` per model, same origins.
        seconds: wall-clock seconds per model (fit plus every origin).
        models: the fitted forecasters at the last origin, by name.
    """

    series: GraphSeries
    setup: NetworkSetup
    results: list[RollingOriginResult] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)

    def table(self, nodes: Sequence[int] | np.ndarray | None = None) -> pd.DataFrame:
        """MAE / RMSE / MAPE at the reported steps, over all nodes or the given ones.

        Over all nodes, models evaluated on some nodes only are left out; over ``nodes``, every
        model that covers them is shown.
        """
        if nodes is None:
            results = [r for r in self.results if "nodes" not in r.extra]
        else:
            nodes = np.asarray(nodes)
            results = [r.select(nodes) for r in self.results
                       if "nodes" not in r.extra or set(nodes.tolist()) <= set(r.extra["nodes"].tolist())]
        return horizon_table(results, self.setup.report_steps, step_label=self.setup.step_label,
                             mape_min_true=self.setup.mape_min_true)

    def result(self, name: str) -> RollingOriginResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"no model named {name!r}; evaluated: {[r.name for r in self.results]}")

    def mae_by_step(self) -> pd.DataFrame:
        """``[horizon, models]`` MAE over all valid points at each step ahead."""
        return pd.DataFrame({r.name: r.metrics_by_horizon()["MAE"] for r in self.results})

    def mae_by_node(self, name: str, step: int) -> np.ndarray:
        """``[N]`` MAE of one model at one step ahead, per node (``NaN`` where nothing is valid)."""
        r = self.result(name)
        error = np.abs(r.forecasts[:, step - 1] - r.actuals[:, step - 1])  # [origins, N]
        with np.errstate(all="ignore"):
            return np.nanmean(error, axis=0) if np.isfinite(error).any() else np.full(error.shape[1], np.nan)


def evaluate_network(series: GraphSeries, setup: NetworkSetup,
                     forecasters: Mapping[str, Callable[[], Forecaster]], *,
                     nodes: Sequence[int] | np.ndarray | None = None, progress: bool = True,
                     into: NetworkEvaluation | None = None) -> NetworkEvaluation:
    """Fit each forecaster on the history and roll it over the test part (see the module docstring).

    Args:
        series: the network's readings and graph.
        setup: the protocol's settings for it.
        forecasters: name -> factory of a fresh, unfitted forecaster of ``[T, N]`` (or of the
            ``nodes`` columns only, when ``nodes`` is given).
        nodes: evaluate on these node positions only (for models too slow for every node; compare
            the others on the same nodes with ``table(nodes)``).
        progress: progress bars over origins.
        into: add the results to an earlier evaluation of the same network.

    Returns:
        A :class:`NetworkEvaluation`.
    """
    evaluation = into or NetworkEvaluation(series, setup)
    values = series.values.astype(np.float64)
    if nodes is not None:
        nodes = np.asarray(nodes)
        values = values[:, nodes]
    initial = setup.first_test_step(series.num_steps)
    if initial <= setup.season:
        raise ValueError(f"{series.name}: {initial} history steps do not cover one season ({setup.season}); "
                         "use a longer series or a smaller test_share")
    for name, make in forecasters.items():
        start = time.perf_counter()
        holder: dict[str, Any] = {}

        def factory(make: Callable[[], Forecaster] = make) -> Forecaster:
            holder["model"] = make()
            return holder["model"]

        result = rolling_origin(values, factory, initial=initial, horizon=setup.horizon, step=setup.step,
                                season=setup.season, progress=progress)
        result.name = name
        if nodes is not None:
            result = _widen(result, nodes, series.num_nodes)
        evaluation.results.append(result)
        evaluation.seconds[name] = time.perf_counter() - start
        evaluation.models[name] = holder.get("model")
    return evaluation


def _widen(result: RollingOriginResult, nodes: np.ndarray, num_nodes: int) -> RollingOriginResult:
    """A result over some nodes, placed in an all-node array (``NaN`` elsewhere) so that
    ``select(nodes)`` lines it up with the other models."""
    import dataclasses

    def place(a: np.ndarray | None) -> np.ndarray | None:
        if a is None:
            return None
        full = np.full(a.shape[:-1] + (num_nodes,), np.nan)
        full[..., nodes] = a
        return full

    scale = np.full(num_nodes, np.nan)
    scale[nodes] = result.scale
    return dataclasses.replace(result, forecasts=place(result.forecasts), actuals=place(result.actuals),
                               lower=place(result.lower), upper=place(result.upper), scale=scale,
                               extra={**result.extra, "nodes": nodes})


__all__ = ["CausallyFilled", "NETWORK_SETUPS", "NODE_WINDOWS_PER_EPOCH", "NUM_EPOCHS", "NetworkEvaluation",
           "NetworkSetup", "arima_per_node", "evaluate_network", "fill_causal", "graph_model_config",
           "network_forecasters", "network_setup", "node_lstm_config"]
