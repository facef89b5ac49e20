"""Settings and inputs of the space-time Transformer next-POI model, shared by its PyTorch
(:mod:`stlab.models.torch.attention`) and Keras (:mod:`stlab.models.keras.attention`)
implementations, so that the two differ only in the framework.

**Tokens.** A query's history -- its last ``L`` check-ins, left-padded, most recent last -- becomes
``L`` tokens, each the sum of the POI's embedding, the hour-of-week embedding, a linear map of
(log-gap, log-distance) from the check-in before, and a position. A final *query token* is
appended (``N = L + 1`` tokens): its "POI" is a learnt *unknown place* vector (the place is what is
being predicted), its hour of the week is the one being predicted, its gap the hours since the
last check-in. The query token is the last token, so with causal attention it reads the whole
history *and* the time it must predict for; its final state scores every POI.

**Positions** count back from the query token (query 0, last check-in 1, ...), so a history
means the same thing however much left padding precedes it.

**Relations** (TiSASRec, Li et al. 2020; STAN, Luo et al. 2021). Every pair of tokens ``(i, j)``
has a time interval ``|t_i - t_j|`` and a distance between their places (the query token stands at
the query time ``t`` and, for distances, at the last check-in's POI). Both are bucketed on a log
scale (:func:`time_bucket_edges`, :func:`distance_bucket_edges`) and each attention head adds a
learnt scalar per bucket to its logit ``q_i . k_j / sqrt(d_h)``: ``b_h[time bucket(i, j)] +
c_h[distance bucket(i, j)]``. The biases start at zero, so the model begins as a plain causal
Transformer (SASRec, Kang & McAuley 2018) and learns how much recency and nearness matter.

**Output.** The query token's state scores all ``P`` POIs through the POI embedding table itself
(tied weights) plus a per-POI bias; ``components`` can instead make it the *explore* part of
chapter 7's gated repeat / transition / explore mixture (:mod:`stlab.models.recurrent`).

Introduced in chapter 8 (Attention and Transformers for the next visit).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

import numpy as np

from stlab.features import haversine_km
from stlab.metrics import ranking_metrics_from_ranks
from stlab.models.recurrent import COMPONENTS, NextVisitInputs, encode_next_visit
from stlab.protocol import NextVisitModel, NextVisitQueries, NextVisitTask, query_ranks

# Log-spaced bucket edges: the first and last edge of each relation. Below the first edge is
# bucket 0 (the same visit burst, or the same POI: distance 0), at or above the last edge is the
# last bucket (a month apart; across the metropolitan area).
TIME_EDGE_RANGE_HOURS = (0.25, 24.0 * 60)
DISTANCE_EDGE_RANGE_KM = (0.05, 50.0)
# The network's inputs by name, in the order of the PyTorch model's arguments (Keras batches are
# dicts of these): the recurrent model's step inputs, what the relations need, then the counts.
ATTENTION_INPUT_FIELDS = ("poi", "hour_of_week", "continuous", "target_hour_of_week", "target_gap",
                          "hours_before", "coordinates", "visit_counts", "transition_counts")
# Logit given to a blocked (future or padding) key before the softmax: exp(-1e9 - max) is exactly
# 0 in float32, and, unlike -inf, a row with every key blocked gives no NaN (its weights are then
# set to zero).
MASKED_LOGIT = -1e9
# LayerNorm's epsilon in both frameworks (PyTorch's default; Keras' would be 1e-3).
LAYER_NORM_EPSILON = 1e-5
# Standard deviation of the initial POI, hour and position embeddings: d_model ** -0.25 (0.35 at
# D = 64). Through the tied output this sets how far apart POIs start; with d_model ** -0.5 the
# first epoch on Gowalla NYC learnt little beyond popularity (validation MRR 0.09 against 0.14),
# and with PyTorch's N(0, 1) the initial logits span tens of nats.
EMBEDDING_STD_SCALE = 0.25  # std = d_model ** -EMBEDDING_STD_SCALE


@dataclass(frozen=True)
class TransformerConfig:
    """Settings of the space-time Transformer next-POI model.

    The defaults were chosen on Gowalla NYC (~1,400 POIs, ~35,000 training queries, ``L = 20``)
    to train well in three epochs on two CPU cores (about five seconds an epoch): one block (a
    second was slower and no better in three epochs; the last block only computes the query
    token's row, so one block costs a fraction of two), no dropout (three epochs leave no time to
    overfit, and dropout slowed learning), a learning rate of 5e-3 with batches of 128.

    Attributes:
        d_model: (int) token size ``D``.
        num_heads: (int) attention heads ``H`` (must divide ``d_model``).
        num_layers: (int) Transformer blocks.
        ffn_dim: (int) hidden size of each block's feed-forward network.
        dropout: (float) on embeddings, attention weights and the residual branches.
        positions: (str) ``"learned"`` (an embedding per position) or ``"sinusoidal"`` (fixed).
        norm: (str) ``"pre"`` (LayerNorm before each sub-layer, and once at the end) or ``"post"``
            (after each residual sum, as in the original Transformer).
        relation_bias: (bool) add the per-head time-interval and distance biases to the logits.
        time_buckets: (int) buckets of ``|t_i - t_j|`` (:func:`time_bucket_edges`), >= 2.
        distance_buckets: (int) buckets of the distance (:func:`distance_bucket_edges`), >= 2.
        components: (tuple[str, ...]) a subset of ``("repeat", "transition", "explore")``;
            ``("explore",)`` is the plain softmax over POIs, more makes it chapter 7's mixture.
        transition_smoothing: (float) ``a`` of the transition component.
        loss: (str) ``"softmax"``: cross-entropy of the full softmax (or mixture) over all POIs;
            ``"bce"``: SASRec's binary cross-entropy of the target against one uniformly drawn
            other POI per query (explore-only models).
        lr: (float) Adam learning rate.
        weight_decay: (float) L2 penalty (PyTorch: Adam's ``weight_decay``; Keras: L2 of the same
            strength).
        batch_size: (int) queries per step.
        num_epochs: (int) maximum epochs.
        patience: (int) epochs without validation MRR gain before stopping.
        device: (str) PyTorch only: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        mixed_precision: (bool) PyTorch only: autocast on CUDA.
        seed: (int) seed of initialisation, batch order, dropout and negative draws.
        progress: (bool) progress bars.
    """

    d_model: int = 64
    num_heads: int = 2
    num_layers: int = 1
    ffn_dim: int = 128
    dropout: float = 0.0
    positions: Literal["learned", "sinusoidal"] = "learned"
    norm: Literal["pre", "post"] = "pre"
    relation_bias: bool = True
    time_buckets: int = 16
    distance_buckets: int = 16
    components: tuple[str, ...] = ("explore",)
    transition_smoothing: float = 1.0
    loss: Literal["softmax", "bce"] = "softmax"
    lr: float = 5e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    num_epochs: int = 3
    patience: int = 1
    device: str = "auto"
    mixed_precision: bool = True
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("d_model", "num_heads", "num_layers", "ffn_dim", "batch_size", "num_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide d_model ({self.d_model})")
        if self.positions not in ("learned", "sinusoidal"):
            raise ValueError(f"positions must be 'learned' or 'sinusoidal', got {self.positions!r}")
        if self.norm not in ("pre", "post"):
            raise ValueError(f"norm must be 'pre' or 'post', got {self.norm!r}")
        if self.time_buckets < 2 or self.distance_buckets < 2:
            raise ValueError("time_buckets and distance_buckets must be >= 2 (one bucket is a constant bias)")
        unknown = set(self.components) - set(COMPONENTS)
        if not self.components or unknown:
            raise ValueError(f"components must be a non-empty subset of {COMPONENTS}, got {self.components!r}")
        object.__setattr__(self, "components", tuple(c for c in COMPONENTS if c in self.components))
        if self.loss not in ("softmax", "bce"):
            raise ValueError(f"loss must be 'softmax' or 'bce', got {self.loss!r}")
        if self.loss == "bce" and self.components != ("explore",):
            # The mixture gives probabilities, not the free logits a sigmoid loss scores.
            raise ValueError("loss='bce' needs components=('explore',); the mixture trains with 'softmax'")
        if not 0 <= self.dropout < 1 or self.lr <= 0 or self.weight_decay < 0 or self.transition_smoothing <= 0:
            raise ValueError("need 0 <= dropout < 1, lr > 0, weight_decay >= 0 and transition_smoothing > 0")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0, got {self.patience}")

    @property
    def head_dim(self) -> int:
        """``D / H``, the size of each head's queries, keys and values."""
        return self.d_model // self.num_heads

    def describe(self) -> dict[str, object]:
        """The settings as a plain dict (for provenance lines)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def model_name(self, framework: str) -> str:
        """For example ``"Transformer softmax+ST (PyTorch)"``: the loss, ``+ST`` with the space-time
        biases, and the mixture's components when there is more than the softmax."""
        name = f"Transformer {self.loss}{'+ST' if self.relation_bias else ''}"
        if self.components != ("explore",):
            name += " " + "+".join(self.components)
        return f"{name} ({framework})"


# --------------------------------------------------------------------------- inputs

@dataclass(frozen=True)
class AttentionInputs(NextVisitInputs):
    """The recurrent model's inputs (:class:`~stlab.models.recurrent.NextVisitInputs`: ``poi``,
    ``hour_of_week``, ``continuous``, ``target_hour_of_week``, ``target_gap``, the counts and
    ``target``) plus what the pairwise relations need, for the ``N = L + 1`` tokens (the ``L``
    history steps, then the query token).

    Attributes:
        hours_before: ``[Q, N]`` float64 hours from each history check-in to the query time ``t``
            (0 for the query token and at padding); ``|hours_before_i - hours_before_j|`` is the
            interval between tokens ``i`` and ``j``.
        coordinates: ``[Q, N, 2]`` float64 latitude and longitude (degrees) of each token's POI;
            the query token stands at the last check-in's POI; 0 at padding.
    """

    hours_before: np.ndarray
    coordinates: np.ndarray


def encode_attention(task: NextVisitTask, queries: NextVisitQueries, *, counts: bool = True) -> AttentionInputs:
    """The model's inputs for ``queries`` (see :class:`AttentionInputs`): the recurrent encoding of
    :func:`stlab.models.recurrent.encode_next_visit` plus times and places of every token;
    ``counts=False`` skips the two ``[Q, P]`` count matrices (an explore-only model)."""
    base = encode_next_visit(task, queries, counts=counts)
    valid = queries.history_poi >= 0  # [Q, L]
    hours = np.where(valid, (queries.time[:, None] - queries.history_time) / 3600.0, 0.0)
    hours_before = np.concatenate([hours, np.zeros((len(queries), 1))], axis=1)
    lat_lon = task.pois[["lat", "lon"]].to_numpy(np.float64)  # [P, 2]
    places = np.concatenate([queries.history_poi, queries.history_poi[:, -1:]], axis=1)  # the query at the last POI
    coordinates = np.where((places >= 0)[..., None], lat_lon[np.maximum(places, 0)], 0.0)
    return AttentionInputs(**{f.name: getattr(base, f.name) for f in fields(base)},
                           hours_before=hours_before, coordinates=coordinates)


def time_bucket_edges(num_buckets: int) -> np.ndarray:
    """``[num_buckets - 1]`` hours: geometric from 15 minutes to 60 days
    (:data:`TIME_EDGE_RANGE_HOURS`), equal steps of log time. Interval ``x`` falls in bucket
    ``k`` when ``edges[k - 1] <= x < edges[k]``: bucket 0 is under 15 minutes, the last is 60
    days and more."""
    return np.geomspace(*TIME_EDGE_RANGE_HOURS, num_buckets - 1)


def distance_bucket_edges(num_buckets: int) -> np.ndarray:
    """``[num_buckets - 1]`` km: geometric from 50 m to 50 km (:data:`DISTANCE_EDGE_RANGE_KM`),
    bucketed like :func:`time_bucket_edges`: bucket 0 is the same POI or next door, the last is
    50 km and more."""
    return np.geomspace(*DISTANCE_EDGE_RANGE_KM, num_buckets - 1)


def bucketize(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bucket of each value: how many edges are ``<=`` it (``np.searchsorted(edges, values,
    side="right")``; the networks compute the same count with their own ops)."""
    return np.searchsorted(edges, values, side="right")


def pairwise_intervals_and_distances(hours_before: np.ndarray, coordinates: np.ndarray, *,
                                     query_row_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``[Q, R, N]`` hours and ``[Q, R, N]`` haversine km between tokens ``i`` and ``j``: every
    pair (``R = N``), or with ``query_row_only`` the query token's row (``R = 1``)."""
    rows = slice(-1, None) if query_row_only else slice(None)
    hours = np.abs(hours_before[:, rows, None] - hours_before[:, None, :])
    lat, lon = coordinates[..., 0], coordinates[..., 1]
    km = haversine_km(lat[:, rows, None], lon[:, rows, None], lat[:, None, :], lon[:, None, :])
    return hours, km


def relation_buckets(hours_before: np.ndarray, coordinates: np.ndarray, *, time_buckets: int = 16,
                     distance_buckets: int = 16, query_row_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The time-interval and distance bucket of every pair of tokens: the NumPy reference of
    what the networks compute per batch.

    Args:
        hours_before: ``[Q, N]`` from :func:`encode_attention`.
        coordinates: ``[Q, N, 2]`` from :func:`encode_attention`.
        time_buckets, distance_buckets: numbers of buckets.
        query_row_only: only the query token's row (all a one-block network reads).

    Returns:
        ``[Q, N, N]`` int64 time buckets (0 .. time_buckets - 1) and ``[Q, N, N]`` distance
        buckets (``[Q, 1, N]`` with ``query_row_only``); symmetric, with bucket 0 on the
        diagonal. Pairs with padding get a bucket too (the masks ignore them).
    """
    hours, km = pairwise_intervals_and_distances(hours_before, coordinates, query_row_only=query_row_only)
    return bucketize(hours, time_bucket_edges(time_buckets)), bucketize(km, distance_bucket_edges(distance_buckets))


def pair_bucket_index(hours_before: np.ndarray, coordinates: np.ndarray, *, time_buckets: int = 16,
                      distance_buckets: int = 16, query_row_only: bool = False) -> np.ndarray:
    """``[Q, N, N]`` (or ``[Q, 1, N]``) int32 ``time bucket * distance_buckets + distance bucket``
    of every pair of tokens (:func:`relation_buckets`): one index into a head's table of the ``T x S`` summed
    biases ``b_h[t] + c_h[s]``. The PyTorch network computes it per batch from the float64 inputs;
    the Keras network takes it as an input, because Keras casts float64 inputs to float32, which
    could move a pair across a bucket edge."""
    time_bucket, distance_bucket = relation_buckets(hours_before, coordinates, time_buckets=time_buckets,
                                                    distance_buckets=distance_buckets, query_row_only=query_row_only)
    return (time_bucket * distance_buckets + distance_bucket).astype(np.int32)


def sinusoidal_positions(num_positions: int, d_model: int) -> np.ndarray:
    """``[num_positions, d_model]`` float32 fixed positions (Vaswani et al. 2017): column ``2i`` is
    ``sin(p / 10000^(2i / D))``, column ``2i + 1`` the cosine (an odd ``D`` drops the last cosine)."""
    position = np.arange(num_positions, dtype=np.float64)[:, None]
    frequency = np.exp(-np.log(10000.0) * np.arange(0, d_model, 2, dtype=np.float64) / d_model)  # [ceil(D/2)]
    table = np.zeros((num_positions, d_model))
    table[:, 0::2] = np.sin(position * frequency)
    table[:, 1::2] = np.cos(position * frequency)[:, : d_model // 2]
    return table.astype(np.float32)


def position_index(num_tokens: int) -> np.ndarray:
    """``[N]`` position of each token, counted back from the query token (the last token is 0)."""
    return np.arange(num_tokens - 1, -1, -1)


# --------------------------------------------------------------------------- the shared base

class TransformerNextVisitBase(NextVisitModel):
    """What the PyTorch and Keras Transformer next-POI models share: the config, the checkpoint,
    the name, whether count inputs are needed, and the validation MRR that stops training.

    Args:
        config: :class:`TransformerConfig`.
        checkpoint: where the best epoch's weights are written (atomically) and reloaded from;
            ``None`` keeps them in memory.
    """

    framework = "framework"

    def __init__(self, config: TransformerConfig | None = None, *, checkpoint: str | None = None) -> None:
        self.config = config or TransformerConfig()
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.name = self.config.model_name(self.framework)

    @property
    def _uses_counts(self) -> bool:
        """Whether the repeat or transition component needs the leak-free count inputs."""
        return self.config.components != ("explore",)

    def validation_mrr(self, val_queries: NextVisitQueries) -> float:
        """MRR over ``val_queries``: the early-stopping criterion of both frameworks."""
        return ranking_metrics_from_ranks(query_ranks(self, val_queries), ks=(10,))["MRR"]


__all__ = ["ATTENTION_INPUT_FIELDS", "DISTANCE_EDGE_RANGE_KM", "LAYER_NORM_EPSILON", "MASKED_LOGIT",
           "TIME_EDGE_RANGE_HOURS", "AttentionInputs", "TransformerConfig", "TransformerNextVisitBase", "bucketize",
           "distance_bucket_edges", "encode_attention", "pair_bucket_index", "pairwise_intervals_and_distances", "position_index",
           "relation_buckets", "sinusoidal_positions", "time_bucket_edges"]
