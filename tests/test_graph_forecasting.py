"""The spatio-temporal forecasting protocol: setups, evaluation on node samples, filling."""

from __future__ import annotations

import numpy as np
import pytest

from stlab.data import load_graph_series, read_graph_series
from stlab.forecasting import HistoricalAverageForecaster, NaiveForecaster, rolling_origin
from stlab.graph_forecasting import NETWORK_SETUPS, CausallyFilled, NetworkSetup, evaluate_network, network_setup


def test_step_labels_and_split():
    los, bus = network_setup("los-loop"), network_setup("montevideo-bus")
    assert [los.step_label(s) for s in los.report_steps] == ["15 min", "30 min", "1 h"]
    assert [bus.step_label(s) for s in bus.report_steps] == ["1 h", "3 h", "6 h"]
    assert los.first_test_step(2016) == 1613
    with pytest.raises(KeyError, match="NetworkSetup"):
        network_setup("atlantis")
    with pytest.raises(ValueError, match="report_steps"):
        NetworkSetup(minutes_per_step=5, window=12, horizon=6, report_steps=(12,), step=1, season=12, average_season=12)


def test_binary_adjacency_is_symmetric():
    series = read_graph_series(np.ones((4, 3)), np.array([[0, 250.0, 0], [0, 0, 80.0], [0, 0, 0]]))
    adjacency = NETWORK_SETUPS["montevideo-bus"].adjacency_of(series)
    assert adjacency.tolist() == [[0, 1, 0], [1, 0, 1], [0, 1, 0]]


@pytest.fixture(scope="module")
def network():
    return load_graph_series("synthetic", smoke=True, seed=1)


def test_evaluate_network_on_all_and_on_sampled_nodes(network):
    setup = network_setup("synthetic")
    with pytest.raises(ValueError, match="silently skip"):  # a NaN reading makes the naive forecast NaN
        evaluate_network(network, setup, {"naive": NaiveForecaster}, progress=False).table()
    evaluation = evaluate_network(network, setup, {"naive": lambda: CausallyFilled(NaiveForecaster()),
                                                   "average": lambda: HistoricalAverageForecaster(96)}, progress=False)
    sample = np.array([0, 5, 7])
    evaluate_network(network, setup, {"average on a sample": lambda: HistoricalAverageForecaster(96)},
                     nodes=sample, progress=False, into=evaluation)
    full = evaluation.table()
    assert list(full.index) == ["naive", "average"]  # the sampled model is left out over all nodes
    on_sample = evaluation.table(sample)
    assert list(on_sample.index) == ["naive", "average", "average on a sample"]
    # The same model on a sample scores exactly what the full run scores on those nodes.
    assert on_sample.loc["average"].to_numpy() == pytest.approx(on_sample.loc["average on a sample"].to_numpy())
    # Missing actuals are left out of every metric, never counted as zero.
    result = evaluation.result("naive")
    assert np.isnan(result.actuals).any() and np.isfinite(full.to_numpy()).all()
    assert evaluation.mae_by_node("naive", 1).shape == (network.num_nodes,)
    assert evaluation.mae_by_step().shape == (setup.horizon, 3)


def test_causally_filled_feeds_the_past_only():
    class Recorder(NaiveForecaster):
        def fit(self, y, exog=None):
            self.seen = [np.array(y)]
            return super().fit(y, exog)

        def update(self, y_new, exog_new=None):
            self.seen.append(np.array(y_new))
            return super().update(y_new, exog_new)

    inner = Recorder()
    wrapped = CausallyFilled(inner)
    wrapped.fit(np.array([[np.nan, 1.0], [2.0, np.nan]]))
    wrapped.update(np.array([[np.nan, np.nan], [5.0, 6.0]]))
    assert inner.seen[0].tolist() == [[2.0, 1.0], [2.0, 1.0]]  # before any reading: the history's mean
    assert inner.seen[1].tolist() == [[2.0, 1.0], [5.0, 6.0]]
    result = rolling_origin(np.array([1.0, np.nan, 3.0, 4.0, np.nan, 6.0] * 10), lambda: CausallyFilled(NaiveForecaster()),
                            initial=30, horizon=2, step=2, season=6, progress=False)
    assert np.isfinite(result.forecasts).all()
