"""The recurrent next-POI model in Keras 3, behind the book's next-visit interface.

Inputs, settings and the repeat / transition / explore mixture are described in
:mod:`stlab.models.recurrent`; this is the layer-for-layer twin of the PyTorch model
(:mod:`stlab.models.torch.nextvisit`): the same embeddings, the same order of concatenations, the
same initialisation, L2 penalty, gradient clipping, early stopping on validation MRR and the same
float32 mixture head. Only ``keras.ops`` is used, so it runs on the TensorFlow backend (the
default) and on the PyTorch backend (set ``KERAS_BACKEND=torch`` before the first
``import keras``).

Where Keras' defaults differ from PyTorch's, the PyTorch choice is made explicit here, so that
the two chapters train the same model:

* embeddings start from ``N(0, 1)`` (PyTorch) instead of ``U(-0.05, 0.05)`` (Keras), and the
  padding row 0 is zero and receives no gradient (PyTorch's ``padding_idx=0``);
* dense and recurrent weights and biases start from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``
  (PyTorch) instead of Glorot-uniform kernels, orthogonal recurrent kernels and zero biases;
* Adam's ``epsilon`` is 1e-8 (PyTorch) instead of 1e-7;
* the gradient is clipped to global norm 1 (``global_clipnorm``; Keras' ``clipnorm`` would clip
  each weight's gradient separately, PyTorch's ``clip_grad_norm_`` clips their joint norm).

Introduced in chapter 6 (Recurrent models in Keras).
"""

from __future__ import annotations

import os

# Before the first ``import keras`` (which imports TensorFlow on the default backend): keep
# TensorFlow's C++ start-up messages and the oneDNN round-off notice off the book's pages.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import math  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Self  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from keras import ops  # noqa: E402

from stlab.models.recurrent import (  # noqa: E402
    HOURS_PER_WEEK,
    INPUT_FIELDS,
    PROBABILITY_FLOOR,
    NextVisitInputs,
    RecurrentConfig,
    RecurrentNextVisitBase,
    encode_next_visit,
    popularity_prior,
)
from stlab.protocol import NextVisitQueries, NextVisitTask  # noqa: E402

# Keras refuses to save weights to a file without this suffix.
WEIGHTS_SUFFIX = ".weights.h5"
# Queries scored per forward pass in ``score``: bounds the ``[K, B, P]`` mixture stack.
SCORE_BATCH_SIZE = 1024


def input_dict(inputs: NextVisitInputs) -> dict[str, np.ndarray]:
    """The arrays of :data:`INPUT_FIELDS` that are present (the counts are ``None`` when skipped)."""
    return {name: getattr(inputs, name) for name in INPUT_FIELDS if getattr(inputs, name) is not None}


# --------------------------------------------------------------------------- data

class NextVisitSequence(keras.utils.PyDataset):
    """Queries as a Keras ``PyDataset``: batch ``i`` is ``(inputs, target)`` with ``inputs`` a dict
    of :data:`INPUT_FIELDS` (``[B, L]``, ``[B, L]``, ``[B, L, 2]``, ``[B]``, ``[B, 1]``, ``[B, P]``,
    ``[B, P]``) and ``target`` ``[B]`` int64.

    The two ``[B, P]`` count matrices are computed per batch by :func:`encode_next_visit` on the
    batch's queries only, so memory is ``O(B P)``, never ``O(Q P)``. With ``shuffle`` the order is
    a permutation drawn from a NumPy generator seeded once with ``seed`` and redrawn at the end of
    every epoch: a different order each epoch, the same sequence of orders on every run.

    Histories are left-padded (most recent last, see :class:`stlab.protocol.NextVisitQueries`),
    so the recurrent layer's last output has read every real step.
    """

    def __init__(self, task: NextVisitTask, queries: NextVisitQueries, *, batch_size: int, shuffle: bool,
                 seed: int = 0, counts: bool = True) -> None:
        # workers=1, no multiprocessing: batches are built in order in one thread, so the order
        # of random draws (and hence the run) does not depend on thread scheduling.
        super().__init__(workers=1, use_multiprocessing=False)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.task, self.queries, self.counts = task, queries, counts
        self.batch_size, self.shuffle = batch_size, shuffle
        self._rng = np.random.default_rng(seed)
        # Drawn here, not in on_epoch_begin: Keras' TensorFlow adapter reads the first batches to
        # learn their shapes before the first epoch begins.
        self._order = self._rng.permutation(len(queries)) if shuffle else np.arange(len(queries))

    def __len__(self) -> int:
        return math.ceil(len(self.queries) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range for {len(self)} batches")
        rows = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        encoded = encode_next_visit(self.task, self.queries.subset(rows), counts=self.counts)
        return input_dict(encoded), encoded.target

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self._order = self._rng.permutation(len(self.queries))


# --------------------------------------------------------------------------- network

class PaddedNormal(keras.initializers.Initializer):
    """``N(0, stddev)`` with row 0 set to zero: PyTorch's ``nn.Embedding(padding_idx=0)`` start."""

    def __init__(self, stddev: float = 1.0, seed: int | None = None) -> None:
        self.stddev, self.seed = stddev, seed
        self._normal = keras.initializers.RandomNormal(stddev=stddev, seed=seed)

    def __call__(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        values = self._normal(shape, dtype=dtype)
        keep = ops.concatenate([ops.zeros((1, *shape[1:]), dtype=values.dtype),
                                ops.ones((shape[0] - 1, *shape[1:]), dtype=values.dtype)], axis=0)
        return values * keep

    def get_config(self) -> dict[str, Any]:
        return {"stddev": self.stddev, "seed": self.seed}


def _torch_uniform(fan_in: int) -> keras.initializers.Initializer:
    """PyTorch's default start of ``nn.Linear``, ``nn.LSTM`` and ``nn.GRU`` weights and biases:
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``. A new instance per weight: Keras gives an unseeded
    initializer one seed at construction, so one instance reused would repeat its draws."""
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


class RecurrentNet(keras.Model):
    """Embeddings -> LSTM/GRU -> gated mixture of repeat, transition and explore distributions.

    Shapes (a dict of :data:`INPUT_FIELDS`):
        - ``poi``: ``[B, L]`` POI index + 1 (0 = padding); ``hour_of_week``: ``[B, L]``;
          ``continuous``: ``[B, L, 2]``; ``target_hour_of_week``: ``[B]``; ``target_gap``: ``[B, 1]``;
          ``visit_counts``, ``transition_counts``: ``[B, P]`` (absent for an explore-only model).
        - output: ``[B, P]`` float32 log-probabilities of the next POI.

    Args:
        num_pois: ``P``.
        prior: ``[P]`` training popularity (:func:`popularity_prior`).
        config: the settings; ``weight_decay`` becomes an L2 penalty on every trainable weight.
    """

    def __init__(self, num_pois: int, prior: np.ndarray, config: RecurrentConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.components = config.components
        self.smoothing = config.transition_smoothing
        hidden = config.hidden_size

        # Weight decay. PyTorch's Adam(weight_decay=wd) adds wd * w to the gradient *before*
        # Adam's moment estimates (L2 regularisation, "coupled"), whereas Keras' Adam/AdamW
        # ``weight_decay`` shrinks the weights directly, *outside* the moment normalisation
        # (decoupled, Loshchilov & Hutter) -- a different regulariser. An L2 penalty
        # (wd / 2) * sum(w ** 2) in the loss has gradient exactly wd * w, so it is the closest
        # equivalent; like PyTorch it covers every trainable weight, biases and both embedding
        # tables included. (One difference remains: PyTorch clips the gradient before adding
        # wd * w, Keras clips the sum; at wd = 1e-5 this is far below the clipping threshold.)
        def l2() -> keras.regularizers.Regularizer | None:
            return keras.regularizers.L2(config.weight_decay / 2) if config.weight_decay > 0 else None

        # Embeddings: N(0, 1) like PyTorch; POI row 0 is padding (zero, and ``encode`` masks its
        # gradient away, as ``padding_idx=0`` does).
        self.poi_embedding = keras.layers.Embedding(num_pois + 1, config.poi_dim, embeddings_initializer=PaddedNormal(),
                                                    embeddings_regularizer=l2(), name="poi_embedding")
        self.time_embedding = keras.layers.Embedding(HOURS_PER_WEEK, config.time_dim,
                                                     embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0),
                                                     embeddings_regularizer=l2(), name="time_embedding")
        recurrent: dict[str, Any] = {
            "kernel_initializer": _torch_uniform(hidden), "recurrent_initializer": _torch_uniform(hidden),
            "bias_initializer": _torch_uniform(hidden), "kernel_regularizer": l2(), "recurrent_regularizer": l2(),
            "bias_regularizer": l2(), "name": config.cell}
        # LSTM: no forget-gate bias of one (PyTorch has none). GRU: reset_after=True is PyTorch's
        # formulation (the reset gate multiplies W_hn h + b_hn), with separate input and
        # recurrent biases as in PyTorch.
        self.rnn = (keras.layers.LSTM(hidden, unit_forget_bias=False, **recurrent) if config.cell == "lstm"
                    else keras.layers.GRU(hidden, reset_after=True, **recurrent))
        self.dropout = keras.layers.Dropout(config.dropout)
        joined = hidden + config.time_dim + 1

        def dense(units: int, fan_in: int, name: str, activation: str | None = None) -> keras.layers.Dense:
            return keras.layers.Dense(units, activation=activation, kernel_initializer=_torch_uniform(fan_in),
                                      bias_initializer=_torch_uniform(fan_in), kernel_regularizer=l2(),
                                      bias_regularizer=l2(), name=name)

        self.explore = (keras.Sequential([dense(hidden, joined, "explore_hidden", "relu"),
                                          dense(num_pois, hidden, "explore_output")], name="explore")
                        if "explore" in self.components else None)
        # The gate also sees how much evidence each count component rests on.
        self.gate = dense(len(self.components), joined + 2, "gate") if len(self.components) > 1 else None
        # A non-trainable weight (PyTorch: a buffer), so that saved weights carry it.
        self.prior = self.add_weight(shape=(num_pois,), initializer="zeros", trainable=False, name="prior")
        self.prior.assign(np.asarray(prior, dtype="float32"))

    def encode(self, inputs: dict[str, Any], training: bool | None = None) -> Any:
        """``[B, H + time_dim + 1]`` the history's summary joined with the query's time."""
        poi = inputs["poi"]
        # Zero the padding steps' POI vectors: their values are zero anyway (PaddedNormal), and the
        # product also stops the gradient reaching row 0, like PyTorch's padding_idx.
        real = ops.not_equal(poi, 0)  # [B, L]
        not_padding = ops.expand_dims(ops.cast(real, self.compute_dtype), -1)  # [B, L, 1]
        steps = ops.concatenate([self.poi_embedding(poi) * not_padding, self.time_embedding(inputs["hour_of_week"]),
                                 ops.cast(inputs["continuous"], self.compute_dtype)], axis=-1)  # [B, L, E]
        # The mask makes the layer skip padding steps, carrying the zero initial state through
        # them -- what packing does in PyTorch; the output is the state after the last real step.
        last = self.rnn(steps, mask=real, training=training)  # [B, H]
        last = self.dropout(last, training=training)
        return ops.concatenate([last, self.time_embedding(inputs["target_hour_of_week"]),
                                ops.cast(inputs["target_gap"], self.compute_dtype)], axis=-1)

    def gate_logits(self, joined: Any, inputs: dict[str, Any]) -> Any | None:
        """``[B, K]`` one logit per component (``None`` with a single component)."""
        return mixture_gate_logits(self.gate, joined, inputs.get("visit_counts"), inputs.get("transition_counts"))

    def explore_logits(self, joined: Any) -> Any | None:
        """``[B, P]`` the explore head's logits (``None`` without an explore component)."""
        return None if self.explore is None else self.explore(joined)

    def call(self, inputs: dict[str, Any], training: bool | None = None) -> Any:
        joined = self.encode(inputs, training=training)
        return mixture_log_probabilities(self.components, self.explore_logits(joined), self.gate_logits(joined, inputs),
                                         inputs.get("visit_counts"), inputs.get("transition_counts"), self.prior,
                                         self.smoothing)

    def mixture_weights(self, inputs: dict[str, Any]) -> Any:
        """``[B, K]`` the gate's weight on each component (ones for a single component)."""
        joined = self.encode(inputs, training=False)
        gate = self.gate_logits(joined, inputs)
        return ops.ones_like(joined[:, :1]) if gate is None else ops.softmax(ops.cast(gate, "float32"), axis=-1)


def mixture_gate_logits(gate: keras.layers.Layer | None, joined: Any, visit_counts: Any | None,
                        transition_counts: Any | None) -> Any | None:
    """``[B, K]`` the gate's logits from ``joined`` ``[B, J]`` and the evidence each count
    component rests on, ``log(1 + sum n)`` and ``log(1 + sum m)`` (zeros for absent counts);
    ``None`` without a gate (a single component). ``gate`` maps ``J + 2`` features to ``K``."""
    if gate is None:
        return None
    evidence = [ops.zeros_like(joined[:, :1]) if counts is None
                else ops.log1p(ops.sum(ops.cast(counts, keras.backend.standardize_dtype(joined.dtype)), axis=-1,
                                           keepdims=True))
                for counts in (visit_counts, transition_counts)]  # 2 x [B, 1]
    return gate(ops.concatenate([joined, *evidence], axis=-1))


def mixture_log_probabilities(components: tuple[str, ...], explore_logits: Any | None, gate_logits: Any | None,
                              visit_counts: Any | None, transition_counts: Any | None, prior: Any,
                              smoothing: float) -> Any:
    """``[B, P]`` float32 ``log sum_k w_k p_k(j)``: the gated repeat / transition / explore mixture
    of :mod:`stlab.models.recurrent` (shared by the recurrent and the attention next-POI models;
    arguments as in the PyTorch twin, :func:`stlab.models.torch.nextvisit.mixture_log_probabilities`)."""
    # In float32 (also under a mixed-precision policy): the mixture adds probabilities that span
    # thirty orders of magnitude.
    parts = []  # K x [B, P] log-probabilities
    for name in components:
        if name == "repeat":
            visits = ops.cast(visit_counts, "float32")
            total = ops.maximum(ops.sum(visits, axis=-1, keepdims=True), 1.0)
            parts.append(ops.log(ops.maximum(visits / total, PROBABILITY_FLOOR)))
        elif name == "transition":
            moves = ops.cast(transition_counts, "float32")
            total = ops.sum(moves, axis=-1, keepdims=True)
            parts.append(ops.log((moves + smoothing * ops.cast(prior, "float32")) / (total + smoothing)))
        else:
            parts.append(ops.log_softmax(ops.cast(explore_logits, "float32"), axis=-1))
    if gate_logits is None:
        return parts[0]
    weights = ops.log_softmax(ops.cast(gate_logits, "float32"), axis=-1)  # [B, K]
    return ops.logsumexp(ops.stack(parts) + ops.expand_dims(ops.transpose(weights), -1), axis=0)  # [B, P]


def next_visit_nll(target: Any, log_probs: Any) -> Any:
    """``[B]`` negative log-likelihood of the visited POI (``target`` ``[B]`` or ``[B, 1]``,
    ``log_probs`` ``[B, P]``): the loss, as PyTorch's ``nll_loss`` before its mean."""
    target = ops.reshape(ops.cast(target, "int32"), (-1, 1))
    return -ops.squeeze(ops.take_along_axis(log_probs, target, axis=1), axis=1)


# --------------------------------------------------------------------------- training

class ValidationStopping(keras.callbacks.Callback):
    """Validation MRR after every epoch, early stopping, best weights kept and restored.

    The same rule as :class:`stlab.training.EarlyStopping` (``mode="max"``, ``min_delta=0``:
    stop once ``patience`` epochs in a row failed to beat the best), re-stated here so the
    Keras chapter does not import PyTorch. Also collects the per-epoch history.

    Args:
        validate: ``() -> MRR`` on the validation queries, or ``None`` (no validation, no
            stopping, the last weights are kept).
        patience: epochs without improvement tolerated.
        checkpoint: ``*.weights.h5`` file for the best weights (written atomically and read
            back at the end), or ``None`` to keep them in memory.
        num_examples: training queries per epoch (for examples/s).
    """

    def __init__(self, validate: Callable[[], float] | None, *, patience: int, checkpoint: str | None,
                 num_examples: int) -> None:
        super().__init__()
        self.validate, self.patience, self.checkpoint = validate, patience, checkpoint
        self.num_examples = num_examples
        self.best, self.best_epoch, self.bad_epochs = -math.inf, -1, 0
        self.best_weights: list[np.ndarray] | None = None
        self.rows: list[dict[str, float]] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = logs or {}
        seconds = time.perf_counter() - self._start  # training only, as in stlab.training.train_epochs
        # "nll", not Keras' "loss": the latter includes the L2 penalty, which PyTorch's loss does not.
        row: dict[str, float] = {"epoch": epoch + 1, "train loss": float(logs.get("nll", math.nan)),
                                 "seconds": seconds,
                                 "examples/s": self.num_examples / seconds if seconds > 0 else math.nan}
        if self.validate is not None:
            value = float(self.validate())
            row["validation"] = value
            if not math.isfinite(value):
                raise ValueError(f"validation metric is {value} at epoch {epoch + 1}; training diverged -- "
                                 "lower the learning rate or clip gradients")
            if value > self.best:
                self.best, self.best_epoch, self.bad_epochs = value, epoch + 1, 0
                if self.checkpoint is not None:
                    save_weights_atomically(self.model, self.checkpoint)
                else:
                    self.best_weights = [np.array(w, copy=True) for w in self.model.get_weights()]
            else:
                self.bad_epochs += 1
            if self.bad_epochs > self.patience:
                self.model.stop_training = True
        self.rows.append(row)

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        if self.best_epoch < 1:
            return
        if self.checkpoint is not None:
            self.model.load_weights(self.checkpoint)
        elif self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    @property
    def history(self) -> pd.DataFrame:
        """One row per epoch, indexed by epoch: train loss, seconds, examples/s and validation
        (the columns, in the order, of :func:`stlab.training.train_epochs`)."""
        columns = ["train loss", "seconds", "examples/s", "validation"]
        frame = pd.DataFrame(self.rows, columns=["epoch", *columns]).set_index("epoch")
        return frame if self.validate is not None else frame.drop(columns="validation")


def save_weights_atomically(model: keras.Model, path: str | os.PathLike[str]) -> Path:
    """``model.save_weights(path)`` via a temporary file in the same folder and a rename, so a
    crash mid-write never leaves a truncated checkpoint (``path`` must end in ``.weights.h5``)."""
    path = Path(path)
    if not path.name.endswith(WEIGHTS_SUFFIX):
        raise ValueError(f"Keras weight files must end in {WEIGHTS_SUFFIX!r}, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name[:-len(WEIGHTS_SUFFIX)]}.tmp-{os.getpid()}{WEIGHTS_SUFFIX}")
    try:
        model.save_weights(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and the backend; on TensorFlow also ask for deterministic kernels, so
    the same settings on the CPU give the same numbers twice.

    Op determinism is a process-wide TensorFlow switch: it stays on for later TensorFlow work in
    the same process. Results are reproducible for a given machine, backend and thread count;
    another backend (or another number of threads) draws and sums differently.
    """
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


class RecurrentNextVisit(RecurrentNextVisitBase):
    """LSTM or GRU next-POI model in Keras; ``fit`` trains on training queries, stops on
    validation MRR.

    Args:
        config: :class:`~stlab.models.recurrent.RecurrentConfig` (``device`` and
            ``mixed_precision`` are PyTorch settings and are ignored here: Keras places the model
            itself).
        checkpoint: a ``*.weights.h5`` file where the best epoch's weights are written
            (atomically) and reloaded from; ``None`` keeps them in memory.
    """

    framework = f"Keras/{keras.backend.backend()}"

    def __init__(self, config: RecurrentConfig | None = None, *, checkpoint: str | None = None) -> None:
        if checkpoint is not None and not str(checkpoint).endswith(WEIGHTS_SUFFIX):
            raise ValueError(f"Keras weight files must end in {WEIGHTS_SUFFIX!r}, got checkpoint={str(checkpoint)!r}")
        super().__init__(config, checkpoint=checkpoint)

    def fit(self, task: NextVisitTask) -> Self:
        cfg = self.config
        self._task = task
        make_deterministic(cfg.seed)
        train_queries, val_queries = task.queries("train"), task.queries("val")
        data = NextVisitSequence(task, train_queries, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed,
                                 counts=self._uses_counts)
        self.net_ = RecurrentNet(task.num_pois, popularity_prior(task), cfg)
        # Build the weights now (one query, inference mode: no random draw), so they exist
        # before fit and are created in the same order on every backend.
        self.net_(input_dict(encode_next_visit(task, train_queries.subset(slice(0, 1)), counts=self._uses_counts)))
        self.net_.compile(
            optimizer=keras.optimizers.Adam(learning_rate=cfg.lr, epsilon=1e-8, global_clipnorm=1.0),
            loss=next_visit_nll, metrics=[keras.metrics.MeanMetricWrapper(next_visit_nll, name="nll")])

        def validate() -> float:
            return self.validation_mrr(val_queries)

        stopping = ValidationStopping(validate if len(val_queries) else None, patience=cfg.patience,
                                      checkpoint=self.checkpoint, num_examples=len(train_queries))
        # shuffle=False: the PyDataset shuffles itself; Keras would otherwise also permute the
        # order of the batches with Python's global random state.
        self.net_.fit(data, epochs=cfg.num_epochs, shuffle=False, callbacks=[stopping],
                      verbose=1 if cfg.progress else 0)
        self.history_ = stopping.history
        return self

    def _batches(self, queries: NextVisitQueries) -> Iterator[dict[str, np.ndarray]]:
        for batch in queries.batches(SCORE_BATCH_SIZE):
            yield input_dict(encode_next_visit(self.task, batch, counts=self._uses_counts))

    def score(self, queries: NextVisitQueries) -> np.ndarray:
        """``[Q, P]`` float64 log-probabilities of every POI."""
        self._check_fitted()
        # predict_on_batch: the compiled inference function (a tf.function on TensorFlow),
        # dropout off.
        parts = [np.asarray(self.net_.predict_on_batch(inputs), dtype=np.float64) for inputs in self._batches(queries)]
        return np.concatenate(parts) if parts else np.empty((0, self.task.num_pois))

    def mixture_weights(self, queries: NextVisitQueries) -> np.ndarray:
        """``[Q, K]`` how much the gate trusts each component for each query."""
        self._check_fitted()
        parts = [ops.convert_to_numpy(self.net_.mixture_weights(inputs)) for inputs in self._batches(queries)]
        return np.concatenate(parts) if parts else np.empty((0, len(self.config.components)))

    def head_logits(self, queries: NextVisitQueries) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The mixture head's inputs, dropout off: ``[Q, K]`` gate logits (``None`` with a single
        component) and ``[Q, P]`` explore logits (``None`` without ``"explore"``). With them and
        the counts, :func:`stlab.models.recurrent.mixture_log_probabilities_numpy` reproduces
        :meth:`score`."""
        self._check_fitted()
        gates, explores = [], []
        for inputs in self._batches(queries):
            joined = self.net_.encode(inputs, training=False)
            gate, explore = self.net_.gate_logits(joined, inputs), self.net_.explore_logits(joined)
            gates.append(None if gate is None else ops.convert_to_numpy(gate))
            explores.append(None if explore is None else ops.convert_to_numpy(explore))
        gate = None if not gates or gates[0] is None else np.concatenate(gates)
        explore = None if not explores or explores[0] is None else np.concatenate(explores)
        return gate, explore


__all__ = ["INPUT_FIELDS", "NextVisitSequence", "PaddedNormal", "RecurrentNet", "RecurrentNextVisit",
           "ValidationStopping", "input_dict", "make_deterministic", "mixture_gate_logits", "mixture_log_probabilities",
           "next_visit_nll", "save_weights_atomically"]
