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


def test_mape_floor_is_stated_and_positive():
    from stlab.metrics import DEFAULT_MAPE_FLOOR

    assert network_setup("los-loop").mape_min_true == DEFAULT_MAPE_FLOOR
    with pytest.raises(ValueError, match="mape_min_true must be > 0"):
        NetworkSetup(minutes_per_step=5, window=12, horizon=12, report_steps=(12,), step=12, season=288,
                     average_season=288, mape_min_true=0.0)


def test_the_chapters_models_and_settings():
    pytest.importorskip("torch")
    from stlab.graph_forecasting import arima_per_node, graph_model_config, network_forecasters, node_lstm_config

    series = load_graph_series("synthetic", smoke=True)
    setup = network_setup("synthetic")
    every = network_forecasters(series, setup, seed=3)
    assert list(every) == ["historical average", "LSTM per node", "T-GCN", "STGCN", "STGCN without edges"]
    ablation = every["STGCN without edges"]()
    assert ablation.operator_matrix.nnz == series.num_nodes  # S = I: only the self-loops remain
    assert list(network_forecasters(series, setup, models=["STGCN"])) == ["STGCN"]
    with pytest.raises(ValueError, match="unknown models"):
        network_forecasters(series, setup, models=["DCRNN"])
    small, wide = (graph_model_config(setup, "stgcn", n, seed=3) for n in (200, 675))
    assert (small.hidden_size, wide.hidden_size) == (32, 16) and small.seed == 3
    assert small.samples_per_epoch * 200 <= 53_000 and wide.samples_per_epoch == 53_000 // 675
    assert node_lstm_config(setup).calibration_share == 0.0  # point forecasts: all held-out data early-stops
    assert "ARIMA" in arima_per_node(setup).name and "AR(2)" in arima_per_node(network_setup("montevideo-bus")).name


def test_causally_filled_update_checks_the_shape():
    model = CausallyFilled(NaiveForecaster()).fit(np.ones((10, 3)))
    with pytest.raises(ValueError, match=r"\[k, 3\].*got shape \[2, 2\]"):
        model.update(np.ones((2, 2)))
    with pytest.raises(RuntimeError, match="fit"):
        CausallyFilled(NaiveForecaster()).update(np.ones((2, 3)))
