"""The space-time Transformer next-POI model in PyTorch, behind the book's next-visit interface.

Tokens, relations, settings and the output are described in :mod:`stlab.models.attention.config`;
the Keras twin is :mod:`stlab.models.keras.attention`. Attention is written out head by head
(``q k^T / sqrt(d_h) + bias``, masks, softmax) rather than with ``nn.MultiheadAttention``: the
per-head relation biases must enter the logits, and the explicit masks make padding rows give
zero weights instead of the NaN that ``nn.TransformerEncoder``'s fast path can give to a
left-padded, causally masked row in eval mode.

Introduced in chapter 8 (Attention and Transformers for the next visit).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Self

import numpy as np
import torch
from scipy import sparse
from torch import nn
from torch.utils.data import DataLoader, Dataset

from stlab.features import EARTH_RADIUS_KM, HOURS_PER_WEEK
from stlab.models.attention.config import (
    ATTENTION_INPUT_FIELDS,
    EMBEDDING_STD_SCALE,
    LAYER_NORM_EPSILON,
    MASKED_LOGIT,
    AttentionInputs,
    TransformerConfig,
    TransformerNextVisitBase,
    distance_bucket_edges,
    encode_attention,
    sinusoidal_positions,
    time_bucket_edges,
)
from stlab.models.recurrent import popularity_prior
from stlab.models.torch.nextvisit import mixture_gate_logits, mixture_log_probabilities
from stlab.protocol import (
    NextVisitQueries,
    NextVisitTask,
    prior_transition_counts,
    prior_visit_counts,
)
from stlab.training import (
    EarlyStopping,
    load_checkpoint,
    seed_everything,
    select_device,
    train_epochs,
)

# Queries scored per forward pass in ``score`` and ``attention_weights``.
SCORE_BATCH_SIZE = 1024


# --------------------------------------------------------------------------- relations and masks

def pairwise_buckets(hours_before: torch.Tensor, coordinates: torch.Tensor, time_edges: torch.Tensor,
                     distance_edges: torch.Tensor, *, query_row_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, R, N]`` time-interval and distance buckets between tokens ``i`` (``R = N`` rows, or
    only the query token's row, ``R = 1``, with ``query_row_only``) and every token ``j``, for a
    whole batch at once: :func:`stlab.models.attention.config.relation_buckets` in PyTorch.

    Computed in float64 (a few thousand numbers per query), so that a pair never lands in another
    bucket than in the NumPy reference (or in Keras) through float32 round-off at an edge.

    Args:
        hours_before: ``[B, N]`` hours before the query time; coordinates: ``[B, N, 2]`` degrees.
        time_edges, distance_edges: ``[T - 1]`` and ``[S - 1]`` sorted edges (hours, km).
    """
    rows = slice(-1, None) if query_row_only else slice(None)
    hours = hours_before.double()
    interval = (hours[:, rows, None] - hours[:, None, :]).abs()  # [B, R, N]
    lat, lon = torch.deg2rad(coordinates[..., 0].double()), torch.deg2rad(coordinates[..., 1].double())
    half_dlat = (lat[:, None, :] - lat[:, rows, None]) / 2
    half_dlon = (lon[:, None, :] - lon[:, rows, None]) / 2
    cos_lat = torch.cos(lat)
    a = torch.sin(half_dlat) ** 2 + cos_lat[:, rows, None] * cos_lat[:, None, :] * torch.sin(half_dlon) ** 2
    km = 2 * EARTH_RADIUS_KM * torch.arcsin(torch.sqrt(a.clamp(0.0, 1.0)))
    # Bucket = how many edges are <= the value (np.searchsorted(..., side="right")).
    return torch.bucketize(interval, time_edges.double(), right=True), torch.bucketize(km, distance_edges.double(), right=True)


def pair_buckets(hours_before: torch.Tensor, coordinates: torch.Tensor, time_edges: torch.Tensor,
                 distance_edges: torch.Tensor, *, query_row_only: bool = False) -> torch.Tensor:
    """``[B, R, N]`` one index per pair of tokens, ``time bucket * S + distance bucket`` (``S``
    distance buckets), into a head's ``[T S]`` table of summed biases; arguments as
    :func:`pairwise_buckets`."""
    time_bucket, distance_bucket = pairwise_buckets(hours_before, coordinates, time_edges, distance_edges,
                                                    query_row_only=query_row_only)
    return time_bucket * (len(distance_edges) + 1) + distance_bucket


def attention_mask(poi: torch.Tensor) -> torch.Tensor:
    """``[B, 1, N, N]`` True where token ``i`` may attend to token ``j``: ``j <= i`` (causal) and
    ``j`` is no padding. ``poi`` is ``[B, L]`` (0 = padding); the query token (``N = L + 1``)
    is always real."""
    batch, length = poi.shape
    real = torch.cat([poi > 0, torch.ones(batch, 1, dtype=torch.bool, device=poi.device)], dim=1)  # [B, N]
    causal = torch.ones(length + 1, length + 1, dtype=torch.bool, device=poi.device).tril()
    return (causal[None] & real[:, None, :])[:, None]  # [B, 1, N, N]


def masked_softmax(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis of ``logits`` where ``allowed``, exactly 0 elsewhere; a row with
    nothing allowed (a padding token in a causal row) is all zeros, never NaN."""
    # At least float32, even under autocast (float64 stays float64).
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32)).masked_fill(~allowed, MASKED_LOGIT)
    return torch.softmax(logits, dim=-1) * allowed


# --------------------------------------------------------------------------- network

class SpaceTimeAttention(nn.Module):
    """Causal multi-head self-attention with per-head time-interval and distance biases.

    ``logits[b, h, i, j] = q_i . k_j / sqrt(d_h) + time_bias[h, T_bij] + distance_bias[h, S_bij]``,
    masked by ``allowed``; ``output = W_o concat_h(softmax(logits) v)``. There is no dropout on
    the weights: they are what the book draws, and at this size the residual dropout suffices
    (a random draw per logit would cost as much as the attention itself on a CPU).

    Shapes: ``x`` ``[B, N, D]``; ``allowed`` ``[B, 1, N, N]``; ``pair_bucket`` ``[B, N, N]``
    (:func:`pair_buckets`; ignored without relation biases). Output ``[B, R, D]`` and the
    weights ``[B, H, R, N]``, with ``R = N`` rows, or ``R = 1`` (the query token's row alone)
    with ``query_only``.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.num_heads, self.head_dim = config.num_heads, config.head_dim
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)  # [q; k; v], heads consecutive in each
        self.out = nn.Linear(config.d_model, config.d_model)
        # Zero: the model starts as a plain causal Transformer and learns the relations' worth.
        self.time_bias = nn.Parameter(torch.zeros(config.num_heads, config.time_buckets)) if config.relation_bias else None
        self.distance_bias = (nn.Parameter(torch.zeros(config.num_heads, config.distance_buckets))
                              if config.relation_bias else None)

    def relation_bias(self, pair_bucket: torch.Tensor) -> torch.Tensor | None:
        """``[B, H, R, N]`` the bias each head adds to each logit (``None`` without biases), from
        ``pair_bucket`` ``[B, R, N]`` = ``time bucket * S + distance bucket`` (:func:`pair_buckets`)."""
        if self.time_bias is None:
            return None
        # All T x S sums b_h[t] + c_h[s] first ([H, T S], a few hundred numbers), then one gather:
        # half the work of two lookups, and indexing is several times faster than
        # nn.functional.embedding (whose backward is slow for many indices into a tiny table).
        table = (self.time_bias[:, :, None] + self.distance_bias[:, None, :]).flatten(1)  # [H, T S]
        return table[:, pair_bucket].transpose(0, 1)  # [H, B, R, N] -> [B, H, R, N]

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, pair_bucket: torch.Tensor,
                query_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        batch, tokens, width = x.shape
        weight, bias = self.qkv.weight, self.qkv.bias
        # Keys and values of every token: [B, N, 2D] -> [2, B, H, N, d_h].
        k, v = (nn.functional.linear(x, weight[width:], bias[width:])
                .view(batch, tokens, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4))
        rows = x[:, -1:] if query_only else x  # [B, R, D]
        q = nn.functional.linear(rows, weight[:width], bias[:width]).view(
            batch, -1, self.num_heads, self.head_dim).transpose(1, 2)  # [B, H, R, d_h]
        logits = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # [B, H, R, N]
        relation = self.relation_bias(pair_bucket[:, -1:] if query_only else pair_bucket)
        if relation is not None:
            logits = logits + relation
        weights = masked_softmax(logits, allowed[:, :, -1:] if query_only else allowed)  # [B, H, R, N]
        mixed = weights.to(v.dtype) @ v  # [B, H, R, d_h]
        return self.out(mixed.transpose(1, 2).reshape(batch, -1, width)), weights


class TransformerBlock(nn.Module):
    """Attention and a feed-forward network (``D -> ffn_dim -> D``, exact GELU), each in a residual
    branch with dropout; LayerNorm before each branch (``"pre"``) or after each sum (``"post"``).

    Shapes: as :class:`SpaceTimeAttention`; with ``query_only`` the block returns the query
    token's row alone (``[B, 1, D]``), all the last block needs to compute for a prediction.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.pre_norm = config.norm == "pre"
        self.attention = SpaceTimeAttention(config)
        self.norm1 = nn.LayerNorm(config.d_model, eps=LAYER_NORM_EPSILON)
        self.norm2 = nn.LayerNorm(config.d_model, eps=LAYER_NORM_EPSILON)
        self.ffn = nn.Sequential(nn.Linear(config.d_model, config.ffn_dim), nn.GELU(),
                                 nn.Linear(config.ffn_dim, config.d_model))
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, pair_bucket: torch.Tensor,
                query_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        residual = x[:, -1:] if query_only else x
        if self.pre_norm:
            attended, weights = self.attention(self.norm1(x), allowed, pair_bucket, query_only)
            x = residual + self.dropout(attended)
            return x + self.dropout(self.ffn(self.norm2(x))), weights
        attended, weights = self.attention(x, allowed, pair_bucket, query_only)
        x = self.norm1(residual + self.dropout(attended))
        return self.norm2(x + self.dropout(self.ffn(x))), weights


class SpaceTimeTransformerNet(nn.Module):
    """Tokens -> causal space-time Transformer -> the query token's state -> next-POI
    log-probabilities (a tied softmax over all POIs, or the gated mixture).

    Shapes:
        - ``poi``: ``[B, L]`` POI index + 1 (0 = padding, left); ``hour_of_week``: ``[B, L]``;
          ``continuous``: ``[B, L, 2]``; ``target_hour_of_week``: ``[B]``; ``target_gap``: ``[B, 1]``;
          ``hours_before``: ``[B, L + 1]``; ``coordinates``: ``[B, L + 1, 2]``;
          ``visit_counts``, ``transition_counts``: ``[B, P]`` (``None`` for an explore-only model).
        - output: ``[B, P]`` log-probabilities of the next POI.

    The output reuses the POI embedding table (tied weights, as SASRec): a POI's input vector and
    its output vector are the same, so a POI seen a few times as a target also shapes how it is
    read in histories, and the head costs ``P`` biases instead of a ``D x P`` matrix. On Gowalla
    NYC (~1,400 POIs, ~35,000 training queries, three epochs) a separate linear head reached a
    lower training loss (4.51 against 4.74) but a lower validation MRR (0.250 against 0.260) and
    test MRR (0.199 against 0.221): the extra matrix memorises. The per-POI bias carries
    popularity, so the dot product need not.

    Args:
        num_pois: ``P``.
        prior: ``[P]`` training popularity (for the transition component).
        config: the settings.
        max_history: the longest history ``L`` the positions cover.
    """

    def __init__(self, num_pois: int, prior: np.ndarray, config: TransformerConfig, max_history: int) -> None:
        super().__init__()
        d, std = config.d_model, config.d_model ** -EMBEDDING_STD_SCALE
        self.num_pois, self.components, self.smoothing = num_pois, config.components, config.transition_smoothing
        self.max_history, self.relation_bias = max_history, config.relation_bias
        # Row 0 pads; rows 1..P are POIs; row P + 1 is the query token's unknown place.
        self.poi_embedding = nn.Embedding(num_pois + 2, d, padding_idx=0)
        self.time_embedding = nn.Embedding(HOURS_PER_WEEK, d)
        self.continuous = nn.Linear(2, d)  # (log-gap, log-distance) -> D
        self.position_embedding = nn.Embedding(max_history + 1, d) if config.positions == "learned" else None
        # Not in the state dict: it follows from the settings.
        self.register_buffer("position_table", torch.from_numpy(sinusoidal_positions(max_history + 1, d)),
                             persistent=False)
        for table in (self.poi_embedding, self.time_embedding, self.position_embedding):
            if table is not None:
                nn.init.normal_(table.weight, std=std)
        with torch.no_grad():
            self.poi_embedding.weight[0].zero_()
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.num_layers))
        # Pre-LN leaves the residual stream unnormalised: one LayerNorm after the last block.
        self.final_norm = nn.LayerNorm(d, eps=LAYER_NORM_EPSILON) if config.norm == "pre" else None
        # The output bias starts at log-popularity (centred): the untrained model already ranks by
        # popularity, and the first epoch is spent on histories, not on learning the bias.
        log_prior = np.log(np.asarray(prior, dtype=np.float64))
        self.output_bias = (nn.Parameter(torch.as_tensor(log_prior - log_prior.mean(), dtype=torch.float32))
                            if "explore" in self.components else None)
        self.gate = nn.Linear(d + 2, len(self.components)) if len(self.components) > 1 else None
        self.register_buffer("prior", torch.as_tensor(prior, dtype=torch.float32))
        self.register_buffer("time_edges", torch.from_numpy(time_bucket_edges(config.time_buckets)), persistent=False)
        self.register_buffer("distance_edges", torch.from_numpy(distance_bucket_edges(config.distance_buckets)),
                             persistent=False)

    def tokens(self, poi: torch.Tensor, hour_of_week: torch.Tensor, continuous: torch.Tensor,
               target_hour_of_week: torch.Tensor, target_gap: torch.Tensor) -> torch.Tensor:
        """``[B, N, D]`` the input tokens: ``L`` history steps, then the query token."""
        batch, length = poi.shape
        if length > self.max_history:
            raise ValueError(f"histories of {length} steps, but the positions cover {self.max_history}")
        query_poi = torch.full((batch, 1), self.num_pois + 1, dtype=poi.dtype, device=poi.device)
        # The query token: gap since the last check-in; its distance is unknown (0, like its place).
        query_continuous = torch.cat([target_gap, torch.zeros_like(target_gap)], dim=-1)[:, None, :]
        x = (self.poi_embedding(torch.cat([poi, query_poi], dim=1))
             + self.time_embedding(torch.cat([hour_of_week, target_hour_of_week[:, None]], dim=1))
             + self.continuous(torch.cat([continuous, query_continuous.to(continuous.dtype)], dim=1)))
        # Positions count back from the query token, so left padding does not shift them.
        position = torch.arange(length, -1, -1, device=poi.device)
        table = self.position_table if self.position_embedding is None else self.position_embedding.weight
        return self.embedding_dropout(x + table[position].to(x.dtype))

    def encode(self, poi: torch.Tensor, hour_of_week: torch.Tensor, continuous: torch.Tensor,
               target_hour_of_week: torch.Tensor, target_gap: torch.Tensor, hours_before: torch.Tensor,
               coordinates: torch.Tensor, *, all_tokens: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The query token's final state ``[B, D]`` and the last layer's weights of its row
        ``[B, H, N]``; with ``all_tokens``, every token's state ``[B, N, D]`` and all the last
        layer's weights ``[B, H, N, N]`` (the same numbers in the last row)."""
        x = self.tokens(poi, hour_of_week, continuous, target_hour_of_week, target_gap)
        allowed = attention_mask(poi)
        # Once per batch, shared by every layer; a single block reads only the query token's row.
        pair_bucket = (pair_buckets(hours_before, coordinates, self.time_edges, self.distance_edges,
                                    query_row_only=not all_tokens and len(self.blocks) == 1)
                       if self.relation_bias else poi.new_zeros((1, 1, 1)))
        weights = torch.zeros(0)
        for depth, block in enumerate(self.blocks):
            # A prediction reads only the query token's last state: the last block computes that row.
            x, weights = block(x, allowed, pair_bucket, query_only=not all_tokens and depth == len(self.blocks) - 1)
        x = x if self.final_norm is None else self.final_norm(x)
        return (x, weights) if all_tokens else (x[:, -1], weights[:, :, -1])

    def explore_logits(self, state: torch.Tensor) -> torch.Tensor | None:
        """``[B, P]`` tied-output logits of the query token's ``state`` ``[B, D]`` (``None``
        without an explore component)."""
        if self.output_bias is None:
            return None
        return state @ self.poi_embedding.weight[1 : self.num_pois + 1].T.to(state.dtype) + self.output_bias

    def head(self, state: torch.Tensor, visit_counts: torch.Tensor | None,
             transition_counts: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``([B, P] explore logits or None, [B, K] gate logits or None)`` of the query state."""
        return self.explore_logits(state), mixture_gate_logits(self.gate, state, visit_counts, transition_counts)

    def logits(self, *inputs: torch.Tensor | None) -> torch.Tensor:
        """``[B, P]`` raw explore logits (what the BCE loss scores); arguments as :meth:`forward`."""
        return self.explore_logits(self.encode(*inputs[:7])[0])

    def forward(self, poi: torch.Tensor, hour_of_week: torch.Tensor, continuous: torch.Tensor,
                target_hour_of_week: torch.Tensor, target_gap: torch.Tensor, hours_before: torch.Tensor,
                coordinates: torch.Tensor, visit_counts: torch.Tensor | None = None,
                transition_counts: torch.Tensor | None = None) -> torch.Tensor:
        state, _ = self.encode(poi, hour_of_week, continuous, target_hour_of_week, target_gap, hours_before,
                               coordinates)
        explore, gate = self.head(state, visit_counts, transition_counts)
        return mixture_log_probabilities(self.components, explore, gate, visit_counts, transition_counts,
                                         self.prior, self.smoothing)


# --------------------------------------------------------------------------- data

class AttentionDataset(Dataset):
    """Queries as a map-style dataset: item ``q`` is the tuple of :data:`ATTENTION_INPUT_FIELDS`
    and the target.

    Everything is encoded once, when the dataset is made: the sequences, and (mixture only) the
    two count matrices as sparse rows -- a user's visits and a POI's moves touch few of the ``P``
    POIs, so memory is ``O(Q L)`` plus the non-zero counts, never ``O(Q P)``, and no epoch counts
    again. A batch's rows are made dense when it is drawn. The pairwise buckets are not stored
    (``O(Q L^2)``): the network derives them per batch.
    """

    def __init__(self, task: NextVisitTask, queries: NextVisitQueries, *, counts: bool,
                 chunk_size: int = 4096) -> None:
        self.task, self.queries, self.counts = task, queries, counts
        self.inputs = encode_attention(task, queries, counts=False)
        self.visit_counts = self.transition_counts = None
        if counts:  # counted a chunk at a time, so the dense [chunk, P] block stays small
            chunks = list(queries.batches(chunk_size))
            self.visit_counts = sparse.vstack([sparse.csr_matrix(prior_visit_counts(task, c).astype(np.float32))
                                               for c in chunks], format="csr")
            self.transition_counts = sparse.vstack(
                [sparse.csr_matrix(prior_transition_counts(task, c).astype(np.float32)) for c in chunks], format="csr")

    def __len__(self) -> int:
        return len(self.queries)

    def __getitems__(self, rows: list[int]) -> tuple[torch.Tensor | None, ...]:
        rows_array = np.asarray(rows)
        steps = (torch.from_numpy(getattr(self.inputs, name)[rows_array]) for name in ATTENTION_INPUT_FIELDS[:7])
        counts = [None if matrix is None else torch.from_numpy(matrix[rows_array].toarray())
                  for matrix in (self.visit_counts, self.transition_counts)]
        return (*steps, *counts, torch.from_numpy(self.inputs.target[rows_array]))

    def __getitem__(self, row: int) -> tuple[torch.Tensor | None, ...]:
        return tuple(None if t is None else t[0] for t in self.__getitems__([row]))


def _keep_batch(batch: tuple) -> tuple:
    """Collate for :meth:`AttentionDataset.__getitems__`, which already returns a whole batch."""
    return batch


def draw_negatives(target: torch.Tensor, num_pois: int, generator: torch.Generator) -> torch.Tensor:
    """``[B]`` one POI per query drawn uniformly from the ``P - 1`` POIs other than its target
    (a draw from ``1 .. P - 1`` added to the target, modulo ``P``: no rejection loop)."""
    offset = torch.randint(1, num_pois, target.shape, generator=generator)
    return (target.cpu() + offset).remainder(num_pois).to(target.device)


def bce_loss(logits: torch.Tensor, target: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """SASRec's loss: ``-log sigmoid(s_target) - log sigmoid(-s_negative)``, averaged; ``logits``
    ``[B, P]``, ``target`` and ``negative`` ``[B]``."""
    positive = logits.gather(1, target[:, None]).squeeze(1).float()
    other = logits.gather(1, negative[:, None]).squeeze(1).float()
    return (nn.functional.softplus(-positive) + nn.functional.softplus(other)).mean()


# --------------------------------------------------------------------------- the model

class TransformerNextVisit(TransformerNextVisitBase):
    """Space-time Transformer next-POI model; ``fit`` trains on training queries, stops on
    validation MRR.

    Args:
        config: :class:`~stlab.models.attention.config.TransformerConfig`.
        checkpoint: where the best epoch's weights are written (atomically) and reloaded from
            (``weights_only``); ``None`` keeps them in memory.
    """

    framework = "PyTorch"

    def __init__(self, config: TransformerConfig | None = None, *, checkpoint: str | None = None,
                 initial_poi_vectors: np.ndarray | None = None) -> None:
        super().__init__(config, checkpoint=checkpoint)
        # [P, D] a start for the POI table (for instance projected name embeddings, chapter 9)
        # instead of random vectors; training moves them like any other weight.
        self.initial_poi_vectors = None if initial_poi_vectors is None else np.asarray(initial_poi_vectors, np.float32)
        if self.initial_poi_vectors is not None:
            self.name = self.name.replace(f" ({self.framework})", f", initialised ({self.framework})")

    def _build(self, task: NextVisitTask) -> None:
        self._task = task
        self.device_ = select_device(self.config.device)
        self.net_ = SpaceTimeTransformerNet(task.num_pois, popularity_prior(task), self.config,
                                            task.history_len).to(self.device_)
        if self.initial_poi_vectors is not None:
            expected = (task.num_pois, self.config.d_model)
            if self.initial_poi_vectors.shape != expected:
                raise ValueError(f"initial_poi_vectors must be [P, D] = {expected}, got {self.initial_poi_vectors.shape}")
            with torch.no_grad():  # rows 1..P; row 0 pads, row P + 1 is the query token's place
                self.net_.poi_embedding.weight[1 : task.num_pois + 1].copy_(torch.from_numpy(self.initial_poi_vectors))

    def fit(self, task: NextVisitTask) -> Self:
        cfg = self.config
        seed_everything(cfg.seed)
        self._build(task)
        generator = torch.Generator().manual_seed(cfg.seed)  # batch order
        negatives = torch.Generator().manual_seed(cfg.seed + 1)  # BCE's negative draws, their own stream
        dataset = AttentionDataset(task, task.queries("train"), counts=self._uses_counts)
        loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, generator=generator,
                            collate_fn=_keep_batch)
        val_queries = task.queries("val")

        def loss_fn(net: nn.Module, batch: tuple[torch.Tensor | None, ...]) -> torch.Tensor:
            *inputs, target = batch
            if cfg.loss == "bce":
                return bce_loss(net.logits(*inputs), target, draw_negatives(target, task.num_pois, negatives))
            return nn.functional.nll_loss(net(*inputs), target)

        def validate(net: nn.Module) -> float:
            return self.validation_mrr(val_queries)

        # The fused kernel: one pass over all weights instead of a loop of small ops per tensor
        # (on a CPU 4x faster a step, a tenth of an epoch's time here).
        optimizer = torch.optim.Adam(self.net_.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                     fused=self.device_.type in ("cpu", "cuda"))
        self.history_ = train_epochs(
            self.net_, lambda epoch: loader, loss_fn, optimizer, num_epochs=cfg.num_epochs,
            validate=validate if len(val_queries) else None,
            early_stopping=EarlyStopping(patience=cfg.patience, mode="max") if len(val_queries) else None,
            checkpoint=self.checkpoint, device=self.device_, mixed_precision=cfg.mixed_precision,
            progress=cfg.progress)
        self.net_.eval()
        return self

    def load(self, task: NextVisitTask, path: str) -> Self:
        """Rebuild the network for ``task`` and load weights saved by a ``fit`` with a checkpoint
        (``torch.load(weights_only=True)``: tensors and plain containers only). ``history_`` is
        not restored."""
        self._build(task)
        self.checkpoint_metadata_ = load_checkpoint(path, self.net_, map_location=self.device_)
        self.net_.eval()
        return self

    def _batches(self, queries: NextVisitQueries) -> Iterator[list[torch.Tensor | None]]:
        for batch in queries.batches(SCORE_BATCH_SIZE):
            inputs: AttentionInputs = encode_attention(self.task, batch, counts=self._uses_counts)
            yield [None if getattr(inputs, n) is None else torch.from_numpy(getattr(inputs, n)).to(self.device_)
                   for n in ATTENTION_INPUT_FIELDS]

    def _evaluate(self, queries: NextVisitQueries, compute: Callable[[list[torch.Tensor | None]], torch.Tensor],
                  width: tuple[int, ...]) -> np.ndarray:
        """Run ``compute(inputs) -> tensor`` on batches of ``queries`` in eval mode, no gradient."""
        self._check_fitted()
        was_training = self.net_.training
        self.net_.eval()
        with torch.no_grad():
            parts = [compute(inputs).float().cpu().numpy() for inputs in self._batches(queries)]
        self.net_.train(was_training)
        return np.concatenate(parts) if parts else np.empty((0, *width), dtype=np.float32)

    def score(self, queries: NextVisitQueries) -> np.ndarray:
        """``[Q, P]`` float64 log-probabilities of every POI."""
        return self._evaluate(queries, lambda inputs: self.net_(*inputs), (self.task.num_pois,)).astype(np.float64)

    def attention_weights(self, queries: NextVisitQueries) -> np.ndarray:
        """``[Q, H, L]`` the last layer's attention of the query token over the ``L`` history steps
        (oldest first, 0 at padding). The query token also attends to itself; that weight is left
        out, so a row sums to one minus it."""
        def compute(inputs: list[torch.Tensor | None]) -> torch.Tensor:
            return self.net_.encode(*inputs[:7])[1][:, :, :-1]

        return self._evaluate(queries, compute, (self.config.num_heads, self.task.history_len))

    def mixture_weights(self, queries: NextVisitQueries) -> np.ndarray:
        """``[Q, K]`` how much the gate trusts each component (ones for a single component)."""
        def compute(inputs: list[torch.Tensor | None]) -> torch.Tensor:
            state = self.net_.encode(*inputs[:7])[0]
            gate = mixture_gate_logits(self.net_.gate, state, *inputs[7:])
            return torch.ones_like(state[:, :1]) if gate is None else torch.softmax(gate.float(), dim=-1)

        return self._evaluate(queries, compute, (len(self.config.components),))

    def import_weights(self, task: NextVisitTask, weights: Mapping[str, np.ndarray]) -> Self:
        """Build the network for ``task`` and set every weight and buffer from ``weights``, named
        as in the state dict (:meth:`export_weights`, or a stored copy); values take each tensor's
        own dtype. ``history_`` is not restored.

        Raises:
            ValueError: names or shapes do not match this configuration and task.
        """
        self._build(task)
        targets = self.net_.state_dict()
        missing, unexpected = set(targets) - set(weights), set(weights) - set(targets)
        if missing or unexpected:
            raise ValueError(f"weights do not fit this model: missing {sorted(missing)}, unexpected {sorted(unexpected)}")
        state = {}
        for name, target in targets.items():
            value = np.asarray(weights[name])
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"{name}: shape {tuple(value.shape)} does not fit {tuple(target.shape)}")
            state[name] = torch.from_numpy(value.copy()).to(dtype=target.dtype)
        self.net_.load_state_dict(state, strict=True)
        self.net_.eval()
        return self

    def export_weights(self) -> dict[str, np.ndarray]:
        """The trained weights as float32 NumPy arrays named as in the PyTorch state dict (a
        ``Linear``'s ``weight`` is ``[out, in]``): the framework-neutral form
        :meth:`stlab.models.keras.attention.TransformerNextVisit.import_weights` reads."""
        self._check_fitted()
        return {name: tensor.detach().float().cpu().numpy().copy() for name, tensor in self.net_.state_dict().items()}


__all__ = ["AttentionDataset", "SpaceTimeAttention", "SpaceTimeTransformerNet", "TransformerBlock",
           "TransformerNextVisit", "attention_mask", "bce_loss", "draw_negatives", "masked_softmax",
           "pair_buckets", "pairwise_buckets"]
