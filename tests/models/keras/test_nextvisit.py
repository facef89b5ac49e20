"""The Keras next-POI model: batches, the mixture against NumPy, checkpoints, reproducibility,
silence, validation of the settings, and a run on the PyTorch backend."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

if importlib.util.find_spec("keras") is None:
    pytest.skip("Keras is not installed", allow_module_level=True)

# The model's module first: it quiets TensorFlow before the first ``import keras`` starts it.
from stlab.models.keras.nextvisit import (INPUT_FIELDS, NextVisitSequence, RecurrentNet,  # noqa: E402, I001
                                          RecurrentNextVisit, input_dict, save_weights_atomically)
import keras  # noqa: E402
from stlab.baselines import NotFittedError  # noqa: E402
from stlab.cleaning import CleaningConfig, clean_checkins  # noqa: E402
from stlab.data import NYC_BBOX, SyntheticWorld, WorldConfig  # noqa: E402
from stlab.metrics import ranking_metrics_from_ranks  # noqa: E402
from stlab.models.recurrent import (RecurrentConfig, encode_next_visit,  # noqa: E402
                                    mixture_log_probabilities_numpy, popularity_prior)
from stlab.protocol import build_task, query_ranks  # noqa: E402
from stlab.splits import temporal_split  # noqa: E402

# A tiny network: the point is the plumbing, not the accuracy.
SMALL = {"poi_dim": 8, "time_dim": 4, "hidden_size": 16, "batch_size": 64, "progress": False}
REPO = Path(__file__).resolve().parents[3]


def make_task():
    world = SyntheticWorld(WorldConfig(num_users=30, num_pois=80, num_days=10, seed=4))
    checkins, _ = clean_checkins(world.checkins, CleaningConfig(bbox=NYC_BBOX, min_user_checkins=3, min_poi_checkins=3))
    return build_task(checkins, temporal_split(checkins), timezone="America/New_York", history_len=6)


@pytest.fixture(scope="module")
def task():
    return make_task()


def numpy_reference(task, gate, explore, x, config):
    """The float64 mixture from the model's own gate and explore logits."""
    gate = gate if gate is not None else np.zeros((len(x), 1))
    return mixture_log_probabilities_numpy(
        gate.astype(float), None if explore is None else explore.astype(float),
        None if x.visit_counts is None else x.visit_counts.astype(float),
        None if x.transition_counts is None else x.transition_counts.astype(float),
        popularity_prior(task).astype(float), config.transition_smoothing, config.components)


def test_batches_match_the_encoding(task):
    q = task.queries("train")
    data = NextVisitSequence(task, q, batch_size=16, shuffle=False)
    inputs, target = data[0]
    full = encode_next_visit(task, q.subset(slice(0, 16)))
    assert set(inputs) == set(INPUT_FIELDS)
    for name in INPUT_FIELDS:
        assert np.array_equal(inputs[name], getattr(full, name)), name
    assert np.array_equal(target, full.target)
    assert len(data) == math.ceil(len(q) / 16) and sum(len(data[i][1]) for i in range(len(data))) == len(q)
    with pytest.raises(IndexError):
        data[len(data)]
    explore_only, _ = NextVisitSequence(task, q, batch_size=16, shuffle=False, counts=False)[0]
    assert set(explore_only) == set(INPUT_FIELDS) - {"visit_counts", "transition_counts"}


def test_shuffling_is_seeded_and_changes_every_epoch(task):
    q = task.queries("train")

    def epochs(seed: int) -> list[np.ndarray]:
        data = NextVisitSequence(task, q, batch_size=len(q), shuffle=True, seed=seed)
        orders = []
        for _ in range(3):
            orders.append(data[0][0]["target_gap"][:, 0] * 1e6 + data[0][1])  # a fingerprint per query
            data.on_epoch_end()
        return orders

    first, again, other = epochs(0), epochs(0), epochs(1)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))  # reproducible
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[1], first[2])  # new order each epoch
    assert not np.array_equal(first[0], other[0])  # the seed matters
    assert np.array_equal(np.sort(first[0]), np.sort(first[1]))  # a permutation of the same queries


@pytest.mark.parametrize("components", [("repeat", "transition", "explore"), ("repeat", "explore"), ("explore",)])
def test_mixture_equals_numpy_reference(task, components):
    config = RecurrentConfig(components=components, poi_dim=8, time_dim=4, hidden_size=16, dropout=0.0)
    keras.utils.set_random_seed(0)
    net = RecurrentNet(task.num_pois, popularity_prior(task), config)
    x = encode_next_visit(task, task.queries("test"), counts=components != ("explore",))
    inputs = input_dict(x)
    got = keras.ops.convert_to_numpy(net(inputs, training=False)).astype(float)
    joined = net.encode(inputs, training=False)
    gate, explore = net.gate_logits(joined, inputs), net.explore_logits(joined)
    gate = None if gate is None else keras.ops.convert_to_numpy(gate)
    explore = None if explore is None else keras.ops.convert_to_numpy(explore)
    assert (gate is None) == (len(components) == 1) and (explore is None) == ("explore" not in components)
    np.testing.assert_allclose(got, numpy_reference(task, gate, explore, x, config), atol=1e-5)
    np.testing.assert_allclose(np.logaddexp.reduce(got, axis=1), 0.0, atol=1e-5)  # a distribution


def test_padding_embedding_is_zero_and_masked(task):
    keras.utils.set_random_seed(0)
    net = RecurrentNet(task.num_pois, popularity_prior(task), RecurrentConfig(**SMALL))
    inputs = input_dict(encode_next_visit(task, task.queries("test")))
    net(inputs)
    table = net.poi_embedding.embeddings.numpy()
    assert np.all(table[0] == 0) and np.all(table[1:].std(0) > 0.5)  # N(0, 1) like PyTorch, row 0 padding
    # A padding step's POI vector is zero whatever row 0 holds (PyTorch: no gradient reaches it).
    net.poi_embedding.embeddings.assign(np.full(table.shape, 3.0, dtype="float32"))
    changed = keras.ops.convert_to_numpy(net.encode(inputs, training=False))
    only_row_0_zero = np.full(table.shape, 3.0, dtype="float32")
    only_row_0_zero[0] = 0.0
    net.poi_embedding.embeddings.assign(only_row_0_zero)
    np.testing.assert_array_equal(changed, keras.ops.convert_to_numpy(net.encode(inputs, training=False)))


def test_settings_and_checkpoint_are_validated(task, tmp_path):
    with pytest.raises(ValueError, match="components"):
        RecurrentConfig(components=("repeat", "popularity"))
    with pytest.raises(ValueError, match="cell"):
        RecurrentConfig(cell="rnn")
    with pytest.raises(ValueError, match="dropout"):
        RecurrentConfig(dropout=1.0)
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        RecurrentNextVisit(RecurrentConfig(**SMALL), checkpoint=str(tmp_path / "best.pt"))
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        save_weights_atomically(keras.Sequential([keras.layers.Dense(1)]), tmp_path / "best.h5")
    with pytest.raises(ValueError, match="batch_size"):
        NextVisitSequence(task, task.queries("train"), batch_size=0, shuffle=False)
    with pytest.raises(NotFittedError):
        RecurrentNextVisit().score(task.queries("test"))
    model = RecurrentNextVisit(RecurrentConfig(cell="gru", components=("explore", "repeat")))
    assert model.name == f"GRU repeat+explore (Keras/{keras.backend.backend()})"


def test_fit_scores_checkpoints_and_reproduces(task, tmp_path, capfd):
    config = RecurrentConfig(num_epochs=3, patience=0, **SMALL)
    q = task.queries("test")
    checkpoint = tmp_path / "models" / "best.weights.h5"
    first = RecurrentNextVisit(config, checkpoint=str(checkpoint)).fit(task)
    scores = first.score(q)
    assert capfd.readouterr().out == ""  # progress=False: nothing printed
    assert scores.shape == (len(q), task.num_pois) and scores.dtype == np.float64 and np.isfinite(scores).all()
    np.testing.assert_allclose(np.logaddexp.reduce(scores, axis=1), 0.0, atol=1e-5)
    assert all(len(set(row)) == 5 for row in first.recommend(q, k=5))
    # The history of train_epochs, and the best epoch's weights restored (from the checkpoint).
    history = first.history_
    assert list(history.columns) == ["train loss", "seconds", "examples/s", "validation"]  # as train_epochs
    assert history.index.name == "epoch" and history.index[0] == 1 and 1 <= len(history) <= 3
    assert np.isfinite(history.to_numpy()).all()
    val_mrr = ranking_metrics_from_ranks(query_ranks(first, task.queries("val")), ks=(10,))["MRR"]
    assert val_mrr == pytest.approx(history["validation"].max(), abs=1e-9)
    assert checkpoint.exists() and [p.name for p in checkpoint.parent.iterdir()] == [checkpoint.name]
    # The scores are the NumPy mixture of the model's own gate and explore logits.
    gate, explore = first.head_logits(q)
    assert gate.shape == (len(q), 3) and explore.shape == (len(q), task.num_pois)
    np.testing.assert_allclose(scores, numpy_reference(task, gate, explore, encode_next_visit(task, q), config),
                               atol=1e-5)
    weights = first.mixture_weights(q)
    assert weights.shape == (len(q), 3) and np.allclose(weights.sum(1), 1.0, atol=1e-6)
    # Same settings, same numbers (the in-memory restore agrees with the checkpoint's).
    again = RecurrentNextVisit(config).fit(task)
    np.testing.assert_array_equal(scores, again.score(q))
    np.testing.assert_array_equal(history["train loss"], again.history_["train loss"])


def test_gru_explore_only_fits(task):
    config = RecurrentConfig(cell="gru", components=("explore",), num_epochs=1, **SMALL)
    q = task.queries("test")
    model = RecurrentNextVisit(config).fit(task)
    scores = model.score(q)
    assert scores.shape == (len(q), task.num_pois) and np.isfinite(scores).all()
    np.testing.assert_allclose(np.logaddexp.reduce(scores, axis=1), 0.0, atol=1e-5)
    assert np.array_equal(model.mixture_weights(q), np.ones((len(q), 1)))
    assert model.head_logits(q)[0] is None


BACKEND_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {repo!r})
    from tests.models.keras.test_nextvisit import SMALL, make_task
    from stlab.models.keras.nextvisit import RecurrentNextVisit
    from stlab.models.recurrent import RecurrentConfig
    import keras
    import numpy as np
    task = make_task()
    q = task.queries("test")
    config = RecurrentConfig(num_epochs={epochs}, **SMALL)
    model = RecurrentNextVisit(config).fit(task)
    scores = model.score(q)
    same = {repeat} and bool(np.array_equal(scores, RecurrentNextVisit(config).fit(task).score(q)))
    result = {{"backend": keras.backend.backend(), "name": model.name, "shape": list(scores.shape),
              "finite": bool(np.isfinite(scores).all()),
              "total": float(np.abs(np.logaddexp.reduce(scores, axis=1)).max()),
              "epochs": len(model.history_), "same": same}}
    sys.stderr.flush()
    sys.stdout.write("RESULT " + json.dumps(result))
""")


def run_in_fresh_interpreter(backend: str, *, epochs: int, repeat: bool) -> tuple[dict, str, str]:
    """Fit and score the small model in a new Python (the backend is fixed at the first
    ``import keras``); returns the result, and what else went to stdout and stderr."""
    env = {name: value for name, value in os.environ.items()
           if name not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
    # One thread: on a busy machine PyTorch's spinning thread pool can stall for seconds (the
    # numbers do not depend on it).
    env.update(KERAS_BACKEND=backend, OMP_NUM_THREADS="1")
    script = BACKEND_SCRIPT.format(repo=str(REPO), epochs=epochs, repeat=repeat)
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    before, _, result = done.stdout.rpartition("RESULT ")
    return json.loads(result), before, done.stderr


def test_tensorflow_stays_quiet():
    # Book pages show stderr: TensorFlow's start-up and oneDNN notices must not reach them.
    result, stdout, stderr = run_in_fresh_interpreter("tensorflow", epochs=1, repeat=False)
    assert result["backend"] == "tensorflow" and result["finite"] and result["total"] < 1e-5
    assert stdout == "" and stderr == "", stdout + stderr


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
def test_runs_on_the_torch_backend(task):
    result, _, _ = run_in_fresh_interpreter("torch", epochs=2, repeat=True)
    assert result["backend"] == "torch" and result["name"].endswith("(Keras/torch)")
    assert result["shape"] == [len(task.queries("test")), task.num_pois] and result["finite"]
    assert result["total"] < 1e-5 and 1 <= result["epochs"] <= 2
    assert result["same"]  # reproducible on the PyTorch backend too


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_padding_steps_never_touch_the_state(task, cell):
    """Each history's summary equals that of its real steps alone (PyTorch packs; Keras masks)."""
    keras.utils.set_random_seed(0)
    net = RecurrentNet(task.num_pois, popularity_prior(task), RecurrentConfig(**{**SMALL, "cell": cell}))
    x = encode_next_visit(task, task.queries("train"))
    lengths = (x.poi > 0).sum(1)
    rows = np.flatnonzero(lengths < x.poi.shape[1])[:4]
    assert len(rows), "the fixture needs padded histories"
    inputs = {k: v[rows] for k, v in input_dict(x).items()}
    inputs["hour_of_week"] = np.where(inputs["poi"] > 0, inputs["hour_of_week"], 100)  # garbage at padding
    inputs["continuous"] = np.where((inputs["poi"] > 0)[..., None], inputs["continuous"], 9.0).astype("float32")
    got = keras.ops.convert_to_numpy(net.encode(inputs, training=False))
    for i, row in enumerate(rows):
        n = lengths[row]
        alone = {k: (v[i : i + 1, -n:] if v.ndim >= 2 and v.shape[1] == x.poi.shape[1] else v[i : i + 1])
                 for k, v in inputs.items()}
        np.testing.assert_allclose(got[i], keras.ops.convert_to_numpy(net.encode(alone, training=False))[0], atol=1e-6)
