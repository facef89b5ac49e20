"""The PyTorch next-POI model: inputs, the mixture against NumPy, loading, reproducibility."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from stlab.cleaning import CleaningConfig, clean_checkins  # noqa: E402
from stlab.data import NYC_BBOX, SyntheticWorld, WorldConfig  # noqa: E402
from stlab.models.recurrent import (RecurrentConfig, encode_next_visit, local_hour_of_week,  # noqa: E402
                                    mixture_log_probabilities_numpy, popularity_prior)
from stlab.models.torch.nextvisit import (INPUT_FIELDS, RecurrentNet, RecurrentNextVisit,  # noqa: E402
                                          next_visit_loader)
from stlab.protocol import build_task, prior_transition_counts, prior_visit_counts  # noqa: E402
from stlab.splits import temporal_split  # noqa: E402


@pytest.fixture(scope="module")
def task():
    world = SyntheticWorld(WorldConfig(num_users=30, num_pois=80, num_days=10, seed=4))
    checkins, _ = clean_checkins(world.checkins, CleaningConfig(bbox=NYC_BBOX, min_user_checkins=3, min_poi_checkins=3))
    return build_task(checkins, temporal_split(checkins), timezone="America/New_York", history_len=6)


def test_local_hour_of_week():
    t = pd.Timestamp("2024-07-01 13:30", tz="America/New_York")  # a Monday
    seconds = np.array([[t.value // 10**9, (t + pd.Timedelta(days=6, hours=2)).value // 10**9]])
    assert local_hour_of_week(seconds, "America/New_York").tolist() == [[13, 6 * 24 + 15]]


def test_encoding_shapes_and_padding(task):
    q = task.queries("test")
    x = encode_next_visit(task, q)
    assert x.poi.shape == x.hour_of_week.shape == (len(q), 6) and x.continuous.shape == (len(q), 6, 2)
    assert (x.poi[q.history_poi < 0] == 0).all() and (x.poi[q.history_poi >= 0] > 0).all()
    assert ((x.hour_of_week >= 0) & (x.hour_of_week < 168)).all()
    assert ((x.target_hour_of_week >= 0) & (x.target_hour_of_week < 168)).all()
    assert (x.continuous >= 0).all() and (x.target_gap >= 0).all()
    assert np.array_equal(x.visit_counts, prior_visit_counts(task, q))
    assert np.array_equal(x.transition_counts, prior_transition_counts(task, q))
    assert np.array_equal(x.target, q.target)
    assert encode_next_visit(task, q, counts=False).visit_counts is None


def test_loader_batches_match_the_encoding(task):
    q = task.queries("train")
    loader = next_visit_loader(task, q, batch_size=16, shuffle=False)
    first = next(iter(loader))
    full = encode_next_visit(task, q.subset(slice(0, 16)))
    for tensor, name in zip(first, (*INPUT_FIELDS, "target")):
        assert np.array_equal(tensor.numpy(), getattr(full, name)), name
    assert sum(len(b[-1]) for b in loader) == len(q)


@pytest.mark.parametrize("components", [("repeat", "transition", "explore"), ("repeat", "explore"), ("explore",)])
def test_mixture_equals_numpy_reference(task, components):
    config = RecurrentConfig(components=components, poi_dim=8, time_dim=4, hidden_size=16, dropout=0.0)
    torch.manual_seed(0)
    net = RecurrentNet(task.num_pois, popularity_prior(task), config).double().eval()
    x = encode_next_visit(task, task.queries("test"))
    inputs = [None if getattr(x, n) is None else torch.from_numpy(getattr(x, n)) for n in INPUT_FIELDS]
    inputs = [t.double() if t is not None and t.is_floating_point() else t for t in inputs]
    with torch.no_grad():
        got = net(*inputs).numpy()
        joined = net.encode(*inputs[:5])
        gate = net.gate_logits(joined, *inputs[5:])
        explore = net.explore(joined).numpy() if net.explore is not None else None
    gate_np = gate.numpy() if gate is not None else np.zeros((len(got), 1))
    expected = mixture_log_probabilities_numpy(gate_np, explore, x.visit_counts.astype(float),
                                               x.transition_counts.astype(float), popularity_prior(task).astype(float),
                                               config.transition_smoothing, config.components)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(np.logaddexp.reduce(got, axis=1), 0.0, atol=1e-6)  # a distribution


def test_config_is_validated():
    with pytest.raises(ValueError, match="components"):
        RecurrentConfig(components=("repeat", "popularity"))
    with pytest.raises(ValueError, match="cell"):
        RecurrentConfig(cell="rnn")
    assert RecurrentConfig(components=("explore", "repeat")).components == ("repeat", "explore")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_one_epoch_fits_scores_and_reproduces(task, cell, tmp_path):
    config = RecurrentConfig(cell=cell, poi_dim=8, time_dim=4, hidden_size=16, num_epochs=2, batch_size=64,
                             device="cpu", progress=False)
    q = task.queries("test")
    first = RecurrentNextVisit(config, checkpoint=str(tmp_path / "best.pt")).fit(task)
    scores = first.score(q)
    assert scores.shape == (len(q), task.num_pois) and np.isfinite(scores).all()
    assert all(len(set(row)) == 5 for row in first.recommend(q, k=5))
    assert len(first.history_) >= 1 and "validation" in first.history_
    assert (tmp_path / "best.pt").exists()
    weights = first.mixture_weights(q)
    assert weights.shape == (len(q), 3) and np.allclose(weights.sum(1), 1.0)
    again = RecurrentNextVisit(config).fit(task).score(q)
    np.testing.assert_array_equal(scores, again)


@pytest.mark.parametrize("rnn_class", [torch.nn.LSTM, torch.nn.GRU])
def test_padding_never_touches_the_state(rnn_class):
    from stlab.models.torch.nextvisit import last_state

    torch.manual_seed(0)
    rnn = rnn_class(3, 5, batch_first=True).double()
    lengths = torch.tensor([4, 1, 2])
    steps = torch.randn(3, 4, 3, dtype=torch.float64)
    for b, n in enumerate(lengths):  # left padding: garbage before the real steps must not matter
        steps[b, : 4 - n] = 1e3
    got = last_state(rnn, steps, lengths)
    for b, n in enumerate(lengths):
        _, state = rnn(steps[b : b + 1, 4 - n :])  # the real steps alone, no padding at all
        alone = state[0] if isinstance(state, tuple) else state
        torch.testing.assert_close(got[b], alone[-1, 0], atol=1e-12, rtol=0)


def test_load_restores_the_checkpointed_model(task, tmp_path):
    config = RecurrentConfig(poi_dim=8, time_dim=4, hidden_size=16, num_epochs=2, batch_size=64, device="cpu",
                             progress=False)
    path = str(tmp_path / "best.pt")
    fitted = RecurrentNextVisit(config, checkpoint=path).fit(task)
    q = task.queries("test")
    loaded = RecurrentNextVisit(config).load(task, path)
    np.testing.assert_array_equal(loaded.score(q), fitted.score(q))
    assert loaded.checkpoint_metadata_["epoch"] >= 1
