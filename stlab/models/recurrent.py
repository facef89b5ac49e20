"""What the recurrent next-POI model sees and how it is set up, shared by its PyTorch
(:mod:`stlab.models.torch.nextvisit`) and Keras (:mod:`stlab.models.keras.nextvisit`)
implementations, so that the two differ only in the framework.

**Inputs.** Each query's history -- the last ``L`` check-ins before ``t`` -- becomes a sequence
of steps: the POI, its hour of the week, and the log-gap (hours) and log-distance (km) from the
step before. The query adds the hour of the week being predicted and the log-gap since the last
check-in, and two count vectors over all POIs, both counted strictly before ``t``
(:func:`stlab.protocol.prior_visit_counts`, :func:`stlab.protocol.prior_transition_counts`).

**Output: a mixture of three next-place distributions.** The LSTM (or GRU) reads the steps; its
last state ``h`` decides how much to trust each of

* *repeat*: ``n_ui / sum_j n_uj``, the user's own visit frequencies -- people return;
* *transition*: the smoothed first-order Markov row of the previous POI, ``(m_ij + a p_j) /
  (sum_j m_ij + a)``, with ``p`` the training popularity;
* *explore*: ``softmax(W h')``, a learnt distribution over every POI,

through gate weights ``w = softmax(G [h', log(1 + sum n), log(1 + sum m)])``, where ``h'`` joins
``h`` with the target hour and gap. The score of POI ``j`` is ``log sum_k w_k p_k(j)``; the loss
is the negative log-likelihood of the visited POI. A component can be switched off (``explore``
alone is the plain recurrent softmax); in the spirit of RepeatNet (Ren et al., 2019), the
network learns *when* a user repeats rather than rediscovering that people do.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
import pandas as pd

from stlab.features import HOURS_PER_WEEK, haversine_km
from stlab.metrics import ranking_metrics_from_ranks
from stlab.protocol import (NextVisitModel, NextVisitQueries, NextVisitTask, prior_transition_counts, prior_visit_counts,
                            query_ranks)

COMPONENTS = ("repeat", "transition", "explore")
# Floor of the repeat probability of a POI the user never visited: log(0) would make a
# repeat-only model's loss infinite; at 1e-30 such POIs still rank below every visited one.
PROBABILITY_FLOOR = 1e-30
# The network's inputs by name, in the order of the PyTorch model's arguments (Keras batches are
# dicts of these): the fields of NextVisitInputs except the target.
INPUT_FIELDS = ("poi", "hour_of_week", "continuous", "target_hour_of_week", "target_gap",
                "visit_counts", "transition_counts")


@dataclass(frozen=True)
class RecurrentConfig:
    """Settings of the recurrent next-POI model (defaults: a small model that trains on a CPU).

    Attributes:
        cell: (str) ``"lstm"`` or ``"gru"``.
        components: (tuple[str, ...]) mixture components, a subset of ``("repeat", "transition",
            "explore")``.
        poi_dim: (int) POI embedding size.
        time_dim: (int) hour-of-week embedding size.
        hidden_size: (int) recurrent state size ``H``.
        dropout: (float) dropout on the recurrent output.
        transition_smoothing: (float) ``a``, pseudo-moves towards popularity in the transition row.
        lr: (float) Adam learning rate.
        weight_decay: (float) L2 penalty (PyTorch: Adam's ``weight_decay``; Keras: kernel L2 of
            the same strength).
        batch_size: (int) queries per step.
        num_epochs: (int) maximum epochs.
        patience: (int) epochs without validation MRR gain before stopping.
        device: (str) PyTorch only: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        mixed_precision: (bool) PyTorch only: autocast on CUDA.
        seed: (int) seed of initialisation and batch order.
        progress: (bool) progress bars.
    """

    cell: Literal["lstm", "gru"] = "lstm"
    components: tuple[str, ...] = COMPONENTS
    poi_dim: int = 32
    time_dim: int = 16
    hidden_size: int = 64
    dropout: float = 0.5
    transition_smoothing: float = 1.0
    lr: float = 2e-3
    weight_decay: float = 1e-5
    batch_size: int = 256
    num_epochs: int = 10
    patience: int = 2
    device: str = "auto"
    mixed_precision: bool = True
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {self.cell!r}")
        unknown = set(self.components) - set(COMPONENTS)
        if not self.components or unknown:
            raise ValueError(f"components must be a non-empty subset of {COMPONENTS}, got {self.components!r}")
        object.__setattr__(self, "components", tuple(c for c in COMPONENTS if c in self.components))
        for name in ("poi_dim", "time_dim", "hidden_size", "batch_size", "num_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1 or self.transition_smoothing <= 0 or self.lr <= 0:
            raise ValueError("need 0 <= dropout < 1, transition_smoothing > 0 and lr > 0")

    def describe(self) -> dict[str, object]:
        """The settings as a plain dict (for provenance lines)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class NextVisitInputs:
    """Arrays for the recurrent next-POI model (``Q`` queries, ``L`` steps, ``P`` POIs).

    Attributes:
        poi: ``[Q, L]`` int64 POI index + 1; 0 pads (histories are left-padded, most recent last).
        hour_of_week: ``[Q, L]`` int64 local hour of the week of each step (0 at padding).
        continuous: ``[Q, L, 2]`` float32 log1p gap (hours) and log1p distance (km) from the step
            before (0 at a history's first step and at padding).
        target_hour_of_week: ``[Q]`` int64 local hour of the week being predicted.
        target_gap: ``[Q, 1]`` float32 log1p hours since the last check-in.
        visit_counts: ``[Q, P]`` float32 the user's visits to each POI before ``t``, or ``None``.
        transition_counts: ``[Q, P]`` float32 training moves out of the previous POI before ``t``,
            or ``None``.
        target: ``[Q]`` int64 the visited POI.
    """

    poi: np.ndarray
    hour_of_week: np.ndarray
    continuous: np.ndarray
    target_hour_of_week: np.ndarray
    target_gap: np.ndarray
    visit_counts: np.ndarray | None
    transition_counts: np.ndarray | None
    target: np.ndarray

    def __len__(self) -> int:
        return len(self.target)


def local_hour_of_week(seconds: np.ndarray, timezone: str) -> np.ndarray:
    """Hour of the week (Monday 0h = 0) in ``timezone`` of epoch seconds, any shape."""
    local = pd.DatetimeIndex(pd.to_datetime(seconds.ravel(), unit="s", utc=True)).tz_convert(timezone)
    return (local.day_of_week * 24 + local.hour).to_numpy().astype(np.int64).reshape(seconds.shape)


def encode_next_visit(task: NextVisitTask, queries: NextVisitQueries, *, counts: bool = True) -> NextVisitInputs:
    """The model's inputs for ``queries`` (see :class:`NextVisitInputs`); ``counts=False`` skips
    the two ``[Q, P]`` count matrices (a model without repeat and transition components)."""
    lat, lon = task.pois["lat"].to_numpy(), task.pois["lon"].to_numpy()
    poi = queries.history_poi
    valid = poi >= 0
    safe = np.maximum(poi, 0)
    how = np.where(valid, local_hour_of_week(queries.history_time, task.timezone), 0)  # [Q, L]
    gap_h = np.diff(queries.history_time, axis=1, prepend=queries.history_time[:, :1]) / 3600.0
    prev = np.concatenate([safe[:, :1], safe[:, :-1]], axis=1)
    dist = haversine_km(lat[prev], lon[prev], lat[safe], lon[safe])
    first = valid & ~np.concatenate([np.zeros((len(poi), 1), bool), valid[:, :-1]], axis=1)
    has_previous = valid & ~first
    gap_h, dist = np.where(has_previous, gap_h, 0.0), np.where(has_previous, dist, 0.0)
    continuous = np.stack([np.log1p(np.maximum(gap_h, 0)), np.log1p(dist)], axis=-1)
    target_gap = np.log1p(np.maximum(queries.time - queries.prev_time, 0) / 3600.0)[:, None]
    return NextVisitInputs(
        poi=np.where(valid, poi + 1, 0).astype(np.int64),
        hour_of_week=how.astype(np.int64),
        continuous=continuous.astype(np.float32),
        target_hour_of_week=(queries.day_of_week * 24 + queries.hour).astype(np.int64),
        target_gap=target_gap.astype(np.float32),
        visit_counts=prior_visit_counts(task, queries).astype(np.float32) if counts else None,
        transition_counts=prior_transition_counts(task, queries).astype(np.float32) if counts else None,
        target=queries.target.astype(np.int64),
    )


class RecurrentNextVisitBase(NextVisitModel):
    """What the PyTorch and Keras recurrent next-POI models share: the config, the checkpoint, the
    name, whether count components are used, and the validation MRR that stops training.

    Subclasses set :attr:`framework` and implement ``fit`` and ``score``.

    Args:
        config: :class:`RecurrentConfig`.
        checkpoint: where the best epoch's weights are written (atomically) and reloaded from;
            ``None`` keeps them in memory.
    """

    framework = "framework"

    def __init__(self, config: RecurrentConfig | None = None, *, checkpoint: str | None = None) -> None:
        self.config = config or RecurrentConfig()
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.name = f"{self.config.cell.upper()} {'+'.join(self.config.components)} ({self.framework})"

    @property
    def _uses_counts(self) -> bool:
        """Whether the repeat or transition component needs the leak-free count inputs."""
        return self.config.components != ("explore",)

    def validation_mrr(self, val_queries: NextVisitQueries) -> float:
        """MRR over ``val_queries``: the early-stopping criterion of both frameworks."""
        return ranking_metrics_from_ranks(query_ranks(self, val_queries), ks=(10,))["MRR"]


def popularity_prior(task: NextVisitTask) -> np.ndarray:
    """``[P]`` float32 training popularity with one pseudo-visit per POI (sums to 1): where the
    transition component falls back when the previous POI has few recorded moves."""
    counts = task.train_popularity + 1.0
    return (counts / counts.sum()).astype(np.float32)


def mixture_log_probabilities_numpy(gate_logits: np.ndarray, explore_logits: np.ndarray | None,
                                    visit_counts: np.ndarray | None, transition_counts: np.ndarray | None,
                                    prior: np.ndarray, smoothing: float,
                                    components: tuple[str, ...] = COMPONENTS) -> np.ndarray:
    """``[Q, P]`` the mixture's log-probabilities in float64 NumPy: the reference the PyTorch and
    Keras heads are tested against.

    Args:
        gate_logits: ``[Q, K]`` one logit per component, in the order of ``components``.
        explore_logits: ``[Q, P]`` (needed when ``"explore"`` is a component).
        visit_counts, transition_counts: ``[Q, P]`` (needed for ``"repeat"``, ``"transition"``).
        prior: ``[P]`` popularity; smoothing: pseudo-moves ``a``.
    """
    from scipy.special import log_softmax, logsumexp

    parts = []
    for name in components:
        if name == "repeat":
            total = np.maximum(visit_counts.sum(-1, keepdims=True), 1.0)
            parts.append(np.log(np.maximum(visit_counts / total, PROBABILITY_FLOOR)))
        elif name == "transition":
            total = transition_counts.sum(-1, keepdims=True)
            parts.append(np.log((transition_counts + smoothing * prior) / (total + smoothing)))
        else:
            parts.append(log_softmax(explore_logits, axis=-1))
    weights = log_softmax(gate_logits, axis=-1)  # [Q, K]
    return logsumexp(np.stack(parts) + weights.T[:, :, None], axis=0)


__all__ = ["COMPONENTS", "HOURS_PER_WEEK", "INPUT_FIELDS", "PROBABILITY_FLOOR", "NextVisitInputs", "RecurrentConfig",
           "RecurrentNextVisitBase", "encode_next_visit",
           "local_hour_of_week", "mixture_log_probabilities_numpy", "popularity_prior"]
