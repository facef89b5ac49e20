"""The PyTorch space-time Transformer: shapes, causality, masks without NaN, the relation biases,
padding invariance, training, checkpoints and the BCE loss."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stlab.cleaning import CleaningConfig, clean_checkins
from stlab.data import NYC_BBOX, SyntheticWorld, WorldConfig
from stlab.models.attention.config import (
    ATTENTION_INPUT_FIELDS,
    TransformerConfig,
    encode_attention,
    relation_buckets,
)
from stlab.models.recurrent import mixture_log_probabilities_numpy, popularity_prior
from stlab.models.torch.attention import (
    SpaceTimeTransformerNet,
    TransformerNextVisit,
    bce_loss,
    draw_negatives,
    pairwise_buckets,
)
from stlab.protocol import NextVisitQueries, build_task, evaluate
from stlab.splits import temporal_split
from stlab.training import cpu_threads

SMALL = {"d_model": 16, "num_heads": 2, "ffn_dim": 32, "batch_size": 64, "device": "cpu", "progress": False}
COMPONENTS = ("repeat", "transition", "explore")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors gain nothing from more threads, and on a busy machine PyTorch's spinning pool
    can make them many times slower (the numbers do not depend on it)."""
    with cpu_threads(1):
        yield


@pytest.fixture(scope="module")
def task():
    world = SyntheticWorld(WorldConfig(num_users=30, num_pois=80, num_days=10, seed=4))
    checkins, _ = clean_checkins(world.checkins, CleaningConfig(bbox=NYC_BBOX, min_user_checkins=3, min_poi_checkins=3))
    return build_task(checkins, temporal_split(checkins), timezone="America/New_York", history_len=6)


def tensors(task, queries, *, counts=True, double=False):
    """The network's arguments for ``queries`` (floats in float64 with ``double``)."""
    x = encode_attention(task, queries, counts=counts)
    out = [None if getattr(x, n) is None else torch.from_numpy(getattr(x, n)) for n in ATTENTION_INPUT_FIELDS]
    return [t.double() if double and t is not None and t.is_floating_point() else t for t in out]


def make_net(task, *, double=True, max_history=None, random_biases=True, **settings):
    torch.manual_seed(0)
    config = TransformerConfig(**{**SMALL, **settings})
    net = SpaceTimeTransformerNet(task.num_pois, popularity_prior(task), config, max_history or task.history_len)
    if random_biases and config.relation_bias:  # they start at zero; make them matter
        with torch.no_grad():
            for block in net.blocks:
                block.attention.time_bias.normal_(0.0, 1.0)
                block.attention.distance_bias.normal_(0.0, 1.0)
    return (net.double() if double else net).eval()


def truncated(queries: NextVisitQueries, lengths: np.ndarray) -> NextVisitQueries:
    """The same queries with each history cut to its last ``lengths[q]`` check-ins (left-padded)."""
    keep = np.arange(queries.history_poi.shape[1])[None, :] >= queries.history_poi.shape[1] - lengths[:, None]
    keep &= queries.history_poi >= 0
    return dataclasses.replace(queries, history_poi=np.where(keep, queries.history_poi, -1),
                               history_time=np.where(keep, queries.history_time, 0),
                               history_in_train=keep & queries.history_in_train)


def test_shapes_distribution_and_attention_maps(task):
    q = task.queries("test")
    net = make_net(task, num_layers=2, components=COMPONENTS)
    with torch.no_grad():
        log_probs = net(*tensors(task, q, double=True))
        states, weights = net.encode(*tensors(task, q, double=True)[:7], all_tokens=True)
    assert log_probs.shape == (len(q), task.num_pois)
    np.testing.assert_allclose(torch.logsumexp(log_probs, 1).numpy(), 0.0, atol=1e-8)  # prior: float32
    assert states.shape == (len(q), 7, 16) and weights.shape == (len(q), 2, 7, 7)
    model = TransformerNextVisit(TransformerConfig(**SMALL, num_epochs=1)).fit(task)
    maps = model.attention_weights(q)
    assert maps.shape == (len(q), 2, task.history_len) and (maps >= 0).all()
    padding = np.broadcast_to((q.history_poi < 0)[:, None, :], maps.shape)
    assert (maps[padding] == 0).all() and (maps.sum(-1) <= 1 + 1e-6).all()


def test_buckets_in_torch_equal_the_numpy_reference(task):
    x = encode_attention(task, task.queries("test"), counts=False)
    net = make_net(task)
    args = (torch.from_numpy(x.hours_before), torch.from_numpy(x.coordinates), net.time_edges, net.distance_edges)
    time_bucket, distance_bucket = pairwise_buckets(*args)
    expected_time, expected_distance = relation_buckets(x.hours_before, x.coordinates)
    np.testing.assert_array_equal(time_bucket.numpy(), expected_time)
    np.testing.assert_array_equal(distance_bucket.numpy(), expected_distance)
    assert len(np.unique(expected_time)) > 3 and len(np.unique(expected_distance)) > 3  # the test means something
    last_time, last_distance = pairwise_buckets(*args, query_row_only=True)
    np.testing.assert_array_equal(last_time.numpy(), expected_time[:, -1:])
    np.testing.assert_array_equal(last_distance.numpy(), expected_distance[:, -1:])


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_a_later_step_never_changes_an_earlier_token(task, norm):
    q = task.queries("test")
    rows = np.flatnonzero((q.history_poi >= 0).all(1))[:8]
    inputs = tensors(task, q.subset(rows), double=True)
    net = make_net(task, num_layers=2, norm=norm)
    changed = [t.clone() for t in inputs[:7]]
    step = 3  # change everything about history step 3: its POI, time, gap and place
    changed[0][:, step] = changed[0][:, step] % task.num_pois + 1
    changed[1][:, step] = (changed[1][:, step] + 50) % 168
    changed[2][:, step] += 1.5
    changed[5][:, step] += 30.0
    changed[6][:, step] += 0.05
    with torch.no_grad():
        before, _ = net.encode(*inputs[:7], all_tokens=True)
        after, _ = net.encode(*changed, all_tokens=True)
        query_state, _ = net.encode(*inputs[:7])
    torch.testing.assert_close(after[:, :step], before[:, :step], rtol=0, atol=0)  # exactly unchanged
    assert (after[:, step:] - before[:, step:]).abs().amax(dim=-1).min() > 1e-6  # later tokens all see it
    torch.testing.assert_close(query_state, before[:, -1], rtol=0, atol=1e-12)  # the query-row shortcut


@pytest.mark.parametrize("settings", [{"num_layers": 2, "dropout": 0.3, "components": COMPONENTS},
                                      {"num_layers": 1, "norm": "post", "positions": "sinusoidal"}])
def test_no_nan_for_short_and_mixed_histories(task, settings):
    q = task.queries("test")
    lengths = np.resize(np.arange(1, task.history_len + 1), len(q))  # 1, 2, ..., L, 1, 2, ...
    short = truncated(q, lengths)
    assert ((short.history_poi >= 0).sum(1) == 1).any()  # users with a single check-in of history
    net = make_net(task, double=False, **settings)
    inputs = tensors(task, short)
    for training in (True, False):
        net.train(training)
        log_probs = net(*inputs)
        assert torch.isfinite(log_probs).all(), training
        states, weights = net.encode(*inputs[:7], all_tokens=True)
        assert torch.isfinite(states).all() and torch.isfinite(weights).all()
        # Padding rows have nothing to attend to: their weights are zero, not NaN.
        padding_rows = torch.cat([inputs[0] == 0, torch.zeros(len(q), 1, dtype=torch.bool)], 1)
        assert (weights.permute(0, 2, 1, 3)[padding_rows] == 0).all()
        if training:
            net.zero_grad()
            torch.nn.functional.nll_loss(log_probs, torch.from_numpy(short.target)).backward()
            assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    model = TransformerNextVisit(TransformerConfig(**{**SMALL, **settings}, num_epochs=1)).fit(task)
    assert np.isfinite(model.score(short)).all() and np.isfinite(model.attention_weights(short)).all()


def test_relation_bias_is_exactly_the_bucket_scalar_of_each_head(task):
    q = task.queries("test")
    inputs = tensors(task, q, double=True)
    with_bias = make_net(task)
    without = make_net(task, random_biases=False)  # the same weights (same seed), zero biases
    with torch.no_grad():
        _, weights = with_bias.encode(*inputs[:7], all_tokens=True)
        _, plain = without.encode(*inputs[:7], all_tokens=True)
        scores, plain_scores = with_bias(*inputs[:7]), without(*inputs[:7])
    assert (scores - plain_scores).abs().max() > 1e-3  # the biases change the prediction
    x = encode_attention(task, q, counts=False)
    time_bucket, distance_bucket = relation_buckets(x.hours_before, x.coordinates)
    attention = with_bias.blocks[0].attention
    bias = (attention.time_bias.detach().numpy()[:, time_bucket] + attention.distance_bias.detach().numpy()[:, distance_bucket])
    bias = bias.transpose(1, 0, 2, 3)  # [Q, H, N, N]
    # softmax(l + b) / softmax(l) is exp(b) up to one constant per row: log-ratio minus b is flat.
    allowed = weights.numpy() > 0
    assert (allowed == (plain.numpy() > 0)).all()
    residual = np.log(np.where(allowed, weights.numpy(), 1)) - np.log(np.where(allowed, plain.numpy(), 1)) - bias
    spread = np.where(allowed, residual, -np.inf).max(-1) - np.where(allowed, residual, np.inf).min(-1)  # [Q, H, N]
    rows = allowed.any(-1)  # padding rows attend to nothing
    assert rows.sum() > len(q) and spread[rows].max() < 1e-10


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_more_left_padding_changes_nothing(task, positions):
    q = task.queries("test")
    inputs = tensors(task, q, double=True)
    extra = 4
    padded = []
    for name, t in zip(ATTENTION_INPUT_FIELDS, inputs):
        if name in ("poi", "hour_of_week", "continuous", "hours_before", "coordinates"):
            t = torch.cat([torch.zeros((len(q), extra, *t.shape[2:]), dtype=t.dtype), t], dim=1)
        padded.append(t)
    net = make_net(task, max_history=task.history_len + extra, num_layers=2, positions=positions,
                   components=COMPONENTS)
    with torch.no_grad():
        torch.testing.assert_close(net(*padded), net(*inputs), rtol=0, atol=1e-10)


def test_fit_beats_random_ranking_and_reproduces(task, tmp_path):
    config = TransformerConfig(**SMALL, num_epochs=4, patience=4, lr=1e-2)
    q = task.queries("test")
    first = TransformerNextVisit(config).fit(task)
    assert first.name == "Transformer softmax+ST (PyTorch)"
    mrr = evaluate(first, q)["MRR"]
    random_mrr = np.mean(1.0 / np.arange(1, task.num_pois + 1))  # the true POI at a uniform rank
    assert mrr > 1.5 * random_mrr, (mrr, random_mrr)
    history = first.history_
    assert history["train loss"].iloc[-1] < history["train loss"].iloc[0] and "validation" in history
    scores = first.score(q)
    assert scores.dtype == np.float64 and scores.shape == (len(q), task.num_pois)
    np.testing.assert_allclose(np.logaddexp.reduce(scores, axis=1), 0.0, atol=1e-5)
    np.testing.assert_array_equal(TransformerNextVisit(config).fit(task).score(q), scores)


def test_checkpoint_reloads_with_weights_only(task, tmp_path):
    config = TransformerConfig(**SMALL, num_epochs=2, components=COMPONENTS)
    path = tmp_path / "best.pt"
    fitted = TransformerNextVisit(config, checkpoint=str(path)).fit(task)
    q = task.queries("test")
    payload = torch.load(path, weights_only=True)  # tensors and plain containers only
    assert set(payload["state_dict"]) == set(fitted.net_.state_dict())
    loaded = TransformerNextVisit(config).load(task, str(path))
    np.testing.assert_array_equal(loaded.score(q), fitted.score(q))
    assert loaded.checkpoint_metadata_["epoch"] >= 1
    weights = loaded.mixture_weights(q)
    assert weights.shape == (len(q), 3) and np.allclose(weights.sum(1), 1.0, atol=1e-6)
    exported = loaded.export_weights()
    assert set(exported) == set(payload["state_dict"]) and all(v.dtype == np.float32 for v in exported.values())


def test_mixture_head_equals_numpy_reference(task):
    q = task.queries("test")
    inputs = tensors(task, q, double=True)
    net = make_net(task, components=COMPONENTS)
    with torch.no_grad():
        got = net(*inputs).numpy()
        state, _ = net.encode(*inputs[:7])
        explore, gate = net.head(state, *inputs[7:9])
    x = encode_attention(task, q)
    expected = mixture_log_probabilities_numpy(gate.numpy(), explore.numpy(), x.visit_counts.astype(float),
                                               x.transition_counts.astype(float), popularity_prior(task).astype(float),
                                               1.0, COMPONENTS)
    np.testing.assert_allclose(got, expected, atol=1e-8)


def test_bce_loss_and_negatives(task):
    generator = torch.Generator().manual_seed(0)
    target = torch.arange(5000) % 7
    negative = draw_negatives(target, 7, generator)
    assert (negative != target).all() and ((negative >= 0) & (negative < 7)).all()
    counts = np.bincount(negative[target == 3].numpy(), minlength=7)
    assert counts[3] == 0 and counts[np.arange(7) != 3].min() > 0.7 * counts.max()  # uniform over the others
    assert torch.equal(draw_negatives(target, 7, torch.Generator().manual_seed(0)), negative)  # seeded
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    expected = -np.log(1 / (1 + np.exp(-2.0))) - np.log(1 - 1 / (1 + np.exp(-0.5)))
    assert bce_loss(logits, torch.tensor([0]), torch.tensor([2])).item() == pytest.approx(expected, rel=1e-6)
    config = TransformerConfig(**SMALL, loss="bce", num_epochs=2)
    model = TransformerNextVisit(config).fit(task)
    scores = model.score(task.queries("test"))
    assert model.name == "Transformer bce+ST (PyTorch)" and np.isfinite(scores).all()
    np.testing.assert_allclose(np.logaddexp.reduce(scores, axis=1), 0.0, atol=1e-5)
    np.testing.assert_array_equal(TransformerNextVisit(config).fit(task).score(task.queries("test")), scores)


def test_initial_poi_vectors_start_the_poi_table():
    from stlab.models.torch.attention import TransformerNextVisit as _Model

    task = _tiny_task_for_initialisation()
    config = TransformerConfig(d_model=8, num_heads=2, num_layers=1, ffn_dim=16, num_epochs=1, progress=False)
    start = np.random.default_rng(0).normal(size=(task.num_pois, 8)).astype(np.float32)
    model = _Model(config, initial_poi_vectors=start)
    model._build(task)
    np.testing.assert_array_equal(model.net_.poi_embedding.weight[1 : task.num_pois + 1].detach().numpy(), start)
    assert "initialised" in model.name
    with pytest.raises(ValueError, match=r"\[P, D\]"):
        _Model(config, initial_poi_vectors=start[:, :4])._build(task)


def _tiny_task_for_initialisation():
    from stlab.splits import temporal_split

    world = SyntheticWorld(WorldConfig(num_users=20, num_pois=40, num_days=7, seed=1))
    checkins, _ = clean_checkins(world.checkins, CleaningConfig(bbox=NYC_BBOX, min_user_checkins=3,
                                                                min_poi_checkins=3))
    return build_task(checkins, temporal_split(checkins), timezone="America/New_York", history_len=4)
