"""Settings of the recurrent multi-horizon forecaster, shared by PyTorch and Keras.

Introduced in chapter 6 (Recurrent models in Keras).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

# Calibration origins needed before empirical interval quantiles mean anything: with fewer, the
# 5 % and 95 % quantiles are the extreme residuals themselves.
MIN_VALIDATION_ORIGINS = 20
# Validation origins needed to choose an epoch: a mean error over fewer is mostly noise. Early
# stopping compares means, not tails, so it needs fewer origins than interval calibration.
MIN_EARLY_STOPPING_ORIGINS = 10


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class ForecasterConfig:
    """Settings of the recurrent multi-horizon forecaster, shared by PyTorch and Keras.

    The defaults are a small model that fits in 10-20 seconds on two CPU cores on two years of
    hourly data (one series; PyTorch or Keras). A window of 168 recurrent steps costs about
    0.2-0.5 ms per sample and epoch on such a CPU, so a sweep of all 16,000 windows would take
    several seconds *per epoch*; instead each epoch draws ``samples_per_epoch`` random windows
    (a fresh draw each time, so the whole history is still used), and early stopping with
    ``patience=3`` usually ends training after 6-12 such epochs. On the bike series, longer
    training (more epochs, or ``hidden_size=64``) still helped a little; the budget decided.

    Attributes:
        cell: (str) ``"lstm"`` or ``"gru"``.
        window: (int) hours of history the network reads (168: one week).
        horizon: (int) steps forecast at once; ``forecast`` may ask for fewer, never more.
        hidden_size: (int) recurrent state size.
        num_layers: (int) stacked recurrent layers.
        dropout: (float) dropout between recurrent layers and on the summary ``h``.
        context_size: (int) size of each step's context vector in the head.
        head_size: (int) hidden units of the head's shared per-step MLP.
        seasonal_lags: (tuple[int, ...]) lags (hours) of the scaled target given to the head at
            each forecast step; each must lie in ``[horizon, window]`` (observed at the origin
            and inside the window).
        clock_periods: (tuple[int, ...]) periods (hours) of sine/cosine features of the row
            position, counted from the first row given to ``fit``; for hourly rows these are the
            hour of day (24) and of week (168) up to a fixed phase, which the network absorbs.
            Across a daylight-saving switch positions drift by an hour from local time: pass
            :func:`calendar_features` in ``exog`` and ``clock_periods=()`` where that matters.
        series_id: (bool) give the head a one-hot id of the column (only when ``N > 1``).
        transform: (str | None) ``"log1p"`` models ``log(1 + y)`` of non-negative counts
            (forecasts are floored at 0); ``None`` models ``y``.
        loss: (str) ``"huber"`` (delta 1 on the standardised scale: outages and spikes do not
            dominate) or ``"mse"``.
        lr: (float) Adam learning rate.
        batch_size: (int) windows per step.
        num_epochs: (int) maximum epochs.
        patience: (int) epochs without a lower validation loss tolerated before stopping (the
            best epoch's weights are restored).
        samples_per_epoch: (int | None) training windows drawn (without replacement) per epoch;
            ``None`` uses all of them every epoch.
        validation_share: (float) the last share of the history held out, chronologically, for
            early stopping and interval calibration; 0 trains on everything for ``num_epochs``
            and gives no interval.
        calibration_share: (float) the last share of that held-out part kept for calibrating the
            intervals only; early stopping sees the part before it (windows whose targets end
            before it), so the residuals that set the intervals come from data that chose
            nothing. 0 gives no interval and early-stops on the whole held-out part.
        max_validation_windows: (int) validation windows used (origins evenly spaced), to bound
            the cost of validating every epoch.
        max_history: (int | None) train on the last this many hours only; ``None`` uses all.
        seed: (int) seed of initialisation, dropout and window order.
        progress: (bool) progress bars; off is silent.
        device: (str) PyTorch only: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        mixed_precision: (bool) PyTorch only: autocast on CUDA (ignored on the CPU).
        num_threads: (int | None) PyTorch, and Keras on the torch backend: CPU threads while
            fitting and forecasting (restored afterwards); ``None`` keeps the process setting. On
            a shared machine whose cores are busy, 1 thread can be several times faster than 2
            (and Keras on torch, whose LSTM is a Python loop of small kernels, far more).
        name: (str | None) label in result tables; default ``"LSTM (PyTorch)"`` and the like.
    """

    cell: Literal["lstm", "gru"] = "lstm"
    window: int = 168
    horizon: int = 24
    hidden_size: int = 32
    num_layers: int = 1
    dropout: float = 0.1
    context_size: int = 8
    head_size: int = 32
    seasonal_lags: tuple[int, ...] = (24, 168)
    clock_periods: tuple[int, ...] = (24, 168)
    series_id: bool = True
    transform: Literal["log1p"] | None = "log1p"
    loss: Literal["huber", "mse"] = "huber"
    lr: float = 3e-3
    batch_size: int = 128
    num_epochs: int = 15
    patience: int = 3
    samples_per_epoch: int | None = 4096
    validation_share: float = 0.1
    calibration_share: float = 0.5
    max_validation_windows: int = 1024
    max_history: int | None = None
    seed: int = 0
    progress: bool = False
    device: str = "auto"
    mixed_precision: bool = False
    num_threads: int | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {self.cell!r}")
        for name in ("window", "horizon", "hidden_size", "num_layers", "context_size", "head_size", "batch_size",
                     "num_epochs", "max_validation_windows"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0, got {self.patience}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}; 0 switches it off")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.validation_share < 0.5:
            raise ValueError(f"validation_share must be in [0, 0.5), got {self.validation_share}; "
                             "0.1 holds out the last tenth of the history, 0 holds out nothing")
        if not 0 <= self.calibration_share < 1:
            raise ValueError(f"calibration_share must be in [0, 1), got {self.calibration_share}; 0.5 calibrates "
                             "the intervals on the later half of the held-out part, 0 gives no interval")
        if self.samples_per_epoch is not None and self.samples_per_epoch < 1:
            raise ValueError(f"samples_per_epoch must be None (all windows) or >= 1, got {self.samples_per_epoch}")
        if self.max_history is not None and self.max_history < self.window + self.horizon:
            raise ValueError(f"max_history = {self.max_history} leaves no training window of window + horizon = "
                             f"{self.window + self.horizon} hours; raise it or set None (all history)")
        object.__setattr__(self, "seasonal_lags", tuple(int(v) for v in self.seasonal_lags))
        object.__setattr__(self, "clock_periods", tuple(int(v) for v in self.clock_periods))
        for lag in self.seasonal_lags:
            if not self.horizon <= lag <= self.window:
                raise ValueError(f"seasonal lag {lag} must lie in [horizon, window] = [{self.horizon}, {self.window}]: "
                                 "a shorter lag is not yet observed at the origin for the last steps, a longer one "
                                 "is outside the window; drop it or lengthen the window")
        if any(p < 2 for p in self.clock_periods):
            raise ValueError(f"clock periods must be >= 2 hours, got {self.clock_periods}")
        if self.transform not in (None, "log1p"):
            raise ValueError(f"transform must be None or 'log1p', got {self.transform!r}")
        if self.loss not in ("huber", "mse"):
            raise ValueError(f"loss must be 'huber' or 'mse', got {self.loss!r}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be None (keep the process setting) or >= 1, got {self.num_threads}")

    def describe(self) -> dict[str, object]:
        """The settings as a plain dict (for provenance lines)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


__all__ = ["MIN_EARLY_STOPPING_ORIGINS", "MIN_VALIDATION_ORIGINS", "ForecasterConfig"]
