"""The Keras space-time Transformer: forward parity with the PyTorch net on shared weights, weight
exchange, batches, masks without NaN, training, checkpoints and the BCE loss."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest

if importlib.util.find_spec("keras") is None or importlib.util.find_spec("torch") is None:
    pytest.skip("the parity tests need Keras and PyTorch", allow_module_level=True)

# The model's module first: it quiets TensorFlow before the first ``import keras`` starts it.
from stlab.models.keras.attention import (KERAS_INPUT_FIELDS, AttentionSequence,  # noqa: I001
                                          TransformerNextVisit, bce_pair_loss, keras_inputs)
import keras
import torch
from stlab.cleaning import CleaningConfig, clean_checkins
from stlab.data import NYC_BBOX, SyntheticWorld, WorldConfig
from stlab.models.attention.config import (ATTENTION_INPUT_FIELDS, TransformerConfig, encode_attention,
                                           pair_bucket_index)
from stlab.models.recurrent import popularity_prior
from stlab.models.torch.attention import SpaceTimeTransformerNet
from stlab.models.torch.attention import TransformerNextVisit as TorchTransformer
from stlab.protocol import build_task
from stlab.splits import temporal_split
from stlab.training import cpu_threads

SMALL = {"d_model": 16, "num_heads": 2, "ffn_dim": 32, "batch_size": 64, "device": "cpu", "progress": False}
COMPONENTS = ("repeat", "transition", "explore")
# Keras traces its train step once per batch shape: 59 divides the fixture's 295 training
# queries, so a fit traces once instead of twice (seconds each on a CPU).
FIT = {**SMALL, "batch_size": 59}


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


def torch_net(task, config):
    """A PyTorch net with its own seeded start and random relation biases (they start at zero),
    and its weights as the framework-neutral dict."""
    torch.manual_seed(0)
    net = SpaceTimeTransformerNet(task.num_pois, popularity_prior(task), config, task.history_len).eval()
    with torch.no_grad():
        for block in net.blocks:
            if block.attention.time_bias is not None:
                block.attention.time_bias.normal_()
                block.attention.distance_bias.normal_()
    return net, {name: tensor.numpy().copy() for name, tensor in net.state_dict().items()}


@pytest.mark.parametrize("settings", [{}, {"relation_bias": False},
                                      {"num_layers": 2, "norm": "post", "positions": "sinusoidal",
                                       "components": COMPONENTS}],
                         ids=["softmax+ST", "softmax", "two-post-sinusoidal-mixture+ST"])
def test_forward_parity_with_pytorch_on_shared_weights(task, settings):
    config = TransformerConfig(**SMALL, **settings)
    net, weights = torch_net(task, config)
    model = TransformerNextVisit(config).import_weights(task, weights)
    q = task.queries("test")
    x = encode_attention(task, q, counts=config.components != ("explore",))
    inputs = [None if getattr(x, n) is None else torch.from_numpy(getattr(x, n)) for n in ATTENTION_INPUT_FIELDS]
    with torch.no_grad():
        torch_scores = net(*inputs).numpy()
        torch_maps = net.encode(*inputs[:7])[1][:, :, :-1].numpy()
    keras_scores = model.score(q)
    assert keras_scores.dtype == np.float64 and keras_scores.shape == (len(q), task.num_pois)
    assert np.abs(keras_scores - torch_scores).max() <= 1e-5  # float32 log-probabilities
    np.testing.assert_allclose(model.attention_weights(q), torch_maps, atol=1e-6)
    if config.relation_bias:  # the biases matter: without them the same weights score differently
        plain = {k: (np.zeros_like(v) if k.endswith(("time_bias", "distance_bias")) else v) for k, v in weights.items()}
        assert np.abs(TransformerNextVisit(config).import_weights(task, plain).score(q) - keras_scores).max() > 1e-3


def test_weights_round_trip_and_mismatches_are_refused(task):
    config = TransformerConfig(**SMALL, components=COMPONENTS, num_epochs=1)
    trained = TorchTransformer(config).fit(task)  # a trained PyTorch model, its weights to Keras
    exported = trained.export_weights()
    model = TransformerNextVisit(config).import_weights(task, exported)
    again = model.export_weights()
    assert set(again) == set(exported) and all(np.array_equal(again[k], exported[k]) for k in exported)
    q = task.queries("test")
    assert np.abs(model.score(q) - trained.score(q)).max() <= 1e-5
    np.testing.assert_allclose(model.mixture_weights(q), trained.mixture_weights(q), atol=1e-6)
    with pytest.raises(ValueError, match="missing"):
        TransformerNextVisit(config).import_weights(task, {k: v for k, v in exported.items() if k != "gate.weight"})
    with pytest.raises(ValueError, match="unexpected"):
        TransformerNextVisit(TransformerConfig(**SMALL)).import_weights(task, exported)  # no gate there
    wrong = dict(exported, **{"blocks.0.attention.time_bias": np.zeros((3, 16), np.float32)})
    with pytest.raises(ValueError, match="shape"):
        TransformerNextVisit(config).import_weights(task, wrong)


def test_batches_carry_the_reference_buckets_and_seeded_negatives(task):
    q = task.queries("train")
    config = TransformerConfig(**SMALL, loss="bce")
    data = AttentionSequence(task, q, config, shuffle=False, counts=False)
    inputs, pair = data[0]
    x = encode_attention(task, q.subset(slice(0, 64)), counts=False)
    assert set(inputs) == set(KERAS_INPUT_FIELDS) - {"visit_counts", "transition_counts"}
    full = pair_bucket_index(x.hours_before, x.coordinates)  # [B, N, N]; a one-block network reads the last row
    np.testing.assert_array_equal(inputs["pair_bucket"], full[:, -1:])
    assert pair.shape == (64, 2) and np.array_equal(pair[:, 0], x.target) and (pair[:, 1] != pair[:, 0]).all()
    again = AttentionSequence(task, q, config, shuffle=False, counts=False)[0][1]
    np.testing.assert_array_equal(again, pair)
    mixture = AttentionSequence(task, q, TransformerConfig(**SMALL, components=COMPONENTS), shuffle=False)[0][0]
    encoded = keras_inputs(encode_attention(task, q.subset(slice(0, 64))), config)
    for name in KERAS_INPUT_FIELDS:
        np.testing.assert_array_equal(mixture[name], encoded[name], err_msg=name)
    assert keras_inputs(x, config, all_rows=True)["pair_bucket"].shape == (64, 7, 7)
    logits = np.array([[2.0, -1.0, 0.5]], dtype="float32")
    expected = np.log1p(np.exp(-2.0)) + np.log1p(np.exp(0.5))
    assert float(keras.ops.convert_to_numpy(bce_pair_loss(np.array([[0, 2]]), logits))[0]) == pytest.approx(expected)


def test_no_nan_for_a_single_check_in_of_history(task):
    q = task.queries("test")
    lengths = np.resize(np.arange(1, task.history_len + 1), len(q))
    keep = np.arange(task.history_len)[None, :] >= task.history_len - lengths[:, None]
    short = dataclasses.replace(q, history_poi=np.where(keep, q.history_poi, -1),
                                history_time=np.where(keep, q.history_time, 0),
                                history_in_train=keep & q.history_in_train)
    config = TransformerConfig(**SMALL, num_layers=2, dropout=0.3, components=COMPONENTS)
    model = TransformerNextVisit(config).import_weights(task, torch_net(task, config)[1])
    inputs = keras_inputs(encode_attention(task, short), config)
    for training in (True, False):
        out = keras.ops.convert_to_numpy(model.net_(inputs, training=training))
        assert np.isfinite(out).all(), training
    assert np.isfinite(model.score(short)).all() and np.isfinite(model.attention_weights(short)).all()


def test_fit_checkpoints_and_reloads(task, tmp_path):
    assert len(task.queries("train")) % FIT["batch_size"] == 0
    config = TransformerConfig(**FIT, num_epochs=2, components=COMPONENTS, lr=1e-2)
    checkpoint = tmp_path / "best.weights.h5"
    model = TransformerNextVisit(config, checkpoint=str(checkpoint)).fit(task)
    assert model.name == f"Transformer softmax+ST repeat+transition+explore (Keras/{keras.backend.backend()})"
    q = task.queries("test")
    scores = model.score(q)
    assert np.isfinite(scores).all()
    np.testing.assert_allclose(np.logaddexp.reduce(scores, axis=1), 0.0, atol=1e-5)
    history = model.history_
    assert list(history.columns) == ["train loss", "seconds", "examples/s", "validation"] and 1 <= len(history) <= 2
    assert checkpoint.exists()
    loaded = TransformerNextVisit(config).load(task, str(checkpoint))
    exported, restored = model.export_weights(), loaded.export_weights()
    assert all(np.array_equal(restored[k], exported[k]) for k in exported)  # the best epoch's weights, exactly
    # Within float32 round-off: the reloaded model is not compiled, so Keras runs another graph.
    np.testing.assert_allclose(loaded.score(q), scores, atol=1e-5)
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        TransformerNextVisit(config, checkpoint=str(tmp_path / "best.pt"))


def test_bce_fit_runs(task):
    model = TransformerNextVisit(TransformerConfig(**FIT, num_epochs=1, loss="bce")).fit(task)
    scores = model.score(task.queries("test"))
    assert model.name.startswith("Transformer bce+ST (Keras/") and np.isfinite(scores).all()
    np.testing.assert_allclose(np.logaddexp.reduce(scores, axis=1), 0.0, atol=1e-8)  # log-softmax of the logits
    assert np.isfinite(model.history_["train loss"]).all()
