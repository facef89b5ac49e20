"""Spatio-temporal graph forecasters: T-GCN and an STGCN-style network, behind one interface.

Both read the last ``window`` steps of **all** nodes of a network at once and forecast the next
``horizon`` steps of all nodes, ``[B, W, N, F] -> [B, H, N]``, with the graph convolution of
:mod:`stlab.graphs` (``S = D~^-1/2 (A + I) D~^-1/2``) mixing each node with its neighbours:

- :class:`TGCN` (Zhao et al., 2019): a GRU whose gates and candidate are graph convolutions,

      [r, u] = sigmoid(S [x_t, h_{t-1}] W_g + b_g)
      c_t    = tanh(S [x_t, r * h_{t-1}] W_c + b_c)
      h_t    = u * h_{t-1} + (1 - u) * c_t

  and a linear map from each node's final state to its ``horizon`` forecasts.
- :class:`STGCN` (Yu et al., IJCAI 2018): two "sandwich" blocks of a gated temporal convolution
  (GLU), a graph convolution with ReLU and a second gated temporal convolution, each followed by
  layer normalisation; a last temporal convolution collapses the remaining steps and a linear
  map gives the ``horizon`` forecasts (direct multi-step, rather than the paper's iteration).
  The layer normalisation is **per node** -- over the channels of each node and step -- where
  the reference code normalises over ``[N, C]`` together. Normalising over all nodes lets every
  node's statistics reach every other node even with ``S = I``, so "STGCN without edges" would
  not be every node on its own; per node, the graph convolution is the only path between nodes.

:class:`GraphForecaster` wraps either network in the book's :class:`~stlab.forecasting.Forecaster`
protocol (``fit`` / ``forecast`` / ``update``), so :func:`stlab.forecasting.rolling_origin`
evaluates it exactly like the per-node baselines.

**Missing readings.** ``NaN`` marks a missing reading. Inputs are filled causally (the last
observed value of that node, or its training mean before any) and the training loss averages the
error over the *valid* targets of each batch; the reported metrics
(:func:`stlab.metrics.mae` and friends) average over all valid points of the whole test set.

Introduced in chapter 11 (Spatio-temporal graph forecasting).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import nn

from stlab.features import clock_features
from stlab.forecasting import Forecast, check_new_rows
from stlab.graphs import normalized_adjacency, to_torch_sparse
from stlab.models.windows.inputs import fill_causal
from stlab.models.windows.scaling import Standardizer
from stlab.training import EarlyStopping, cpu_threads, seed_everything, select_device, train_epochs


@dataclass(frozen=True)
class GraphForecasterConfig:
    """Settings of :class:`GraphForecaster`.

    The defaults train T-GCN on a week of 5-minute speeds of 207 sensors in about 10-20 s on two
    CPU cores.

    Attributes:
        model: (str) ``"tgcn"`` or ``"stgcn"``.
        window: (int) steps of history read (12: one hour of 5-minute data).
        horizon: (int) steps forecast at once; ``forecast`` may ask for fewer, never more.
        hidden_size: (int) T-GCN state size per node; STGCN's temporal channels.
        spatial_channels: (int) STGCN's channels inside the graph convolution (16 in the paper).
        kernel_size: (int) STGCN's temporal kernel ``K_t``; needs ``window > 4 (K_t - 1)``.
        clock_periods: (tuple[int, ...]) periods (in steps) of sine/cosine inputs of the row
            position, counted from the first row given to ``fit`` -- for example ``(288,)`` for the
            time of day of 5-minute data, ``(24, 168)`` for hour of day and week of hourly data.
        transform: (str | None) ``"log1p"`` for non-negative counts, ``None`` for speeds.
        profile_season: (int | None) with a season ``s`` (steps), each node's mean scaled value at
            each position ``t mod s`` of the training part is a *profile*: the network reads it as
            an input and forecasts the deviation from it, so an untrained network forecasts the
            historical average. ``None``: no profile.
        loss: (str) ``"mae"`` (masked L1 on the scaled values) or ``"mse"``.
        dropout: (float) dropout on the final node states.
        lr: (float) Adam learning rate.
        weight_decay: (float) Adam L2 penalty.
        batch_size: (int) windows per step (each window holds every node).
        num_epochs: (int) maximum epochs.
        patience: (int) epochs without a lower validation MAE before stopping (best weights kept).
        samples_per_epoch: (int | None) training windows drawn per epoch; ``None``: all.
        validation_share: (float) last share of the fitted history held out, chronologically,
            for early stopping.
        seed: (int) seed of initialisation and window order.
        device: (str) ``"auto"``, ``"cpu"`` or ``"cuda"``.
        num_threads: (int | None) CPU threads while fitting and forecasting.
        progress: (bool) progress bars.
        name: (str | None) label in result tables.
    """

    model: Literal["tgcn", "stgcn"] = "tgcn"
    window: int = 12
    horizon: int = 12
    hidden_size: int = 64
    spatial_channels: int = 16
    kernel_size: int = 3
    clock_periods: tuple[int, ...] = ()
    transform: Literal["log1p"] | None = None
    profile_season: int | None = None
    loss: Literal["mae", "mse"] = "mae"
    dropout: float = 0.0
    lr: float = 3e-3
    weight_decay: float = 0.0
    batch_size: int = 32
    num_epochs: int = 40
    patience: int = 5
    samples_per_epoch: int | None = None
    validation_share: float = 0.1
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = None
    progress: bool = True
    name: str | None = None

    def __post_init__(self) -> None:
        if self.model not in ("tgcn", "stgcn"):
            raise ValueError(f"model must be 'tgcn' or 'stgcn', got {self.model!r}")
        if self.window < 1 or self.horizon < 1:
            raise ValueError(f"window and horizon must be >= 1, got {self.window} and {self.horizon}")
        if self.model == "stgcn" and self.window <= 4 * (self.kernel_size - 1):
            raise ValueError(f"STGCN's two blocks consume 4 (K_t - 1) = {4 * (self.kernel_size - 1)} steps; "
                             f"use window > that (got {self.window}) or a smaller kernel_size")
        if self.transform not in (None, "log1p"):
            raise ValueError(f"transform must be None or 'log1p', got {self.transform!r}")
        if self.loss not in ("mae", "mse"):
            raise ValueError(f"loss must be 'mae' or 'mse', got {self.loss!r}")
        if not 0 <= self.validation_share < 1:
            raise ValueError(f"validation_share must be in [0, 1), got {self.validation_share}")

    @property
    def label(self) -> str:
        return self.name or {"tgcn": "T-GCN", "stgcn": "STGCN"}[self.model]


# --------------------------------------------------------------------------- graph convolution
def propagate(operator: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``S x`` over the node axis: ``x`` ``[B, N, C]`` -> ``[B, N, C]`` with a sparse ``[N, N]`` ``S``."""
    batch, nodes, channels = x.shape
    flat = x.transpose(0, 1).reshape(nodes, batch * channels)  # [N, B*C]
    mixed = torch.sparse.mm(operator, flat) if operator.is_sparse else operator @ flat
    return mixed.reshape(nodes, batch, channels).transpose(0, 1)


class TGCNCell(nn.Module):
    """One T-GCN step (see the module docstring).

    Shapes:
        ``x``: ``[B, N, F]``; ``h``: ``[B, N, hidden]``; output ``[B, N, hidden]``.
    """

    def __init__(self, num_features: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.gates = nn.Linear(num_features + hidden_size, 2 * hidden_size)
        self.candidate = nn.Linear(num_features + hidden_size, hidden_size)
        # Gates open at the start (bias 1), as in the T-GCN reference code: the state is carried on.
        nn.init.constant_(self.gates.bias, 1.0)

    def forward(self, operator: torch.Tensor, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        # S (Z W) = (S Z) W: propagating the narrower concatenation first costs less.
        r, u = torch.sigmoid(self.gates(propagate(operator, torch.cat([x, h], dim=-1)))).chunk(2, dim=-1)
        c = torch.tanh(self.candidate(propagate(operator, torch.cat([x, r * h], dim=-1))))
        return u * h + (1.0 - u) * c


class TGCN(nn.Module):
    """Graph-convolutional GRU over the window, then a linear map to the horizon.

    Shapes:
        ``x``: ``[B, W, N, F]`` -> ``[B, H, N]``.
    """

    def __init__(self, operator: torch.Tensor, num_features: int, config: GraphForecasterConfig) -> None:
        super().__init__()
        self.register_buffer("operator", operator)
        self.cell = TGCNCell(num_features, config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, window, nodes, _ = x.shape
        h = x.new_zeros(batch, nodes, self.cell.hidden_size)
        for t in range(window):
            h = self.cell(self.operator, x[:, t], h)  # [B, N, hidden]
        return self.head(self.dropout(h)).transpose(1, 2)  # [B, H, N]


class TemporalGatedConv(nn.Module):
    """GLU temporal convolution of STGCN: ``(P + residual) * sigmoid(Q)`` with ``[P, Q] = conv(x)``.

    Shapes:
        ``x``: ``[B, C_in, T, N]`` -> ``[B, C_out, T - K_t + 1, N]``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.conv = nn.Conv2d(in_channels, 2 * out_channels, (kernel_size, 1))
        self.residual = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, q = self.conv(x).chunk(2, dim=1)
        return (p + self.residual(x[:, :, self.kernel_size - 1:])) * torch.sigmoid(q)


class STConvBlock(nn.Module):
    """Temporal GLU -> graph convolution + ReLU -> temporal GLU -> layer norm over ``C``, per node.

    The graph convolution is ``ReLU(Z Theta_0 + S Z Theta_1)``: Yu et al.'s Chebyshev
    convolution of order one, with the GCN operator ``S`` in place of the scaled Laplacian.

    Shapes:
        ``x``: ``[B, C_in, T, N]`` -> ``[B, C_t, T - 2 (K_t - 1), N]``.
    """

    def __init__(self, in_channels: int, temporal_channels: int, spatial_channels: int, kernel_size: int,
                 dropout: float) -> None:
        super().__init__()
        self.temporal_in = TemporalGatedConv(in_channels, temporal_channels, kernel_size)
        # First-order Chebyshev form: the node itself and its neighbourhood get separate weights,
        # so a node with many neighbours does not drown its own signal in their average.
        self.own = nn.Linear(temporal_channels, spatial_channels)
        self.spatial = nn.Linear(temporal_channels, spatial_channels, bias=False)
        self.temporal_out = TemporalGatedConv(spatial_channels, temporal_channels, kernel_size)
        # Per node: statistics over the channels of one node and step, so no node's scale leaks
        # into another's except through S.
        self.norm = nn.LayerNorm(temporal_channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, operator: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        x = self.temporal_in(x)  # [B, C_t, T', N]
        batch, channels, steps, nodes = x.shape
        z = x.permute(0, 2, 3, 1).reshape(batch * steps, nodes, channels)  # [B*T', N, C_t]
        z = torch.relu(self.own(z) + propagate(operator, self.spatial(z)))  # [B*T', N, C_s]
        z = z.reshape(batch, steps, nodes, -1).permute(0, 3, 1, 2)  # [B, C_s, T', N]
        z = self.temporal_out(z)  # [B, C_t, T'', N]
        z = self.norm(z.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # normalised over C_t, per (step, node)
        return self.dropout(z)


class STGCN(nn.Module):
    """Two ST-Conv blocks and an output layer, direct multi-step.

    Every layer acts per node except the graph convolutions, so the same weights apply to a
    network of any size, and with ``S = I`` each node is forecast from its own window alone.

    Shapes:
        ``x``: ``[B, W, N, F]`` -> ``[B, H, N]``.
    """

    def __init__(self, operator: torch.Tensor, num_features: int, config: GraphForecasterConfig) -> None:
        super().__init__()
        self.register_buffer("operator", operator)
        c_t, c_s, k = config.hidden_size, config.spatial_channels, config.kernel_size
        self.blocks = nn.ModuleList([
            STConvBlock(num_features, c_t, c_s, k, config.dropout),
            STConvBlock(c_t, c_t, c_s, k, config.dropout),
        ])
        remaining = config.window - 4 * (k - 1)
        self.collapse = TemporalGatedConv(c_t, c_t, remaining)  # -> one step
        self.norm = nn.LayerNorm(c_t)  # per node
        self.head = nn.Sequential(nn.Linear(c_t, c_t), nn.ReLU(), nn.Linear(c_t, config.horizon))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.permute(0, 3, 1, 2)  # [B, F, W, N]
        for block in self.blocks:
            z = block(self.operator, z)
        z = self.collapse(z)[:, :, 0]  # [B, C_t, N]
        z = self.norm(z.transpose(1, 2))  # [B, N, C_t], normalised over C_t per node
        return self.head(z).transpose(1, 2)  # [B, H, N]


# --------------------------------------------------------------------------- data handling
def masked_loss(predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, kind: str = "mae") -> torch.Tensor:
    """Mean error over the valid targets of a batch (``mask`` 1 = observed); 0 if none is valid."""
    error = (predicted - target).abs() if kind == "mae" else (predicted - target) ** 2
    error = torch.where(mask > 0, error, torch.zeros_like(error))  # NaN targets must not leak through
    return error.sum() / mask.sum().clamp_min(1.0)


class GraphForecaster:
    """T-GCN or STGCN behind the :class:`~stlab.forecasting.Forecaster` protocol.

    ``fit`` trains once on ``[T, N]`` (``NaN`` = missing); ``update`` appends observations
    without refitting; ``forecast`` reads the latest ``window`` rows. Scaling is per node
    (mean and standard deviation of the training part, after ``log1p`` for counts).

    Args:
        adjacency: ``[N, N]`` dense or sparse non-negative weights, ``A[source, target]``; the
            operator is :func:`stlab.graphs.normalized_adjacency` of it (self-loops added).
        config: :class:`GraphForecasterConfig`.

    Shapes:
        ``y``: ``[T, N]``; forecasts ``[horizon, N]``.
    """

    def __init__(self, adjacency: np.ndarray | sp.spmatrix, config: GraphForecasterConfig | None = None) -> None:
        self.config = config or GraphForecasterConfig()
        self.name = self.config.label
        self.operator_matrix = normalized_adjacency(adjacency)
        self.num_nodes = self.operator_matrix.shape[0]
        self.net_: nn.Module | None = None
        self.history_: pd.DataFrame | None = None
        self.fit_seconds_: float = math.nan
        self.profile_: np.ndarray | None = None  # [season, N] scaled profile, when configured
        self.scaler_: Standardizer | None = None  # per-node statistics of the training part
        self._raw: np.ndarray | None = None  # [T, N] the scaled history with NaN kept
        self._filled: np.ndarray | None = None  # [T, N] the same, filled causally (network inputs)
        self.device_ = torch.device("cpu")

    # -- scaling and windows
    def _forward_transform(self, y: np.ndarray) -> np.ndarray:
        return np.log1p(np.clip(y, 0, None)) if self.config.transform == "log1p" else y

    @property
    def mean_(self) -> np.ndarray:
        """``[N]`` per-node mean of the (transformed) training part."""
        assert self.scaler_ is not None, "call fit() first"
        return self.scaler_.mean

    @property
    def std_(self) -> np.ndarray:
        """``[N]`` per-node standard deviation of the (transformed) training part (1 if constant)."""
        assert self.scaler_ is not None, "call fit() first"
        return self.scaler_.scale

    def _scale(self, y: np.ndarray) -> np.ndarray:
        assert self.scaler_ is not None
        return self.scaler_.transform(self._forward_transform(y)).astype(np.float32)

    def _unscale(self, z: np.ndarray) -> np.ndarray:
        assert self.scaler_ is not None
        y = self.scaler_.inverse(z)
        return np.expm1(y).clip(0, None) if self.config.transform == "log1p" else y

    def _clock(self, positions: np.ndarray) -> np.ndarray:
        """``[len(positions), 2 * len(clock_periods)]`` sine/cosine of the row positions."""
        return clock_features(positions, self.config.clock_periods).astype(np.float32)

    def _profile(self, rows: np.ndarray) -> np.ndarray:
        """The profile at row positions (any shape ``S``) -> ``S + [N]``; zeros without a profile."""
        if self.profile_ is None:
            return np.zeros(rows.shape + (self.num_nodes,), np.float32)
        return self.profile_[rows % len(self.profile_)]

    def _inputs(self, origins: np.ndarray) -> np.ndarray:
        """``[B, W, N, F]`` inputs of the windows ending just before each origin (row index)."""
        cfg = self.config
        rows = origins[:, None] + np.arange(-cfg.window, 0)[None, :]  # [B, W]
        values = self._filled[rows][..., None]  # [B, W, N, 1]
        if self.profile_ is not None:
            values = np.concatenate([values, self._profile(rows)[..., None]], axis=-1)  # [B, W, N, 2]
        clock = self._clock(rows.reshape(-1)).reshape(len(origins), cfg.window, 1, -1)
        clock = np.broadcast_to(clock, (len(origins), cfg.window, self.num_nodes, clock.shape[-1]))
        return np.concatenate([values, clock], axis=-1).astype(np.float32)

    def _targets(self, origins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = origins[:, None] + np.arange(self.config.horizon)[None, :]  # [B, H]
        target = self._raw[rows] - self._profile(rows)  # [B, H, N]: the deviation from the profile
        mask = np.isfinite(target).astype(np.float32)
        return np.nan_to_num(target, nan=0.0), mask

    def _batch(self, origins: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        target, mask = self._targets(origins)
        return torch.from_numpy(self._inputs(origins)), torch.from_numpy(target), torch.from_numpy(mask)

    # -- the protocol
    def fit(self, y: np.ndarray, exog: np.ndarray | None = None) -> GraphForecaster:
        """Train on ``y`` ``[T, N]`` (``exog`` is not supported and must be ``None``)."""
        cfg = self.config
        if exog is not None:
            raise ValueError(f"{self.name} takes no regressors; use clock_periods for the time of day and week")
        y = np.array(y, dtype=np.float64)
        if y.ndim != 2 or y.shape[1] != self.num_nodes:
            raise ValueError(f"{self.name}: y must be [T, N] with N = {self.num_nodes} nodes like the adjacency, "
                             f"got shape {y.shape}")
        num_rows = len(y)
        num_train = int(round(num_rows * (1 - cfg.validation_share)))
        needed = cfg.window + cfg.horizon
        if num_train < needed + cfg.batch_size // 4:
            raise ValueError(f"{self.name}: {num_rows} rows leave too few training windows of {needed} steps; "
                             "give a longer history or a shorter window/horizon")
        with cpu_threads(cfg.num_threads):
            start = time.perf_counter()
            # Per node, NaN ignored; a constant (or never observed) node keeps unit scale.
            self.scaler_ = Standardizer.fit(self._forward_transform(y[:num_train]))
            self.profile_ = None
            if cfg.profile_season is not None:
                scaled = self._scale(y[:num_train])
                positions = np.arange(num_train) % cfg.profile_season
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # a position never observed stays 0
                    profile = np.stack([np.nanmean(scaled[positions == p], axis=0)
                                        for p in range(cfg.profile_season)])
                self.profile_ = np.nan_to_num(profile).astype(np.float32)  # [season, N]
            self._set_history(y)
            # Training windows lie wholly in the training part; validation origins in the held-out tail.
            self.train_origins_ = np.arange(cfg.window, num_train - cfg.horizon + 1)
            self.validation_origins_ = np.arange(max(num_train, cfg.window), num_rows - cfg.horizon + 1)
            seed_everything(cfg.seed)
            self.device_ = select_device(cfg.device)
            operator = to_torch_sparse(self.operator_matrix)
            num_features = 1 + (self.profile_ is not None) + 2 * len(cfg.clock_periods)
            self.net_ = (TGCN(operator, num_features, cfg) if cfg.model == "tgcn"
                         else STGCN(operator, num_features, cfg)).to(self.device_)
            if self.profile_ is not None:
                # The last layer starts at zero, so training starts from the profile itself.
                last = self.net_.head if isinstance(self.net_.head, nn.Linear) else self.net_.head[-1]
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)
            self.history_ = self._train()
            self.fit_seconds_ = time.perf_counter() - start
        return self

    def _set_history(self, y: np.ndarray) -> None:
        self._raw = self._scale(y)
        self._filled = fill_causal(self._raw, np.zeros(self.num_nodes))  # 0 = the node's training mean

    def _train(self) -> pd.DataFrame:
        cfg = self.config
        assert self.net_ is not None
        generator = np.random.default_rng(cfg.seed)

        def batches(epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
            order = generator.permutation(self.train_origins_)
            if cfg.samples_per_epoch is not None:
                order = order[:cfg.samples_per_epoch]
            for begin in range(0, len(order), cfg.batch_size):
                yield self._batch(order[begin:begin + cfg.batch_size])

        def loss_fn(net: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            x, target, mask = batch
            return masked_loss(net(x), target, mask, cfg.loss)

        def validate(net: nn.Module) -> float:
            # MAE over all valid validation points (sums, not a mean of batch means).
            total, count = 0.0, 0.0
            for begin in range(0, len(self.validation_origins_), 64):
                x, target, mask = (t.to(self.device_) for t in self._batch(self.validation_origins_[begin:begin + 64]))
                total += float(((net(x) - target).abs() * mask).sum())
                count += float(mask.sum())
            return total / max(count, 1.0)

        has_validation = len(self.validation_origins_) > 0
        optimizer = torch.optim.Adam(self.net_.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        history = train_epochs(
            self.net_, batches, loss_fn, optimizer, num_epochs=cfg.num_epochs,
            validate=validate if has_validation else None,
            early_stopping=EarlyStopping(patience=cfg.patience, mode="min") if has_validation else None,
            device=self.device_, progress=cfg.progress)
        self.net_.eval()
        return history

    def update(self, y_new: np.ndarray, exog_new: np.ndarray | None = None) -> GraphForecaster:
        """Append observations ``[k, N]`` after the origin; the weights stay as fitted."""
        if self._raw is None:
            raise RuntimeError(f"{self.name}: call fit() before update()")
        y_new = check_new_rows(y_new, self.num_nodes, self.name)
        self._raw = np.concatenate([self._raw, self._scale(y_new)])
        self._filled = fill_causal(self._raw, np.zeros(self.num_nodes))
        return self

    def predict_scaled(self, origins: np.ndarray) -> np.ndarray:
        """``[B, H, N]`` network outputs (scaled deviations from the profile, if any) for windows
        ending before rows ``origins`` of the stored history."""
        assert self.net_ is not None
        with torch.no_grad():
            return self.net_(torch.from_numpy(self._inputs(np.asarray(origins))).to(self.device_)).cpu().numpy()

    def forecast(self, horizon: int, exog_future: np.ndarray | None = None, *, level: float = 0.9) -> Forecast:
        """Point forecasts ``[horizon, N]`` from the end of the history (no interval)."""
        if self.net_ is None or self._raw is None:
            raise RuntimeError(f"{self.name}: call fit() before forecast()")
        if not 1 <= horizon <= self.config.horizon:
            raise ValueError(f"{self.name} was trained for horizons up to {self.config.horizon}, asked for {horizon}")
        with cpu_threads(self.config.num_threads):
            origin = len(self._raw)
            scaled = self.predict_scaled(np.array([origin]))[0, :horizon]  # [h, N] deviations
            scaled = scaled + self._profile(origin + np.arange(horizon))
        return Forecast(self._unscale(scaled.astype(np.float64)), None, None, level)

    def num_parameters(self) -> int:
        assert self.net_ is not None
        return sum(p.numel() for p in self.net_.parameters())


__all__ = ["GraphForecaster", "GraphForecasterConfig", "STConvBlock", "STGCN", "TGCN", "TGCNCell",
           "TemporalGatedConv", "fill_causal", "masked_loss", "propagate"]
