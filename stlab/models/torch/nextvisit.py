"""The recurrent next-POI model in PyTorch, behind the book's next-visit interface.

Inputs, settings and the repeat / transition / explore mixture are described in
:mod:`stlab.models.recurrent`; the Keras twin is :mod:`stlab.models.keras.nextvisit`.

Introduced in chapter 7 (Recurrent models in PyTorch).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Self

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from stlab.models.recurrent import (
    HOURS_PER_WEEK,
    INPUT_FIELDS,
    PROBABILITY_FLOOR,
    NextVisitInputs,
    RecurrentConfig,
    RecurrentNextVisitBase,
    encode_next_visit,
    popularity_prior,
)
from stlab.protocol import NextVisitQueries, NextVisitTask, prior_transition_counts, prior_visit_counts
from stlab.training import EarlyStopping, load_checkpoint, seed_everything, select_device, train_epochs

class NextVisitDataset(Dataset):
    """Queries as a map-style dataset: item ``q`` is the tuple of :data:`INPUT_FIELDS` and the
    target. The count matrices are computed per item on demand (a batch's rows are all that is
    ever held), so the dataset costs ``O(Q L)`` memory, not ``O(Q P)``.

    Histories are left-padded to the same length ``L`` by :class:`stlab.protocol.NextVisitQueries`
    (most recent last), so the default collate stacks them and the LSTM's last output has read
    every real step; padding steps carry POI 0, whose embedding is fixed at zero.
    """

    def __init__(self, task: NextVisitTask, queries: NextVisitQueries, *, counts: bool = True) -> None:
        self.task, self.queries, self.counts = task, queries, counts
        self.sequence = encode_next_visit(task, queries, counts=False)

    def __len__(self) -> int:
        return len(self.queries)

    def __getitems__(self, rows: list[int]) -> tuple[torch.Tensor | None, ...]:
        # A whole batch at once: one vectorised count over the batch instead of one per item.
        rows_array = np.asarray(rows)
        if self.counts:
            batch = self.queries.subset(rows_array)
            visits = torch.from_numpy(prior_visit_counts(self.task, batch).astype(np.float32))
            moves = torch.from_numpy(prior_transition_counts(self.task, batch).astype(np.float32))
        else:
            visits = moves = None
        s = self.sequence
        return (torch.from_numpy(s.poi[rows_array]), torch.from_numpy(s.hour_of_week[rows_array]),
                torch.from_numpy(s.continuous[rows_array]), torch.from_numpy(s.target_hour_of_week[rows_array]),
                torch.from_numpy(s.target_gap[rows_array]), visits, moves, torch.from_numpy(s.target[rows_array]))

    def __getitem__(self, row: int) -> tuple[torch.Tensor | None, ...]:
        return tuple(None if t is None else t[0] for t in self.__getitems__([row]))

def _keep_batch(batch: tuple) -> tuple:
    """Collate for :meth:`NextVisitDataset.__getitems__`, which already returns a whole batch."""
    return batch

def next_visit_loader(task: NextVisitTask, queries: NextVisitQueries, *, batch_size: int, shuffle: bool,
                      seed: int = 0, counts: bool = True) -> DataLoader:
    """A DataLoader over ``queries`` (shuffled with its own seeded generator when ``shuffle``)."""
    dataset = NextVisitDataset(task, queries, counts=counts)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=_keep_batch)

def last_state(rnn: nn.LSTM | nn.GRU, steps: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``[B, H]`` the recurrent state after each sequence's last *real* step.

    ``steps`` is ``[B, L, E]`` left-padded (real steps at the end). Padding steps must not touch
    the state -- running an LSTM over them would move it away from zero through the biases --
    so each row is rotated to put its real steps first and the batch is *packed*: the network then
    stops at each sequence's own length. Keras gets the same effect from a mask.
    """
    batch, length = steps.shape[:2]
    lengths = lengths.clamp(min=1)
    # Row b's real steps sit at L - n_b .. L - 1; index (j + L - n_b) mod L moves them to 0 .. n_b - 1.
    index = (torch.arange(length, device=steps.device)[None, :] + (length - lengths)[:, None]) % length  # [B, L]
    right_padded = torch.gather(steps, 1, index[:, :, None].expand(-1, -1, steps.shape[2]))
    packed = nn.utils.rnn.pack_padded_sequence(right_padded, lengths.cpu(), batch_first=True, enforce_sorted=False)
    _, state = rnn(packed)
    hidden = state[0] if isinstance(state, tuple) else state  # LSTM returns (h, c); GRU returns h
    return hidden[-1]  # [B, H]: the last layer

def mixture_gate_logits(gate: nn.Module | None, joined: torch.Tensor, visit_counts: torch.Tensor | None,
                        transition_counts: torch.Tensor | None) -> torch.Tensor | None:
    """``[B, K]`` the gate's logits from ``joined`` ``[B, J]`` and the evidence each count
    component rests on, ``log(1 + sum n)`` and ``log(1 + sum m)`` (zeros for absent counts);
    ``None`` without a gate (a single component). ``gate`` maps ``J + 2`` features to ``K``."""
    if gate is None:
        return None
    evidence = [torch.zeros_like(joined[:, :1]) if c is None else torch.log1p(c.sum(-1, keepdim=True))
                for c in (visit_counts, transition_counts)]
    return gate(torch.cat([joined, *evidence], dim=-1))

def mixture_log_probabilities(components: tuple[str, ...], explore_logits: torch.Tensor | None,
                              gate_logits: torch.Tensor | None, visit_counts: torch.Tensor | None,
                              transition_counts: torch.Tensor | None, prior: torch.Tensor,
                              smoothing: float) -> torch.Tensor:
    """``[B, P]`` ``log sum_k w_k p_k(j)``: the gated repeat / transition / explore mixture of
    :mod:`stlab.models.recurrent` (shared by the recurrent and the attention next-POI models).

    Args:
        components: the components, in the order of ``gate_logits``' columns.
        explore_logits: ``[B, P]`` (needed with ``"explore"``).
        gate_logits: ``[B, K]``, or ``None`` with a single component (whose log-probabilities
            are returned as they are).
        visit_counts, transition_counts: ``[B, P]`` (needed with ``"repeat"``, ``"transition"``).
        prior: ``[P]`` popularity; smoothing: pseudo-moves ``a``.
    """
    # In float32 (or float64) even under autocast: the mixture adds probabilities that span thirty
    # orders of magnitude.
    def wide(t: torch.Tensor) -> torch.Tensor:
        return t.to(torch.promote_types(t.dtype, torch.float32))

    parts = []
    for name in components:
        if name == "repeat":
            total = visit_counts.sum(-1, keepdim=True).clamp_min(1.0)
            parts.append(torch.log((visit_counts / total).clamp_min(PROBABILITY_FLOOR)))
        elif name == "transition":
            total = transition_counts.sum(-1, keepdim=True)
            parts.append(torch.log((transition_counts + smoothing * prior) / (total + smoothing)))
        else:
            parts.append(torch.log_softmax(wide(explore_logits), dim=-1))
    if gate_logits is None:
        return parts[0]
    weights = torch.log_softmax(wide(gate_logits), dim=-1)  # [B, K]
    return torch.logsumexp(torch.stack(parts) + weights.T[:, :, None], dim=0)  # [B, P]

class RecurrentNet(nn.Module):
    """Embeddings -> LSTM/GRU -> gated mixture of repeat, transition and explore distributions.

    Shapes:
        - ``poi``: ``[B, L]`` POI index + 1 (0 = padding); ``hour_of_week``: ``[B, L]``;
          ``continuous``: ``[B, L, 2]``; ``target_hour_of_week``: ``[B]``; ``target_gap``: ``[B, 1]``;
          ``visit_counts``, ``transition_counts``: ``[B, P]`` (``None`` for an explore-only model).
        - output: ``[B, P]`` log-probabilities of the next POI.
    """

    def __init__(self, num_pois: int, prior: np.ndarray, config: RecurrentConfig) -> None:
        super().__init__()
        self.components = config.components
        self.smoothing = config.transition_smoothing
        self.poi_embedding = nn.Embedding(num_pois + 1, config.poi_dim, padding_idx=0)
        self.time_embedding = nn.Embedding(HOURS_PER_WEEK, config.time_dim)
        rnn = nn.LSTM if config.cell == "lstm" else nn.GRU
        self.rnn = rnn(config.poi_dim + config.time_dim + 2, config.hidden_size, batch_first=True)
        self.dropout = nn.Dropout(config.dropout)
        joined = config.hidden_size + config.time_dim + 1
        self.explore = (nn.Sequential(nn.Linear(joined, config.hidden_size), nn.ReLU(),
                                      nn.Linear(config.hidden_size, num_pois))
                        if "explore" in self.components else None)
        # The gate also sees how much evidence each count component rests on.
        self.gate = nn.Linear(joined + 2, len(self.components)) if len(self.components) > 1 else None
        self.register_buffer("prior", torch.as_tensor(prior, dtype=torch.float32))

    def encode(self, poi: torch.Tensor, hour_of_week: torch.Tensor, continuous: torch.Tensor,
               target_hour_of_week: torch.Tensor, target_gap: torch.Tensor) -> torch.Tensor:
        """``[B, H + time_dim + 1]`` the history's summary joined with the query's time."""
        steps = torch.cat([self.poi_embedding(poi), self.time_embedding(hour_of_week), continuous], dim=-1)  # [B, L, E]
        last = self.dropout(last_state(self.rnn, steps, lengths=(poi > 0).sum(dim=1)))  # [B, H]
        return torch.cat([last, self.time_embedding(target_hour_of_week), target_gap], dim=-1)

    def gate_logits(self, joined: torch.Tensor, visit_counts: torch.Tensor | None,
                    transition_counts: torch.Tensor | None) -> torch.Tensor | None:
        """``[B, K]`` one logit per component (``None`` with a single component)."""
        return mixture_gate_logits(self.gate, joined, visit_counts, transition_counts)

    def forward(self, poi: torch.Tensor, hour_of_week: torch.Tensor, continuous: torch.Tensor,
                target_hour_of_week: torch.Tensor, target_gap: torch.Tensor,
                visit_counts: torch.Tensor | None = None,
                transition_counts: torch.Tensor | None = None) -> torch.Tensor:
        joined = self.encode(poi, hour_of_week, continuous, target_hour_of_week, target_gap)
        explore = self.explore(joined) if self.explore is not None else None
        return mixture_log_probabilities(self.components, explore, self.gate_logits(joined, visit_counts,
                                                                                     transition_counts),
                                         visit_counts, transition_counts, self.prior, self.smoothing)

    def mixture_weights(self, *inputs: torch.Tensor | None) -> torch.Tensor:
        """``[B, K]`` the gate's weight on each component (ones for a single component)."""
        joined = self.encode(*inputs[:5])
        gate = self.gate_logits(joined, *inputs[5:7])
        return torch.ones_like(joined[:, :1]) if gate is None else torch.softmax(gate.float(), dim=-1)

class RecurrentNextVisit(RecurrentNextVisitBase):
    """LSTM or GRU next-POI model; ``fit`` trains on training queries, stops on validation MRR.

    Args:
        config: :class:`~stlab.models.recurrent.RecurrentConfig`.
        checkpoint: where the best epoch's weights are written (atomically) and reloaded from
            (``weights_only``); ``None`` keeps them in memory.
    """

    framework = "PyTorch"

    def fit(self, task: NextVisitTask) -> Self:
        cfg = self.config
        self._task = task
        seed_everything(cfg.seed)
        self.device_ = select_device(cfg.device)
        self.net_ = RecurrentNet(task.num_pois, popularity_prior(task), cfg).to(self.device_)
        loader = next_visit_loader(task, task.queries("train"), batch_size=cfg.batch_size, shuffle=True,
                                   seed=cfg.seed, counts=self._uses_counts)
        val_queries = task.queries("val")

        def loss_fn(net: nn.Module, batch: tuple[torch.Tensor | None, ...]) -> torch.Tensor:
            *inputs, target = batch
            return nn.functional.nll_loss(net(*inputs), target)

        def validate(net: nn.Module) -> float:
            return self.validation_mrr(val_queries)

        optimizer = torch.optim.Adam(self.net_.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.history_ = train_epochs(
            self.net_, lambda epoch: loader, loss_fn, optimizer, num_epochs=cfg.num_epochs,
            validate=validate if len(val_queries) else None,
            early_stopping=EarlyStopping(patience=cfg.patience, mode="max") if len(val_queries) else None,
            checkpoint=self.checkpoint, device=self.device_, mixed_precision=cfg.mixed_precision,
            progress=cfg.progress)
        self.net_.eval()
        return self

    def load(self, task: NextVisitTask, path: str) -> Self:
        """Rebuild the network for ``task`` and load weights saved by a ``fit`` with a checkpoint.

        The file is read with ``torch.load(weights_only=True)``: tensors and plain containers
        only, so a tampered file cannot run code. ``history_`` is not restored.
        """
        self._task = task
        self.device_ = select_device(self.config.device)
        self.net_ = RecurrentNet(task.num_pois, popularity_prior(task), self.config).to(self.device_)
        self.checkpoint_metadata_ = load_checkpoint(path, self.net_, map_location=self.device_)
        self.net_.eval()
        return self

    def _tensors(self, queries: NextVisitQueries) -> Iterator[torch.Tensor | None]:
        inputs: NextVisitInputs = encode_next_visit(self.task, queries, counts=self._uses_counts)
        for name in INPUT_FIELDS:
            array = getattr(inputs, name)
            yield None if array is None else torch.from_numpy(array).to(self.device_)

    def score(self, queries: NextVisitQueries) -> np.ndarray:
        """``[Q, P]`` log-probabilities of every POI."""
        self._check_fitted()
        was_training = self.net_.training
        self.net_.eval()
        with torch.no_grad():
            log_probs = self.net_(*self._tensors(queries)).float().cpu().numpy()
        self.net_.train(was_training)
        return log_probs.astype(np.float64)

    def mixture_weights(self, queries: NextVisitQueries) -> np.ndarray:
        """``[Q, K]`` how much the gate trusts each component for each query."""
        self._check_fitted()
        self.net_.eval()
        with torch.no_grad():
            return self.net_.mixture_weights(*self._tensors(queries)).cpu().numpy()

__all__ = ["INPUT_FIELDS", "NextVisitDataset", "RecurrentNet", "RecurrentNextVisit", "last_state",
           "mixture_gate_logits", "mixture_log_probabilities", "next_visit_loader"]
