"""A recurrent next-POI model in PyTorch behind the book's next-visit interface.

Each query's history -- the last ``L`` check-ins before ``t`` -- becomes a sequence of step
vectors: the POI's embedding, the hour of the week's embedding, and two continuous features,
the log-gap (hours) and log-distance (km) from the previous step. An LSTM or GRU reads it; its
last hidden state, joined with the embedding of the hour of the week *being predicted* and the
log-gap since the last check-in, is mapped to a score for every POI (full softmax, trained with
cross-entropy on the training queries). No user embedding: users unseen in training are scored
from their history like everyone else.

Introduced in chapter 7 (Recurrent models in PyTorch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Self

import numpy as np
import pandas as pd
import torch
from torch import nn

from stlab.baselines import NextVisitModel
from stlab.features import haversine_km
from stlab.metrics import ranking_metrics_from_ranks
from stlab.protocol import (
    NextVisitQueries,
    NextVisitTask,
    prior_visit_counts,
    query_ranks,
)
from stlab.training import EarlyStopping, seed_everything, select_device, train_epochs

HOURS_PER_WEEK = 168


@dataclass(frozen=True)
class RecurrentConfig:
    """Settings of :class:`RecurrentNextVisit` (defaults: a small model that trains on a CPU).

    Attributes:
        cell: (str) ``"lstm"`` or ``"gru"``.
        poi_dim: (int) POI embedding size.
        time_dim: (int) hour-of-week embedding size.
        hidden_size: (int) recurrent state size ``H``.
        dropout: (float) dropout on the recurrent output.
        lr: (float) Adam learning rate.
        weight_decay: (float) L2 penalty.
        batch_size: (int) queries per step.
        num_epochs: (int) maximum epochs.
        patience: (int) epochs without validation MRR gain before stopping.
        device: (str) ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        mixed_precision: (bool) autocast on CUDA.
        seed: (int) seed of initialisation and batch order.
        progress: (bool) progress bars.
        repeat_term: (bool) add ``a log(1 + n_ui)`` to each POI's score, ``n_ui`` the user's
            visits to it before ``t`` (:func:`stlab.protocol.prior_visit_counts`), with ``a``
            learnt: people return to places, and a softmax over thousands of POIs learns that
            slowly from embeddings alone.
    """

    cell: Literal["lstm", "gru"] = "lstm"
    poi_dim: int = 64
    time_dim: int = 16
    hidden_size: int = 128
    dropout: float = 0.2
    lr: float = 3e-3
    weight_decay: float = 1e-6
    batch_size: int = 256
    num_epochs: int = 10
    patience: int = 2
    device: str = "auto"
    mixed_precision: bool = True
    seed: int = 0
    progress: bool = True
    repeat_term: bool = True


class RecurrentNet(nn.Module):
    """Embeddings -> LSTM/GRU -> scores over all POIs.

    Shapes:
        - ``poi``: ``[B, L]`` POI index + 1 (0 = padding); ``how``: ``[B, L]`` hour of week;
          ``cont``: ``[B, L, 2]`` log-gap and log-distance; ``target_how``: ``[B]``;
          ``target_gap``: ``[B, 1]``; ``visit_counts``: ``[B, P]`` (optional).
        - output: ``[B, P]`` logits.
    """

    def __init__(self, num_pois: int, config: RecurrentConfig) -> None:
        super().__init__()
        self.poi_embedding = nn.Embedding(num_pois + 1, config.poi_dim, padding_idx=0)
        self.time_embedding = nn.Embedding(HOURS_PER_WEEK, config.time_dim)
        rnn = nn.LSTM if config.cell == "lstm" else nn.GRU
        self.rnn = rnn(config.poi_dim + config.time_dim + 2, config.hidden_size, batch_first=True)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Sequential(
            nn.Linear(config.hidden_size + config.time_dim + 1, config.hidden_size), nn.ReLU(),
            nn.Linear(config.hidden_size, num_pois))
        # Started large: one visit then outweighs the untrained head, and the network learns
        # corrections to "go where you have been" rather than rediscovering it.
        self.repeat_weight = nn.Parameter(torch.tensor(5.0)) if config.repeat_term else None

    def forward(self, poi: torch.Tensor, how: torch.Tensor, cont: torch.Tensor, target_how: torch.Tensor,
                target_gap: torch.Tensor, visit_counts: torch.Tensor | None = None) -> torch.Tensor:
        steps = torch.cat([self.poi_embedding(poi), self.time_embedding(how), cont], dim=-1)  # [B, L, E]
        # Histories are left-padded (most recent last), so the last output has read every step.
        output, _ = self.rnn(steps)  # [B, L, H]
        last = self.dropout(output[:, -1])  # [B, H]
        joined = torch.cat([last, self.time_embedding(target_how), target_gap], dim=-1)
        logits = self.head(joined)  # [B, P]
        if self.repeat_weight is not None and visit_counts is not None:
            logits = logits + self.repeat_weight * torch.log1p(visit_counts)
        return logits


def local_hour_of_week(seconds: np.ndarray, timezone: str) -> np.ndarray:
    """Hour of the week (Monday 0h = 0) in ``timezone`` of epoch seconds, any shape."""
    local = pd.DatetimeIndex(pd.to_datetime(seconds.ravel(), unit="s", utc=True)).tz_convert(timezone)
    return (local.day_of_week * 24 + local.hour).to_numpy().astype(np.int64).reshape(seconds.shape)


def encode_queries(task: NextVisitTask, queries: NextVisitQueries) -> tuple[torch.Tensor, ...]:
    """Tensors for :class:`RecurrentNet` (see its Shapes) and the targets ``[Q]``."""
    lat, lon = task.pois["lat"].to_numpy(), task.pois["lon"].to_numpy()
    poi = queries.history_poi
    valid = poi >= 0
    safe = np.maximum(poi, 0)
    local_how = queries.day_of_week * 24 + queries.hour  # [Q]
    how = np.where(valid, local_hour_of_week(queries.history_time, task.timezone), 0)  # [Q, L]
    gap_h = np.diff(queries.history_time, axis=1, prepend=queries.history_time[:, :1]) / 3600.0
    prev = np.concatenate([safe[:, :1], safe[:, :-1]], axis=1)
    dist = haversine_km(lat[prev], lon[prev], lat[safe], lon[safe])
    first = valid & ~np.concatenate([np.zeros((len(poi), 1), bool), valid[:, :-1]], axis=1)
    gap_h, dist = np.where(valid & ~first, gap_h, 0.0), np.where(valid & ~first, dist, 0.0)
    cont = np.stack([np.log1p(np.maximum(gap_h, 0)), np.log1p(dist)], axis=-1)
    target_gap = np.log1p(np.maximum(queries.time - queries.prev_time, 0) / 3600.0)[:, None]
    return (torch.from_numpy(np.where(valid, poi + 1, 0)), torch.from_numpy(how),
            torch.from_numpy(cont.astype(np.float32)), torch.from_numpy(local_how.astype(np.int64)),
            torch.from_numpy(target_gap.astype(np.float32)), torch.from_numpy(queries.target.astype(np.int64)))


class RecurrentNextVisit(NextVisitModel):
    """LSTM or GRU next-POI model; ``fit`` trains on training queries, stops on validation MRR.

    Args:
        config: :class:`RecurrentConfig`.
    """

    def __init__(self, config: RecurrentConfig | None = None) -> None:
        self.config = config or RecurrentConfig()
        self.name = f"{self.config.cell.upper()} (PyTorch)"

    def fit(self, task: NextVisitTask) -> Self:
        cfg = self.config
        self._task = task
        seed_everything(cfg.seed)
        self.device_ = select_device(cfg.device)
        self.net_ = RecurrentNet(task.num_pois, cfg).to(self.device_)
        train_queries = task.queries("train")
        train = encode_queries(task, train_queries)
        val_queries = task.queries("val")
        generator = torch.Generator().manual_seed(cfg.seed)

        def batches(epoch: int):
            order = torch.randperm(len(train[0]), generator=generator)
            for start in range(0, len(order), cfg.batch_size):
                rows = order[start:start + cfg.batch_size]
                counts = self._counts(train_queries.subset(rows.numpy()))
                yield (*(t[rows] for t in train), counts)

        def loss_fn(net: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            *inputs, target, counts = batch
            return nn.functional.cross_entropy(net(*inputs, counts), target)

        def validate(net: nn.Module) -> float:
            return ranking_metrics_from_ranks(query_ranks(self, val_queries), ks=(10,))["MRR"]

        optimizer = torch.optim.Adam(self.net_.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.history_ = train_epochs(
            self.net_, batches, loss_fn, optimizer, num_epochs=cfg.num_epochs,
            validate=validate if len(val_queries) else None,
            early_stopping=EarlyStopping(patience=cfg.patience, mode="max") if len(val_queries) else None,
            device=self.device_, mixed_precision=cfg.mixed_precision, progress=cfg.progress)
        self.net_.eval()
        return self

    def _counts(self, queries: NextVisitQueries) -> torch.Tensor | None:
        if not self.config.repeat_term:
            return None
        return torch.from_numpy(prior_visit_counts(self.task, queries).astype(np.float32))

    def score(self, queries: NextVisitQueries) -> np.ndarray:
        self._check_fitted()
        *inputs, _ = encode_queries(self.task, queries)
        counts = self._counts(queries)
        was_training = self.net_.training
        self.net_.eval()
        with torch.no_grad():
            logits = self.net_(*(t.to(self.device_) for t in inputs),
                               None if counts is None else counts.to(self.device_)).float().cpu().numpy()
        self.net_.train(was_training)
        return logits.astype(np.float64)


__all__ = ["RecurrentConfig", "RecurrentNet", "RecurrentNextVisit", "encode_queries", "local_hour_of_week"]
