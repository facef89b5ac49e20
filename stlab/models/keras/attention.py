"""The space-time Transformer next-POI model in Keras 3, behind the book's next-visit interface.

Tokens, relations, settings and the output are described in :mod:`stlab.models.attention.config`;
this is the layer-for-layer twin of the PyTorch model (:mod:`stlab.models.torch.attention`): the
same tokens, per-head relation biases, masks, blocks, tied output and mixture head, the same
weight shapes, PyTorch's initialisations, Adam's epsilon, gradient clipping to global norm 1 and
early stopping on validation MRR. Only ``keras.ops`` is used, so it runs on the TensorFlow
backend (the default) and on the PyTorch or JAX backends (set ``KERAS_BACKEND`` before the first
``import keras``).

Two differences of plumbing, not of the model:

* the joint pair-bucket index (:func:`stlab.models.attention.config.pair_bucket_index`) is an
  input computed in NumPy per batch, where PyTorch computes it in the graph from float64 times
  and places: Keras casts float64 inputs to float32, which could move a pair across an edge;
* weights travel between the frameworks as a dict of NumPy arrays named as in the PyTorch state
  dict (:meth:`TransformerNextVisit.import_weights`, :meth:`TransformerNextVisit.export_weights`),
  so neither package imports the other.

Introduced in chapter 8 (Attention and Transformers for the next visit).
"""

from __future__ import annotations

import os

# Before the first ``import keras`` (which imports TensorFlow on the default backend): keep
# TensorFlow's C++ start-up messages and the oneDNN round-off notice off the book's pages.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Self

import keras
import numpy as np
from keras import ops
from scipy import sparse
from scipy.special import log_softmax

from stlab.features import HOURS_PER_WEEK
from stlab.models.attention.config import (
    EMBEDDING_STD_SCALE,
    LAYER_NORM_EPSILON,
    MASKED_LOGIT,
    AttentionInputs,
    TransformerConfig,
    TransformerNextVisitBase,
    encode_attention,
    pair_bucket_index,
    sinusoidal_positions,
)
from stlab.models.keras.nextvisit import (
    WEIGHTS_SUFFIX,
    PaddedNormal,
    ValidationStopping,
    make_deterministic,
    mixture_gate_logits,
    mixture_log_probabilities,
    next_visit_nll,
)
from stlab.models.recurrent import popularity_prior
from stlab.protocol import (
    NextVisitQueries,
    NextVisitTask,
    prior_transition_counts,
    prior_visit_counts,
)

# The network's inputs by name (a dict of these): the step inputs, the pair-bucket index, the counts.
KERAS_INPUT_FIELDS = ("poi", "hour_of_week", "continuous", "target_hour_of_week", "target_gap", "pair_bucket",
                      "visit_counts", "transition_counts")
# Queries scored per forward pass in ``score`` and ``attention_weights``.
SCORE_BATCH_SIZE = 1024


def query_row_only(config: TransformerConfig) -> bool:
    """Whether the network reads only the query token's row of pair buckets (one block)."""
    return config.num_layers == 1


def keras_inputs(inputs: AttentionInputs, config: TransformerConfig, *, all_rows: bool = False) -> dict[str, np.ndarray]:
    """The dict of :data:`KERAS_INPUT_FIELDS` for encoded queries (counts only when present):
    ``pair_bucket`` is ``[Q, N, N]`` int32 (:func:`~stlab.models.attention.config.pair_bucket_index`),
    or ``[Q, 1, N]`` for a one-block network unless ``all_rows`` (every token's state, for
    ``encode(all_tokens=True)``)."""
    arrays = {name: getattr(inputs, name) for name in KERAS_INPUT_FIELDS[:5]}
    arrays["pair_bucket"] = pair_bucket_index(inputs.hours_before, inputs.coordinates, time_buckets=config.time_buckets,
                                              distance_buckets=config.distance_buckets,
                                              query_row_only=query_row_only(config) and not all_rows)
    for name in ("visit_counts", "transition_counts"):
        if getattr(inputs, name) is not None:
            arrays[name] = getattr(inputs, name)
    return arrays


# --------------------------------------------------------------------------- data

class AttentionSequence(keras.utils.PyDataset):
    """Queries as a Keras ``PyDataset``: batch ``i`` is ``(inputs, y)`` with ``inputs`` a dict of
    :data:`KERAS_INPUT_FIELDS` and ``y`` the ``[B]`` targets, or for ``loss="bce"`` ``[B, 2]``
    (target, one negative POI drawn uniformly from the others).

    Sequences and (mixture only) sparse count rows are encoded once, as in the PyTorch
    ``AttentionDataset``; each batch densifies its rows and computes its pair buckets. With
    ``shuffle`` the order is redrawn every epoch from a NumPy generator seeded once with ``seed``;
    negatives come from their own generator (``seed + 1``): the same run every time.
    """

    def __init__(self, task: NextVisitTask, queries: NextVisitQueries, config: TransformerConfig, *, shuffle: bool,
                 seed: int = 0, counts: bool = True, chunk_size: int = 4096) -> None:
        # One worker, no multiprocessing: batches (and random draws) come in order.
        super().__init__(workers=1, use_multiprocessing=False)
        self.task, self.queries, self.config, self.shuffle = task, queries, config, shuffle
        self.inputs = encode_attention(task, queries, counts=False)
        self.counts: list[sparse.csr_matrix] = []
        if counts:
            chunks = list(queries.batches(chunk_size))
            self.counts = [sparse.vstack([sparse.csr_matrix(count(task, c).astype(np.float32)) for c in chunks],
                                         format="csr") for count in (prior_visit_counts, prior_transition_counts)]
        self._rng, self._negatives = np.random.default_rng(seed), np.random.default_rng(seed + 1)
        # Drawn here, not in on_epoch_begin: Keras reads the first batches before the first epoch.
        self._order = self._rng.permutation(len(queries)) if shuffle else np.arange(len(queries))

    def __len__(self) -> int:
        return math.ceil(len(self.queries) / self.config.batch_size)

    def __getitem__(self, index: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range for {len(self)} batches")
        size = self.config.batch_size
        rows = self._order[index * size:(index + 1) * size]
        x = self.inputs
        arrays = {name: getattr(x, name)[rows] for name in KERAS_INPUT_FIELDS[:5]}
        arrays["pair_bucket"] = pair_bucket_index(x.hours_before[rows], x.coordinates[rows],
                                                  time_buckets=self.config.time_buckets,
                                                  distance_buckets=self.config.distance_buckets,
                                                  query_row_only=query_row_only(self.config))
        for name, matrix in zip(("visit_counts", "transition_counts"), self.counts):
            arrays[name] = matrix[rows].toarray()
        target = x.target[rows]
        if self.config.loss != "bce":
            return arrays, target
        negative = (target + self._negatives.integers(1, self.task.num_pois, len(rows))) % self.task.num_pois
        return arrays, np.stack([target, negative], axis=1)

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self._order = self._rng.permutation(len(self.queries))


def bce_pair_loss(pair: Any, logits: Any) -> Any:
    """``[B]`` SASRec's loss ``softplus(-s_target) + softplus(s_negative)`` from ``pair`` ``[B, 2]``
    (target, negative) and raw ``logits`` ``[B, P]``."""
    pair = ops.cast(pair, "int32")
    scores = ops.cast(ops.take_along_axis(logits, pair, axis=1), "float32")  # [B, 2]
    return ops.softplus(-scores[:, 0]) + ops.softplus(scores[:, 1])


# --------------------------------------------------------------------------- network

def _torch_uniform(fan_in: int) -> keras.initializers.Initializer:
    """PyTorch's start of ``nn.Linear`` weights and biases, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``
    (a new instance per weight, so that unseeded draws differ)."""
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


class _Regularised:
    """Makes ``Dense`` layers and weights with PyTorch's initialisation and the L2 penalty that
    stands for Adam's coupled ``weight_decay`` (``(wd / 2) |w|^2`` has gradient ``wd w``)."""

    def __init__(self, weight_decay: float) -> None:
        self.weight_decay = weight_decay

    def l2(self) -> keras.regularizers.Regularizer | None:
        return keras.regularizers.L2(self.weight_decay / 2) if self.weight_decay > 0 else None

    def dense(self, units: int, fan_in: int, name: str) -> keras.layers.Dense:
        return keras.layers.Dense(units, kernel_initializer=_torch_uniform(fan_in),
                                  bias_initializer=_torch_uniform(fan_in), kernel_regularizer=self.l2(),
                                  bias_regularizer=self.l2(), name=name)


class SpaceTimeAttention(keras.layers.Layer):
    """Causal multi-head self-attention with per-head relation biases (see the PyTorch twin).

    Shapes: ``x`` ``[B, N, D]``; ``allowed`` ``[B, 1, N, N]`` bool; ``pair_bucket`` ``[B, N, N]``
    (``[B, 1, N]`` suffices with ``query_only``).
    Output ``[B, R, D]`` and weights ``[B, H, R, N]`` (``R = 1`` with ``query_only``).
    """

    def __init__(self, config: TransformerConfig, make: _Regularised, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        d = config.d_model
        self.d_model, self.num_heads, self.head_dim = d, config.num_heads, config.head_dim
        # The fused [q | k | v] projection as one kernel, like PyTorch's qkv.weight (transposed).
        self.qkv_kernel = self.add_weight(shape=(d, 3 * d), initializer=_torch_uniform(d), regularizer=make.l2(),
                                          name="qkv_kernel")
        self.qkv_bias = self.add_weight(shape=(3 * d,), initializer=_torch_uniform(d), regularizer=make.l2(),
                                        name="qkv_bias")
        self.out = make.dense(d, d, "out")
        self.out.build((None, d))
        self.time_bias = self.distance_bias = None
        if config.relation_bias:
            self.time_bias = self.add_weight(shape=(config.num_heads, config.time_buckets), initializer="zeros",
                                             regularizer=make.l2(), name="time_bias")
            self.distance_bias = self.add_weight(shape=(config.num_heads, config.distance_buckets),
                                                 initializer="zeros", regularizer=make.l2(), name="distance_bias")

    def relation_bias(self, pair_bucket: Any) -> Any | None:
        """``[B, H, R, N]`` the heads' biases of ``pair_bucket`` ``[B, R, N]`` (``None`` without)."""
        if self.time_bias is None:
            return None
        table = ops.reshape(ops.expand_dims(self.time_bias, 2) + ops.expand_dims(self.distance_bias, 1),
                            (self.num_heads, -1))  # [H, T S]
        return ops.transpose(ops.take(table, ops.cast(pair_bucket, "int32"), axis=1), (1, 0, 2, 3))

    def call(self, x: Any, allowed: Any, pair_bucket: Any, query_only: bool = False) -> tuple[Any, Any]:
        d, heads, head_dim = self.d_model, self.num_heads, self.head_dim
        tokens = x.shape[1]
        kv = ops.matmul(x, self.qkv_kernel[:, d:]) + self.qkv_bias[d:]  # [B, N, 2D]
        kv = ops.transpose(ops.reshape(kv, (-1, tokens, 2, heads, head_dim)), (2, 0, 3, 1, 4))
        k, v = kv[0], kv[1]  # [B, H, N, d_h]
        rows = x[:, -1:] if query_only else x
        q = ops.matmul(rows, self.qkv_kernel[:, :d]) + self.qkv_bias[:d]
        q = ops.transpose(ops.reshape(q, (-1, rows.shape[1], heads, head_dim)), (0, 2, 1, 3))  # [B, H, R, d_h]
        logits = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / math.sqrt(head_dim)  # [B, H, R, N]
        relation = self.relation_bias(pair_bucket[:, -1:] if query_only else pair_bucket)
        if relation is not None:
            logits = logits + ops.cast(relation, logits.dtype)
        allowed = allowed[:, :, -1:] if query_only else allowed
        # Blocked keys get exactly zero weight; a row with nothing allowed is all zeros, not NaN.
        logits = ops.where(allowed, ops.cast(logits, "float32"), MASKED_LOGIT)
        weights = ops.softmax(logits, axis=-1) * ops.cast(allowed, "float32")  # [B, H, R, N]
        mixed = ops.matmul(ops.cast(weights, v.dtype), v)  # [B, H, R, d_h]
        mixed = ops.reshape(ops.transpose(mixed, (0, 2, 1, 3)), (-1, rows.shape[1], d))
        return self.out(mixed), weights


class TransformerBlock(keras.layers.Layer):
    """Attention and a feed-forward network (exact GELU), residual branches with dropout, pre- or
    post-LayerNorm (epsilon 1e-5, PyTorch's). Shapes as :class:`SpaceTimeAttention`."""

    def __init__(self, config: TransformerConfig, make: _Regularised, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        d = config.d_model
        self.pre_norm = config.norm == "pre"
        self.attention = SpaceTimeAttention(config, make, name="attention")
        self.norm1 = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name="norm1")
        self.norm2 = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name="norm2")
        self.ffn_in, self.ffn_out = make.dense(config.ffn_dim, d, "ffn_in"), make.dense(d, config.ffn_dim, "ffn_out")
        for layer, width in ((self.norm1, d), (self.norm2, d), (self.ffn_in, d), (self.ffn_out, config.ffn_dim)):
            layer.build((None, width))
        self.dropout = keras.layers.Dropout(config.dropout)

    def ffn(self, x: Any) -> Any:
        return self.ffn_out(ops.gelu(self.ffn_in(x), approximate=False))

    def call(self, x: Any, allowed: Any, pair_bucket: Any, query_only: bool = False,
             training: bool | None = None) -> tuple[Any, Any]:
        residual = x[:, -1:] if query_only else x
        if self.pre_norm:
            attended, weights = self.attention(self.norm1(x), allowed, pair_bucket, query_only=query_only)
            x = residual + self.dropout(attended, training=training)
            return x + self.dropout(self.ffn(self.norm2(x)), training=training), weights
        attended, weights = self.attention(x, allowed, pair_bucket, query_only=query_only)
        x = self.norm1(residual + self.dropout(attended, training=training))
        return self.norm2(x + self.dropout(self.ffn(x), training=training)), weights


class SpaceTimeTransformerNet(keras.Model):
    """Tokens -> causal space-time Transformer -> the query token's state -> next-POI
    log-probabilities (tied softmax over all POIs, or the gated mixture): the PyTorch
    ``SpaceTimeTransformerNet`` in Keras, weight for weight.

    Shapes (a dict of :data:`KERAS_INPUT_FIELDS`): ``poi`` ``[B, L]`` (POI index + 1, 0 pads);
    ``hour_of_week`` ``[B, L]``; ``continuous`` ``[B, L, 2]``; ``target_hour_of_week`` ``[B]``;
    ``target_gap`` ``[B, 1]``; ``pair_bucket`` ``[B, L + 1, L + 1]`` (``[B, 1, L + 1]``, the
    query token's row, is enough for one block); counts ``[B, P]`` (mixture).
    ``call`` returns ``[B, P]`` float32 log-probabilities, or raw logits for ``loss="bce"`` (what
    that loss scores; :meth:`log_probabilities` always gives log-probabilities).
    """

    def __init__(self, num_pois: int, prior: np.ndarray, config: TransformerConfig, max_history: int,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        d, std = config.d_model, config.d_model ** -EMBEDDING_STD_SCALE
        make = _Regularised(config.weight_decay)
        self.num_pois, self.max_history = num_pois, max_history
        self.components, self.smoothing = config.components, config.transition_smoothing
        self.returns_logits = config.loss == "bce"
        # Row 0 pads (zero, no gradient: masked in ``tokens``); rows 1..P POIs; P + 1 the query's place.
        self.poi_embedding = keras.layers.Embedding(num_pois + 2, d, embeddings_initializer=PaddedNormal(std),
                                                    embeddings_regularizer=make.l2(), name="poi_embedding")
        self.time_embedding = keras.layers.Embedding(HOURS_PER_WEEK, d,
                                                     embeddings_initializer=keras.initializers.RandomNormal(stddev=std),
                                                     embeddings_regularizer=make.l2(), name="time_embedding")
        self.continuous = make.dense(d, 2, "continuous")
        self.position_embedding = (keras.layers.Embedding(max_history + 1, d, name="position_embedding",
                                                          embeddings_initializer=keras.initializers.RandomNormal(
                                                              stddev=std), embeddings_regularizer=make.l2())
                                   if config.positions == "learned" else None)
        self.position_table = sinusoidal_positions(max_history + 1, d)
        self.embedding_dropout = keras.layers.Dropout(config.dropout)
        self.blocks = [TransformerBlock(config, make, name=f"block_{i}") for i in range(config.num_layers)]
        self.final_norm = (keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name="final_norm")
                           if config.norm == "pre" else None)
        self.gate = make.dense(len(self.components), d + 2, "gate") if len(self.components) > 1 else None
        for layer, width in ((self.continuous, 2), (self.final_norm, d), (self.gate, d + 2)):
            if layer is not None:
                layer.build((None, width))
        for table in (self.poi_embedding, self.time_embedding, self.position_embedding):
            if table is not None:
                table.build((None,))
        self.output_bias = None
        if "explore" in self.components:  # starts at centred log-popularity, as in PyTorch
            log_prior = np.log(np.asarray(prior, dtype=np.float64))
            self.output_bias = self.add_weight(shape=(num_pois,), initializer="zeros", regularizer=make.l2(),
                                               name="output_bias")
            self.output_bias.assign((log_prior - log_prior.mean()).astype("float32"))
        self.prior = self.add_weight(shape=(num_pois,), initializer="zeros", trainable=False, name="prior")
        self.prior.assign(np.asarray(prior, dtype="float32"))

    def tokens(self, inputs: Mapping[str, Any], training: bool | None = None) -> Any:
        """``[B, N, D]`` the ``L`` history tokens, then the query token."""
        poi = ops.cast(inputs["poi"], "int32")
        length = poi.shape[1]
        if length > self.max_history:
            raise ValueError(f"histories of {length} steps, but the positions cover {self.max_history}")
        query_poi = ops.ones_like(poi[:, :1]) * (self.num_pois + 1)
        all_poi = ops.concatenate([poi, query_poi], axis=1)  # [B, N]
        # Zero the padding vectors (and so their gradient), as PyTorch's padding_idx=0 does.
        not_padding = ops.expand_dims(ops.cast(ops.not_equal(all_poi, 0), self.compute_dtype), -1)
        target_gap = ops.cast(inputs["target_gap"], self.compute_dtype)  # [B, 1]
        query_continuous = ops.expand_dims(ops.concatenate([target_gap, ops.zeros_like(target_gap)], axis=-1), 1)
        continuous = ops.concatenate([ops.cast(inputs["continuous"], self.compute_dtype), query_continuous], axis=1)
        hours = ops.concatenate([ops.cast(inputs["hour_of_week"], "int32"),
                                 ops.reshape(ops.cast(inputs["target_hour_of_week"], "int32"), (-1, 1))], axis=1)
        x = self.poi_embedding(all_poi) * not_padding + self.time_embedding(hours) + self.continuous(continuous)
        position = np.arange(length, -1, -1)  # counted back from the query token
        table = (self.position_embedding.embeddings if self.position_embedding is not None
                 else ops.convert_to_tensor(self.position_table))
        x = x + ops.cast(ops.take(table, position, axis=0), x.dtype)
        return self.embedding_dropout(x, training=training)

    def encode(self, inputs: Mapping[str, Any], training: bool | None = None,
               all_tokens: bool = False) -> tuple[Any, Any]:
        """The query token's final state ``[B, D]`` and the last layer's weights of its row
        ``[B, H, N]``; with ``all_tokens``, ``[B, N, D]`` and ``[B, H, N, N]``."""
        x = self.tokens(inputs, training=training)
        poi = ops.cast(inputs["poi"], "int32")
        tokens = poi.shape[1] + 1
        real = ops.concatenate([ops.not_equal(poi, 0), ops.ones_like(poi[:, :1], dtype="bool")], axis=1)  # [B, N]
        causal = np.tril(np.ones((tokens, tokens), dtype=bool))
        allowed = ops.expand_dims(ops.logical_and(causal[None], ops.expand_dims(real, 1)), 1)  # [B, 1, N, N]
        pair_bucket = inputs["pair_bucket"]  # [B, N, N], or [B, 1, N] for a one-block network
        if all_tokens and pair_bucket.shape[1] == 1 and tokens > 1:
            raise ValueError("all_tokens needs every row of pair buckets: keras_inputs(..., all_rows=True)")
        weights = None
        for depth, block in enumerate(self.blocks):
            query_only = not all_tokens and depth == len(self.blocks) - 1
            x, weights = block(x, allowed, pair_bucket, query_only=query_only, training=training)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return (x, weights) if all_tokens else (x[:, -1], weights[:, :, -1])

    def explore_logits(self, state: Any) -> Any | None:
        """``[B, P]`` tied-output logits of ``state`` ``[B, D]`` (``None`` without explore)."""
        if self.output_bias is None:
            return None
        table = self.poi_embedding.embeddings[1 : self.num_pois + 1]
        return ops.matmul(state, ops.transpose(ops.cast(table, state.dtype))) + self.output_bias

    def head(self, state: Any, inputs: Mapping[str, Any]) -> tuple[Any | None, Any | None]:
        """``([B, P] explore logits or None, [B, K] gate logits or None)``."""
        return self.explore_logits(state), mixture_gate_logits(self.gate, state, inputs.get("visit_counts"),
                                                               inputs.get("transition_counts"))

    def log_probabilities(self, inputs: Mapping[str, Any], training: bool | None = None) -> Any:
        """``[B, P]`` float32 log-probabilities of the next POI."""
        state, _ = self.encode(inputs, training=training)
        explore, gate = self.head(state, inputs)
        return mixture_log_probabilities(self.components, explore, gate, inputs.get("visit_counts"),
                                         inputs.get("transition_counts"), self.prior, self.smoothing)

    def call(self, inputs: Mapping[str, Any], training: bool | None = None) -> Any:
        if self.returns_logits:
            return ops.cast(self.explore_logits(self.encode(inputs, training=training)[0]), "float32")
        return self.log_probabilities(inputs, training=training)

    def weight_map(self) -> dict[str, tuple[Any, bool]]:
        """``{PyTorch state-dict name: (Keras variable, transposed?)}`` for every weight: a Dense
        kernel is PyTorch's ``Linear.weight`` transposed (``[in, out]`` against ``[out, in]``)."""
        names: dict[str, tuple[Any, bool]] = {
            "poi_embedding.weight": (self.poi_embedding.embeddings, False),
            "time_embedding.weight": (self.time_embedding.embeddings, False),
            "continuous.weight": (self.continuous.kernel, True), "continuous.bias": (self.continuous.bias, False),
            "prior": (self.prior, False)}
        if self.position_embedding is not None:
            names["position_embedding.weight"] = (self.position_embedding.embeddings, False)
        for i, block in enumerate(self.blocks):
            prefix, attention = f"blocks.{i}.", block.attention
            names |= {prefix + "attention.qkv.weight": (attention.qkv_kernel, True),
                      prefix + "attention.qkv.bias": (attention.qkv_bias, False),
                      prefix + "attention.out.weight": (attention.out.kernel, True),
                      prefix + "attention.out.bias": (attention.out.bias, False),
                      prefix + "norm1.weight": (block.norm1.gamma, False), prefix + "norm1.bias": (block.norm1.beta, False),
                      prefix + "norm2.weight": (block.norm2.gamma, False), prefix + "norm2.bias": (block.norm2.beta, False),
                      prefix + "ffn.0.weight": (block.ffn_in.kernel, True), prefix + "ffn.0.bias": (block.ffn_in.bias, False),
                      prefix + "ffn.2.weight": (block.ffn_out.kernel, True),
                      prefix + "ffn.2.bias": (block.ffn_out.bias, False)}
            if attention.time_bias is not None:
                names[prefix + "attention.time_bias"] = (attention.time_bias, False)
                names[prefix + "attention.distance_bias"] = (attention.distance_bias, False)
        if self.final_norm is not None:
            names |= {"final_norm.weight": (self.final_norm.gamma, False), "final_norm.bias": (self.final_norm.beta, False)}
        if self.output_bias is not None:
            names["output_bias"] = (self.output_bias, False)
        if self.gate is not None:
            names |= {"gate.weight": (self.gate.kernel, True), "gate.bias": (self.gate.bias, False)}
        return names


# --------------------------------------------------------------------------- the model

class TransformerNextVisit(TransformerNextVisitBase):
    """Space-time Transformer next-POI model in Keras; ``fit`` trains on training queries, stops on
    validation MRR.

    Args:
        config: :class:`~stlab.models.attention.config.TransformerConfig` (``device`` and
            ``mixed_precision`` are PyTorch settings, ignored here).
        checkpoint: a ``*.weights.h5`` file for the best epoch's weights (written atomically and
            reloaded); ``None`` keeps them in memory.
    """

    framework = f"Keras/{keras.backend.backend()}"

    def __init__(self, config: TransformerConfig | None = None, *, checkpoint: str | None = None) -> None:
        if checkpoint is not None and not str(checkpoint).endswith(WEIGHTS_SUFFIX):
            raise ValueError(f"Keras weight files must end in {WEIGHTS_SUFFIX!r}, got checkpoint={str(checkpoint)!r}")
        super().__init__(config, checkpoint=checkpoint)

    def _build(self, task: NextVisitTask) -> None:
        """A new network for ``task``, its weights created by one call on one query."""
        self._task = task
        self.net_ = SpaceTimeTransformerNet(task.num_pois, popularity_prior(task), self.config, task.history_len)
        first = task.queries("train").subset(slice(0, 1))
        self.net_(keras_inputs(encode_attention(task, first, counts=self._uses_counts), self.config))

    def fit(self, task: NextVisitTask) -> Self:
        cfg = self.config
        make_deterministic(cfg.seed)
        train_queries, val_queries = task.queries("train"), task.queries("val")
        data = AttentionSequence(task, train_queries, cfg, shuffle=True, seed=cfg.seed, counts=self._uses_counts)
        self._build(task)
        loss = bce_pair_loss if cfg.loss == "bce" else next_visit_nll
        # The metric "nll" is the loss without the L2 penalty: the "train loss" of the history.
        self.net_.compile(optimizer=keras.optimizers.Adam(learning_rate=cfg.lr, epsilon=1e-8, global_clipnorm=1.0),
                          loss=loss, metrics=[keras.metrics.MeanMetricWrapper(loss, name="nll")])

        def validate() -> float:
            return self.validation_mrr(val_queries)

        stopping = ValidationStopping(validate if len(val_queries) else None, patience=cfg.patience,
                                      checkpoint=self.checkpoint, num_examples=len(train_queries))
        # shuffle=False: the PyDataset shuffles itself.
        self.net_.fit(data, epochs=cfg.num_epochs, shuffle=False, callbacks=[stopping], verbose=1 if cfg.progress else 0)
        self.history_ = stopping.history
        return self

    def load(self, task: NextVisitTask, path: str) -> Self:
        """Rebuild the network for ``task`` and load a ``*.weights.h5`` file saved by ``fit``."""
        self._build(task)
        self.net_.load_weights(path)
        return self

    def import_weights(self, task: NextVisitTask, weights: Mapping[str, np.ndarray]) -> Self:
        """Build the network for ``task`` and set every weight from ``weights``, named as in the
        PyTorch state dict (``stlab.models.torch.attention.TransformerNextVisit.export_weights``).

        Raises:
            ValueError: names or shapes do not match this configuration.
        """
        self._build(task)
        targets = self.net_.weight_map()
        missing, unexpected = set(targets) - set(weights), set(weights) - set(targets)
        if missing or unexpected:
            raise ValueError(f"weights do not fit this model: missing {sorted(missing)}, unexpected {sorted(unexpected)}")
        for name, (variable, transposed) in targets.items():
            value = np.asarray(weights[name], dtype="float32")
            value = value.T if transposed else value
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(f"{name}: shape {tuple(value.shape)} does not fit {tuple(variable.shape)}")
            variable.assign(value)
        return self

    def export_weights(self) -> dict[str, np.ndarray]:
        """Every weight as a float32 NumPy array named and shaped as in the PyTorch state dict."""
        self._check_fitted()
        return {name: (ops.convert_to_numpy(variable).T if transposed else ops.convert_to_numpy(variable)).copy()
                for name, (variable, transposed) in self.net_.weight_map().items()}

    def _batches(self, queries: NextVisitQueries) -> Iterator[dict[str, np.ndarray]]:
        for batch in queries.batches(SCORE_BATCH_SIZE):
            yield keras_inputs(encode_attention(self.task, batch, counts=self._uses_counts), self.config)

    def _collect(self, queries: NextVisitQueries, compute: Callable[[dict[str, np.ndarray]], Any],
                 width: tuple[int, ...]) -> np.ndarray:
        self._check_fitted()
        parts = [np.asarray(ops.convert_to_numpy(compute(inputs))) for inputs in self._batches(queries)]
        return np.concatenate(parts) if parts else np.empty((0, *width))

    def score(self, queries: NextVisitQueries) -> np.ndarray:
        """``[Q, P]`` float64 log-probabilities of every POI."""
        # predict_on_batch: the compiled inference function, dropout off.
        scores = self._collect(queries, self.net_.predict_on_batch, (self.task.num_pois,)).astype(np.float64)
        return log_softmax(scores, axis=1) if self.net_.returns_logits else scores

    def attention_weights(self, queries: NextVisitQueries) -> np.ndarray:
        """``[Q, H, L]`` the last layer's attention of the query token over the history steps (0
        at padding; its weight on itself is left out)."""
        return self._collect(queries, lambda inputs: self.net_.encode(inputs, training=False)[1][:, :, :-1],
                             (self.config.num_heads, self.task.history_len))

    def mixture_weights(self, queries: NextVisitQueries) -> np.ndarray:
        """``[Q, K]`` how much the gate trusts each component (ones for a single component)."""
        def compute(inputs: dict[str, np.ndarray]) -> Any:
            state, _ = self.net_.encode(inputs, training=False)
            gate = self.net_.head(state, inputs)[1]
            return ops.ones_like(state[:, :1]) if gate is None else ops.softmax(ops.cast(gate, "float32"), axis=-1)

        return self._collect(queries, compute, (len(self.config.components),))


__all__ = ["KERAS_INPUT_FIELDS", "AttentionSequence", "SpaceTimeAttention", "SpaceTimeTransformerNet", "TransformerBlock",
           "TransformerNextVisit", "bce_pair_loss", "keras_inputs", "query_row_only"]
