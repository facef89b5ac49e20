"""The multi-horizon recurrent forecaster in PyTorch, behind the book's forecasting protocol.

Windows, scaling, the validation split, intervals and the rolling update are shared with the
Keras twin (:mod:`stlab.models.keras.forecast`) through
:class:`stlab.models.windows.WindowedForecaster`; this module adds the network
(:class:`RecurrentForecastNet`) and trains it with :func:`stlab.training.train_epochs` --
Adam, Huber or MSE loss on the scaled target, gradient clipping, early stopping on the
validation loss with the best weights restored.

    >>> from stlab.forecasting import rolling_origin
    >>> from stlab.models.torch.forecast import TorchRecurrentForecaster
    >>> result = rolling_origin(y, TorchRecurrentForecaster, initial=len(y) - 21 * 24)  # doctest: +SKIP

Introduced in chapter 7 (Recurrent models in PyTorch).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from stlab.forecasting import Forecast
from stlab.models.windows import ForecasterConfig, WindowedForecaster, WindowInputs
from stlab.training import EarlyStopping, cpu_threads, seed_everything, select_device, train_epochs


class RecurrentForecastNet(nn.Module):
    """LSTM/GRU over the window -> per-step contexts -> a shared per-step MLP (MQ-RNN style).

    Args:
        num_step_features: (int) ``F = 1 + G`` features per window step (target first).
        num_future_features: (int) ``G + L`` known features per forecast step (0: none).
        num_series_ids: (int) width of the one-hot series id (0: none).
        config: :class:`~stlab.models.windows.ForecasterConfig`.

    Shapes:
        - ``past``: ``[B, W, F]``; ``future``: ``[B, H, G + L]`` or ``None``; ``series``: ``[B, N]`` or ``None``.
        - output: ``[B, H]`` forecasts on the scaled target's scale.
    """

    def __init__(self, num_step_features: int, num_future_features: int, num_series_ids: int,
                 config: ForecasterConfig) -> None:
        super().__init__()
        self.horizon, self.context_size = config.horizon, config.context_size
        rnn = nn.LSTM if config.cell == "lstm" else nn.GRU
        # PyTorch applies `dropout` between stacked layers only (a single layer would warn).
        self.rnn = rnn(num_step_features, config.hidden_size, num_layers=config.num_layers, batch_first=True,
                       dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(config.dropout)
        self.context = nn.Linear(config.hidden_size, config.horizon * config.context_size)
        self.local = nn.Sequential(
            nn.Linear(config.context_size + num_future_features + num_series_ids, config.head_size), nn.ReLU(),
            nn.Linear(config.head_size, 1))

    def forward(self, past: torch.Tensor, future: torch.Tensor | None = None,
                series: torch.Tensor | None = None) -> torch.Tensor:
        output, _ = self.rnn(past)  # [B, W, hidden]
        summary = self.dropout(output[:, -1])  # [B, hidden]: the state after the latest hour
        parts = [self.context(summary).view(-1, self.horizon, self.context_size)]  # [B, H, c]
        if future is not None:
            parts.append(future)  # [B, H, G + L]
        if series is not None:
            parts.append(series[:, None, :].expand(-1, self.horizon, -1))  # [B, H, N]
        return self.local(torch.cat(parts, dim=-1)).squeeze(-1)  # [B, H]


class TorchRecurrentForecaster(WindowedForecaster):
    """LSTM or GRU direct multi-horizon forecaster in PyTorch (see :class:`WindowedForecaster`).

    Seeded by :func:`stlab.training.seed_everything` (deterministic kernels), so the same
    settings on the CPU give identical forecasts twice.

    Args:
        config: :class:`~stlab.models.windows.ForecasterConfig`.
        checkpoint: where the best epoch's weights are written (atomically) and reloaded from
            (``weights_only``); ``None`` keeps them in memory.

    Shapes:
        ``y``: ``[T]`` or ``[T, N]``; ``exog``: ``[T, K]``; forecasts ``[horizon]`` or ``[horizon, N]``.
    """

    framework = "PyTorch"

    def __init__(self, config: ForecasterConfig | None = None, *, checkpoint: str | Path | None = None) -> None:
        super().__init__(config)
        self.checkpoint = checkpoint
        self.net_: RecurrentForecastNet | None = None
        self.device_ = torch.device("cpu")

    def fit(self, y: np.ndarray, exog: np.ndarray | None = None) -> TorchRecurrentForecaster:
        with cpu_threads(self.config.num_threads):
            super().fit(y, exog)
        return self

    def forecast(self, horizon: int, exog_future: np.ndarray | None = None, *, level: float = 0.9) -> Forecast:
        with cpu_threads(self.config.num_threads):
            return super().forecast(horizon, exog_future, level=level)

    def _build(self) -> None:
        cfg = self.config
        seed_everything(cfg.seed)
        self.device_ = select_device(cfg.device)
        self.net_ = RecurrentForecastNet(self.num_step_features, self.num_future_features, self.num_series_ids,
                                         cfg).to(self.device_)

    @staticmethod
    def _tensors(batch: WindowInputs) -> tuple[torch.Tensor | None, ...]:
        """``(past, future, series, target)`` as tensors (``None`` where absent)."""
        return tuple(None if a is None else torch.from_numpy(a)
                     for a in (batch.past, batch.future, batch.series, batch.target))

    def _loss(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.config.loss == "huber":
            return nn.functional.huber_loss(predicted.float(), target, delta=1.0)
        return nn.functional.mse_loss(predicted.float(), target)

    def _train(self) -> pd.DataFrame:
        cfg = self.config
        assert self.net_ is not None

        def batches(epoch: int) -> Iterator[tuple[torch.Tensor | None, ...]]:
            # `batches` does not shuffle again: epoch_samples already drew a shuffled subset.
            for batch in self.batches(self.epoch_samples(epoch)):
                yield self._tensors(batch)

        def loss_fn(net: nn.Module, batch: tuple[torch.Tensor | None, ...]) -> torch.Tensor:
            *inputs, target = batch
            return self._loss(net(*inputs), target)

        def validate(net: nn.Module) -> float:
            # The mean loss over validation windows, weighted by batch size.
            total, count = 0.0, 0
            for batch in self.batches(self.validation_samples_):
                *inputs, target = (None if t is None else t.to(self.device_) for t in self._tensors(batch))
                total += float(self._loss(net(*inputs), target)) * len(batch)
                count += len(batch)
            return total / count

        has_validation = len(self.validation_samples_) > 0
        optimizer = torch.optim.Adam(self.net_.parameters(), lr=cfg.lr)
        history = train_epochs(
            self.net_, batches, loss_fn, optimizer, num_epochs=cfg.num_epochs,
            validate=validate if has_validation else None,
            early_stopping=EarlyStopping(patience=cfg.patience, mode="min") if has_validation else None,
            checkpoint=self.checkpoint, device=self.device_, mixed_precision=cfg.mixed_precision,
            progress=cfg.progress)
        self.net_.eval()
        return history

    def _predict(self, batch: WindowInputs) -> np.ndarray:
        assert self.net_ is not None
        self.net_.eval()
        with torch.no_grad():
            inputs = [None if t is None else t.to(self.device_) for t in self._tensors(batch)[:3]]
            return self.net_(*inputs).float().cpu().numpy().astype(np.float64)


__all__ = ["RecurrentForecastNet", "TorchRecurrentForecaster"]
