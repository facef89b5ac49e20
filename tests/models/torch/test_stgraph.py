"""Spatio-temporal graph forecasters: the T-GCN cell against its equations, STGCN shapes,
masking of missing readings, the forecasting protocol and reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stlab.data import load_graph_series  # noqa: E402
from stlab.forecasting import HistoricalAverageForecaster, horizon_table, rolling_origin  # noqa: E402
from stlab.graphs import normalized_adjacency, to_torch_sparse  # noqa: E402
from stlab.models.torch.stgraph import (STGCN, TGCN, GraphForecaster, GraphForecasterConfig,  # noqa: E402
                                        TemporalGatedConv, TGCNCell, fill_causal, masked_loss, propagate)


def _ring(n: int) -> np.ndarray:
    adjacency = np.zeros((n, n))
    for i in range(n):
        adjacency[i, (i + 1) % n] = adjacency[(i + 1) % n, i] = 1.0
    return adjacency


def test_propagate_equals_dense_product():
    rng = np.random.default_rng(0)
    operator = normalized_adjacency(_ring(7))
    x = torch.from_numpy(rng.normal(size=(3, 7, 4)).astype(np.float32))
    dense = np.einsum("ij,bjc->bic", operator.toarray(), x.numpy())
    assert np.allclose(propagate(to_torch_sparse(operator), x).numpy(), dense, atol=1e-6)


def test_tgcn_cell_follows_its_equations():
    rng = np.random.default_rng(1)
    n, f, hidden = 6, 3, 5
    operator = normalized_adjacency(_ring(n))
    s = operator.toarray()
    cell = TGCNCell(f, hidden)
    x = rng.normal(size=(2, n, f)).astype(np.float32)
    h = rng.normal(size=(2, n, hidden)).astype(np.float32)
    out = cell(to_torch_sparse(operator), torch.from_numpy(x), torch.from_numpy(h)).detach().numpy()

    wg, bg = cell.gates.weight.detach().numpy(), cell.gates.bias.detach().numpy()
    wc, bc = cell.candidate.weight.detach().numpy(), cell.candidate.bias.detach().numpy()
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    for b in range(2):
        gates = sigmoid(s @ np.concatenate([x[b], h[b]], axis=1) @ wg.T + bg)
        r, u = gates[:, :hidden], gates[:, hidden:]
        c = np.tanh(s @ np.concatenate([x[b], r * h[b]], axis=1) @ wc.T + bc)
        assert np.allclose(out[b], u * h[b] + (1 - u) * c, atol=1e-5)


def test_network_shapes_and_graph_dependence():
    n = 8
    operator = to_torch_sparse(normalized_adjacency(_ring(n)))
    x = torch.randn(4, 12, n, 3)
    for model in ("tgcn", "stgcn"):
        config = GraphForecasterConfig(model=model, window=12, horizon=5, hidden_size=8, spatial_channels=4)
        net = TGCN(operator, 3, config) if model == "tgcn" else STGCN(operator, 3, config)
        net.eval()
        out = net(x)
        assert out.shape == (4, 5, n)
        # Changing node 0's inputs moves its neighbours' forecasts: S mixes them in.
        x2 = x.clone()
        x2[:, :, 0] += 3.0
        moved = (net(x2) - out).abs().amax(dim=(0, 1))
        assert moved[1] > 1e-4 and moved[n - 1] > 1e-4


@pytest.mark.parametrize("model", ["tgcn", "stgcn"])
def test_without_edges_every_node_is_on_its_own(model):
    # S = I (no edges): nothing may carry one node's inputs to another -- not even a
    # normalisation over nodes, which is why STGCN normalises per node.
    n = 6
    operator = to_torch_sparse(normalized_adjacency(np.zeros((n, n))))
    config = GraphForecasterConfig(model=model, window=12, horizon=3, hidden_size=8, spatial_channels=4)
    torch.manual_seed(0)
    net = TGCN(operator, 2, config) if model == "tgcn" else STGCN(operator, 2, config)
    net.eval()
    x = torch.randn(3, 12, n, 2)
    x2 = x.clone()
    x2[:, :, 0] = 10 * torch.randn(3, 12, 2)
    moved = (net(x2) - net(x)).abs().amax(dim=(0, 1))
    assert moved[0] > 1e-4 and torch.all(moved[1:] < 1e-6)


def test_stgcn_weights_do_not_depend_on_the_number_of_nodes():
    config = GraphForecasterConfig(model="stgcn", window=12, horizon=3, hidden_size=8, spatial_channels=4)
    small = STGCN(to_torch_sparse(normalized_adjacency(_ring(5))), 2, config)
    large = STGCN(to_torch_sparse(normalized_adjacency(_ring(9))), 2, config)
    assert [p.shape for p in small.parameters()] == [p.shape for p in large.parameters()]


def test_graph_forecaster_update_checks_the_number_of_nodes():
    series = load_graph_series("synthetic", smoke=True)
    config = GraphForecasterConfig(model="stgcn", window=12, horizon=4, hidden_size=8, spatial_channels=4,
                                   num_epochs=1, samples_per_epoch=8, progress=False)
    model = GraphForecaster(series.adjacency(), config).fit(series.values[:300])
    with pytest.raises(ValueError, match=rf"expected new rows of shape \[k, {series.num_nodes}\]"):
        model.update(np.zeros((2, series.num_nodes + 1)))
    model.update(series.values[300:302])
    assert np.isfinite(model.forecast(4).mean).all()


def test_temporal_gated_conv_shortens_time():
    conv = TemporalGatedConv(3, 6, kernel_size=3)
    assert conv(torch.randn(2, 3, 10, 5)).shape == (2, 6, 8, 5)


def test_stgcn_window_must_outlast_its_kernels():
    with pytest.raises(ValueError, match="window"):
        GraphForecasterConfig(model="stgcn", window=8, kernel_size=3)


def test_masked_loss_averages_over_valid_targets_only():
    predicted = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.tensor([[0.0, 0.0], [0.0, float("nan")]])
    mask = torch.isfinite(target).float()
    assert float(masked_loss(predicted, target, mask)) == pytest.approx((1 + 2 + 3) / 3)
    assert float(masked_loss(predicted, target, torch.zeros_like(mask))) == 0.0


def test_fill_causal_uses_only_the_past():
    values = np.array([[np.nan, 1.0], [2.0, np.nan], [np.nan, np.nan], [5.0, 3.0]])
    filled = fill_causal(values, np.array([9.0, 8.0]))
    assert filled.tolist() == [[9.0, 1.0], [2.0, 1.0], [2.0, 1.0], [5.0, 3.0]]


@pytest.fixture(scope="module")
def network():
    return load_graph_series("synthetic", smoke=True, seed=2)


def _config(**changes):
    base = dict(window=12, horizon=6, hidden_size=16, spatial_channels=8, num_epochs=3, batch_size=16,
                clock_periods=(96,), progress=False, device="cpu")
    return GraphForecasterConfig(**{**base, **changes})


@pytest.mark.parametrize("model", ["tgcn", "stgcn"])
def test_forecaster_protocol_and_reproducibility(network, model):
    y = network.values[:300]
    first = GraphForecaster(network.adjacency(), _config(model=model)).fit(y)
    again = GraphForecaster(network.adjacency(), _config(model=model)).fit(y)
    f1, f2 = first.forecast(6).mean, again.forecast(6).mean
    assert f1.shape == (6, network.num_nodes) and np.isfinite(f1).all()
    assert np.array_equal(f1, f2)
    assert len(first.history_) >= 1 and "validation" in first.history_
    first.update(network.values[300:310])
    assert not np.array_equal(first.forecast(6).mean, f1)
    with pytest.raises(ValueError, match="horizons up to"):
        first.forecast(7)


def test_training_learns_something(network):
    y = network.values
    result = rolling_origin(y, lambda: GraphForecaster(network.adjacency(), _config(num_epochs=5)), initial=300,
                            horizon=6, step=6, season=96, progress=False)
    untrained = rolling_origin(y, lambda: GraphForecaster(network.adjacency(), _config(num_epochs=1, lr=0.0)),
                               initial=300, horizon=6, step=6, season=96, progress=False)
    table = horizon_table([result, untrained], steps=(1, 6))
    assert table[("1", "MAE")].iloc[0] < table[("1", "MAE")].iloc[1]


def test_bad_input_is_refused(network):
    forecaster = GraphForecaster(network.adjacency(), _config())
    with pytest.raises(ValueError, match="nodes like the adjacency"):
        forecaster.fit(network.values[:, :5])
    with pytest.raises(ValueError, match="regressors"):
        forecaster.fit(network.values, exog=np.zeros((len(network.values), 1)))
    with pytest.raises(RuntimeError, match="fit"):
        forecaster.forecast(3)


def test_horizon_table_refuses_results_on_other_points(network):
    y = network.values[:, :4]
    a = rolling_origin(y, lambda: HistoricalAverageForecaster(96), initial=200, horizon=4, step=10, season=96,
                       progress=False)
    b = rolling_origin(y, lambda: HistoricalAverageForecaster(96), initial=210, horizon=4, step=10, season=96,
                       progress=False)
    with pytest.raises(ValueError, match="same origins"):
        horizon_table([a, b], steps=(1, 4))


def test_with_a_profile_an_untrained_network_forecasts_the_historical_average(network):
    y = network.values[:288]
    forecaster = GraphForecaster(network.adjacency(), _config(profile_season=96, lr=0.0, num_epochs=1)).fit(y)
    forecast = forecaster.forecast(6).mean
    num_train = int(round(288 * 0.9))
    positions = (288 + np.arange(6)) % 96
    with np.errstate(all="ignore"):
        average = np.stack([np.nanmean(y[:num_train][np.arange(num_train) % 96 == p], axis=0) for p in positions])
    assert np.allclose(forecast, average, atol=1e-3)
