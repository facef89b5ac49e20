"""Behaviour-type prediction with the next-visit model's encoder: will this event be a strong
action (cart, favourite, buy) rather than a page view?

Each event is read as a sequence (:func:`stlab.features.behaviour_sequences`): the user's last
``L`` earlier actions, each a token made of its behaviour, the log time to the event, and whether
it touched the same item or category; then a query token for the event itself. The tokens go
through the same causal blocks as the space-time Transformer of
:mod:`stlab.models.torch.attention` (:class:`~stlab.models.torch.attention.TransformerBlock`, with
time-interval biases and no distance), and the query token's final state gives one logit.
Trained with class-balanced binary cross-entropy, as chapter 4's logistic regression is balanced.

Introduced in chapter 8 (Self-attention for the next visit).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Self

import numpy as np
import torch
from torch import nn

from stlab.features import BEHAVIOUR_CODES, BehaviourSequences
from stlab.models.attention.config import LAYER_NORM_EPSILON, TransformerConfig, time_bucket_edges
from stlab.models.torch.attention import TransformerBlock, attention_mask
from stlab.training import seed_everything


# Actions have no place: every pair sits in distance bucket 0 of the shared blocks' tables.
DISTANCE_BUCKETS = 2


@dataclass(frozen=True)
class BehaviourConfig:
    """Settings of :class:`BehaviourTransformer`.

    Attributes:
        d_model: (int) token size. num_heads: (int). num_layers: (int). ffn_dim: (int).
        dropout: (float). relation_bias: (bool) per-head time-interval biases.
        time_buckets: (int) buckets of the interval between two actions.
        lr: (float) Adam learning rate. batch_size: (int). num_epochs: (int).
        max_steps: (int | None) stop after this many optimiser steps (a compute budget that
            keeps a large log from taking many times longer than a small one).
        seed: (int).
    """

    d_model: int = 32
    num_heads: int = 2
    num_layers: int = 2
    ffn_dim: int = 64
    dropout: float = 0.1
    relation_bias: bool = True
    time_buckets: int = 12
    lr: float = 3e-3
    batch_size: int = 256
    num_epochs: int = 4
    max_steps: int | None = None
    seed: int = 0

    def encoder_config(self) -> TransformerConfig:
        """The next-visit model's settings for the shared blocks."""
        return TransformerConfig(d_model=self.d_model, num_heads=self.num_heads, num_layers=self.num_layers,
                                 ffn_dim=self.ffn_dim, dropout=self.dropout, relation_bias=self.relation_bias,
                                 time_buckets=self.time_buckets, distance_buckets=DISTANCE_BUCKETS, progress=False)


class BehaviourNet(nn.Module):
    """Tokens of earlier actions + a query token -> causal blocks -> one logit.

    Shapes: ``behaviour`` ``[B, L]`` int64 (0 = padding, left); ``side`` ``[B, L, 3]`` float32
    (log gap, same item, same category); output ``[B]`` logits.
    """

    def __init__(self, config: BehaviourConfig, history_len: int) -> None:
        super().__init__()
        encoder = config.encoder_config()
        self.behaviour_embedding = nn.Embedding(len(BEHAVIOUR_CODES) + 2, config.d_model, padding_idx=0)
        self.side = nn.Linear(3, config.d_model)
        self.position = nn.Embedding(history_len + 1, config.d_model)
        self.blocks = nn.ModuleList(TransformerBlock(encoder) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(config.d_model, eps=LAYER_NORM_EPSILON)
        self.out = nn.Linear(config.d_model, 1)
        self.query_code = len(BEHAVIOUR_CODES) + 1
        self.register_buffer("time_edges", torch.from_numpy(time_bucket_edges(config.time_buckets)), persistent=False)

    def forward(self, behaviour: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        batch, length = behaviour.shape
        codes = torch.cat([behaviour, torch.full((batch, 1), self.query_code, dtype=behaviour.dtype)], dim=1)
        side = torch.cat([side, torch.zeros(batch, 1, side.shape[2], dtype=side.dtype)], dim=1)  # [B, N, 3]
        position = torch.arange(length, -1, -1)  # counted back from the query token
        x = self.behaviour_embedding(codes) + self.side(side) + self.position(position)
        hours = torch.expm1(side[:, :, 0].double()) / 3600.0  # [B, N] hours before the event
        interval = (hours[:, :, None] - hours[:, None, :]).abs()
        # One index per pair into each head's [time x distance] bias table; distance bucket 0.
        pair_bucket = torch.bucketize(interval, self.time_edges.double(), right=True) * DISTANCE_BUCKETS
        allowed = attention_mask(behaviour)
        for index, block in enumerate(self.blocks):
            # The last block computes the query token's row only: nothing reads the others.
            x, _ = block(x, allowed, pair_bucket, query_only=index == len(self.blocks) - 1)
        return self.out(self.norm(x[:, -1]))[:, 0]


def _arrays(seqs: BehaviourSequences, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    side = np.stack([seqs.log_gap[rows], seqs.same_item[rows], seqs.same_category[rows]], axis=-1)
    return torch.from_numpy(seqs.behaviour[rows]), torch.from_numpy(side.astype(np.float32))


class BehaviourTransformer:
    """Fit on some events of a :class:`~stlab.features.BehaviourSequences`, predict others.

    Args:
        config: :class:`BehaviourConfig`.
    """

    name = "Transformer over the user's actions"

    def __init__(self, config: BehaviourConfig | None = None) -> None:
        self.config = config or BehaviourConfig()

    def fit(self, seqs: BehaviourSequences, rows: np.ndarray) -> Self:
        """Train on the events ``rows`` (indices or a boolean mask) of ``seqs``."""
        cfg = self.config
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows)
        if len(rows) == 0:
            raise ValueError("no training events")
        seed_everything(cfg.seed)
        self.net_ = BehaviourNet(cfg, seqs.behaviour.shape[1])
        labels = seqs.label[rows].astype(np.float32)
        positives = max(labels.sum(), 1.0)
        # Balanced classes, as chapter 4's logistic regression (class_weight="balanced").
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(labels) - positives) / positives))
        optimizer = torch.optim.Adam(self.net_.parameters(), lr=cfg.lr)
        generator = np.random.default_rng(cfg.seed)
        self.history_: list[float] = []
        self.net_.train()
        steps = 0
        for _ in range(cfg.num_epochs):
            order = generator.permutation(len(rows))
            total, seen = 0.0, 0
            for start in range(0, len(rows), cfg.batch_size):
                if cfg.max_steps is not None and steps >= cfg.max_steps:
                    break
                steps += 1
                batch = rows[order[start:start + cfg.batch_size]]
                behaviour, side = _arrays(seqs, batch)
                loss = loss_fn(self.net_(behaviour, side), torch.from_numpy(seqs.label[batch].astype(np.float32)))
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.net_.parameters(), 1.0)
                optimizer.step()
                total += loss.item() * len(batch)
                seen += len(batch)
            if seen:
                self.history_.append(total / seen)
        self.net_.eval()
        return self

    def predict_proba(self, seqs: BehaviourSequences, rows: np.ndarray, *, batch_size: int = 4096) -> np.ndarray:
        """``[n]`` probability of a strong action for the events ``rows``."""
        if not hasattr(self, "net_"):
            raise RuntimeError("BehaviourTransformer is not fitted; call .fit(seqs, rows) first")
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows)
        parts = []
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                parts.append(torch.sigmoid(self.net_(*_arrays(seqs, rows[start:start + batch_size]))).numpy())
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def with_config(self, **changes: object) -> BehaviourTransformer:
        """A new, unfitted model with some settings changed."""
        return BehaviourTransformer(replace(self.config, **changes))


__all__ = ["BehaviourConfig", "BehaviourNet", "BehaviourTransformer"]
