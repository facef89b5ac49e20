"""The multi-horizon recurrent forecaster in Keras 3, behind the book's forecasting protocol.

Windows, scaling, the validation split, intervals and the rolling update are shared with the
PyTorch twin (:mod:`stlab.models.torch.forecast`) through
:class:`stlab.models.windows.WindowedForecaster`; this module adds the network -- the same
architecture, written with Keras layers only, so it runs on the TensorFlow backend (the
default) and on the PyTorch backend (``KERAS_BACKEND=torch`` before the first ``import
keras``) -- and trains it with ``model.fit``: Adam with global gradient clipping at 1 (as
:func:`stlab.training.train_epochs` does), Huber or MSE loss, ``EarlyStopping(monitor=
"val_loss", restore_best_weights=True)``.

Reproducibility: ``keras.utils.set_random_seed`` seeds Python, NumPy and the backend; on the
TensorFlow backend ``tf.config.experimental.enable_op_determinism()`` makes the kernels
deterministic too (a process-wide switch, left on). The same settings on the CPU then give
identical forecasts twice.

:func:`input_shape_demo` shows what Keras 3 does with the classic ``input_shape=(window, 1)``
mistake.

Introduced in chapter 6 (Recurrent models in Keras).
"""

from __future__ import annotations

import os
import re
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines are noise in a book
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # oneDNN reorders float sums: results would drift by round-off

from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from keras import layers  # noqa: E402

from stlab.forecasting import Forecast  # noqa: E402
from stlab.models.windows import ForecasterConfig, WindowedForecaster, WindowInputs  # noqa: E402


def build_forecast_network(num_step_features: int, num_future_features: int, num_series_ids: int,
                           config: ForecasterConfig) -> keras.Model:
    """LSTM/GRU over the window -> per-step contexts -> a shared per-step MLP (MQ-RNN style).

    The twin of :class:`stlab.models.torch.forecast.RecurrentForecastNet`, as a functional model.

    Args:
        num_step_features: (int) ``F = 1 + G`` features per window step (target first).
        num_future_features: (int) ``G + L`` known features per forecast step (0: no such input).
        num_series_ids: (int) width of the one-hot series id (0: no such input).
        config: :class:`~stlab.models.windows.ForecasterConfig`.

    Returns:
        A model with named inputs ``past`` ``[B, W, F]``, ``future`` ``[B, H, G + L]`` and
        ``series`` ``[B, N]`` (the last two only when present) and output ``[B, H]``.
    """
    horizon, cell = config.horizon, layers.LSTM if config.cell == "lstm" else layers.GRU
    past = keras.Input(shape=(config.window, num_step_features), name="past")  # [B, W, F]
    inputs = {"past": past}
    hidden = past
    for layer in range(config.num_layers):
        last = layer == config.num_layers - 1
        hidden = cell(config.hidden_size, return_sequences=not last)(hidden)  # [B, W, h] or [B, h]
        # Dropout between stacked layers and on the summary, as in the PyTorch twin.
        hidden = layers.Dropout(config.dropout)(hidden)
    context = layers.Dense(horizon * config.context_size)(hidden)
    parts = [layers.Reshape((horizon, config.context_size))(context)]  # [B, H, c]
    if num_future_features:
        inputs["future"] = keras.Input(shape=(horizon, num_future_features), name="future")  # [B, H, G + L]
        parts.append(inputs["future"])
    if num_series_ids:
        inputs["series"] = keras.Input(shape=(num_series_ids,), name="series")  # [B, N]
        parts.append(layers.RepeatVector(horizon)(inputs["series"]))  # [B, H, N]
    joined = layers.Concatenate(axis=-1)(parts) if len(parts) > 1 else parts[0]
    local = layers.Dense(config.head_size, activation="relu")(joined)  # Dense acts on the last axis: per step
    output = layers.Reshape((horizon,))(layers.Dense(1)(local))  # [B, H]
    return keras.Model(inputs, output, name=f"{config.cell}_forecaster")


@contextmanager
def _backend_threads(num_threads: int | None) -> Iterator[None]:
    """On the torch backend, run with ``num_threads`` CPU threads and restore the setting after;
    elsewhere do nothing (TensorFlow fixes its thread pools when it starts)."""
    if num_threads is None or keras.backend.backend() != "torch":
        yield
        return
    from stlab.training import cpu_threads  # imports torch: only on the torch backend

    with cpu_threads(num_threads):
        yield


class _EpochWindows(keras.utils.PyDataset):
    """The training windows of each epoch (:meth:`WindowedForecaster.epoch_samples`), gathered
    batch by batch so no ``[S, W, F]`` array of all windows is ever built."""

    def __init__(self, forecaster: KerasRecurrentForecaster) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.forecaster = forecaster
        self.epoch = 0
        self.samples = forecaster.epoch_samples(0)

    def __len__(self) -> int:
        return self.forecaster.steps_per_epoch()

    def __getitem__(self, index: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        size = self.forecaster.config.batch_size
        batch = next(self.forecaster.batches(self.samples[index * size:(index + 1) * size]))
        return batch.arrays(), batch.target

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.samples = self.forecaster.epoch_samples(self.epoch)


class KerasRecurrentForecaster(WindowedForecaster):
    """LSTM or GRU direct multi-horizon forecaster in Keras 3 (see :class:`WindowedForecaster`).

    Args:
        config: :class:`~stlab.models.windows.ForecasterConfig` (``device`` and
            ``mixed_precision`` are PyTorch settings and ignored here: Keras places work itself;
            ``num_threads`` applies on the torch backend only, as TensorFlow's thread pools are
            fixed when it starts).
        checkpoint: a ``.weights.h5`` path the best weights are also saved to after fitting, or ``None``.

    Shapes:
        ``y``: ``[T]`` or ``[T, N]``; ``exog``: ``[T, K]``; forecasts ``[horizon]`` or ``[horizon, N]``.
    """

    framework = "Keras"

    def __init__(self, config: ForecasterConfig | None = None, *, checkpoint: str | Path | None = None) -> None:
        super().__init__(config)
        self.checkpoint = checkpoint
        self.model_: keras.Model | None = None

    def fit(self, y: np.ndarray, exog: np.ndarray | None = None) -> KerasRecurrentForecaster:
        with _backend_threads(self.config.num_threads):
            super().fit(y, exog)
        return self

    def forecast(self, horizon: int, exog_future: np.ndarray | None = None, *, level: float = 0.9) -> Forecast:
        with _backend_threads(self.config.num_threads):
            return super().forecast(horizon, exog_future, level=level)

    def _build(self) -> None:
        cfg = self.config
        keras.utils.set_random_seed(cfg.seed)
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()
        self.model_ = build_forecast_network(self.num_step_features, self.num_future_features, self.num_series_ids,
                                             cfg)
        loss = keras.losses.Huber(delta=1.0) if cfg.loss == "huber" else keras.losses.MeanSquaredError()
        self.model_.compile(optimizer=keras.optimizers.Adam(learning_rate=cfg.lr, global_clipnorm=1.0), loss=loss)

    def _train(self) -> pd.DataFrame:
        cfg = self.config
        assert self.model_ is not None
        callbacks, validation = [], None
        if len(self.validation_samples_):
            batch = next(self.batches(self.validation_samples_, batch_size=len(self.validation_samples_)))
            validation = (batch.arrays(), batch.target)
            # Keras stops once `patience` epochs in a row did not improve; stlab's EarlyStopping
            # (PyTorch) tolerates `patience` such epochs and stops at the next one: hence + 1.
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience + 1,
                                                           restore_best_weights=True))
        fitted = self.model_.fit(_EpochWindows(self), validation_data=validation, epochs=cfg.num_epochs,
                                 validation_batch_size=cfg.batch_size, callbacks=callbacks,
                                 verbose=1 if cfg.progress else 0, shuffle=False)
        if self.checkpoint is not None:
            path = Path(self.checkpoint)
            path.parent.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():
                # Keras' HDF5 writer converts variables with np.array(x), which NumPy 2 flags as
                # deprecated for TensorFlow variables; the weights written are the same.
                warnings.filterwarnings("ignore", message="__array__ implementation", category=DeprecationWarning)
                self.model_.save_weights(path)
        history = pd.DataFrame(fitted.history).rename(columns={"loss": "train loss", "val_loss": "validation"})
        history.index = pd.RangeIndex(1, len(history) + 1, name="epoch")
        return history

    def _predict(self, batch: WindowInputs) -> np.ndarray:
        assert self.model_ is not None
        # predict_on_batch compiles the forward pass once per batch shape and then costs
        # milliseconds; an eager call re-runs the recurrent loop op by op (~0.5 s for 168 steps),
        # and predict() sets up a data pipeline on every call.
        return np.asarray(self.model_.predict_on_batch(batch.arrays()), dtype=np.float64)


def input_shape_demo(window: int = 24, num_features: int = 5, *, samples: int = 8, seed: int = 0) -> pd.DataFrame:
    """What Keras 3 does when the declared input shape disagrees with the windows.

    Three small LSTM models meet windows ``[samples, window, num_features]``:

    * ``input_shape=(window, 1)`` with all features: Keras 3 raises -- not at the input, but
      inside the LSTM cell, as a matrix-multiplication shape error;
    * ``input_shape=(window, 1)`` with ``x[..., :1]`` (the "fix" that silences the error): it
      runs, and the other ``num_features - 1`` features are silently ignored;
    * ``input_shape=(window, num_features)``: the fix.

    :func:`stlab.models.windows.check_sequence_input` catches the mismatch before Keras does,
    with a message that names the shape to declare.

    Returns:
        One row per case: ``declared``, ``fed``, ``outcome`` (``"runs"`` or the error's type and
        first line), ``features used``.
    """
    x = np.random.default_rng(seed).normal(size=(samples, window, num_features)).astype(np.float32)
    cases = [((window, 1), x), ((window, 1), x[..., :1]), ((window, num_features), x)]
    rows = []
    for declared, fed in cases:
        inputs = keras.Input(shape=declared)
        model = keras.Model(inputs, layers.Dense(1)(layers.LSTM(4)(inputs)))
        try:
            model.predict(fed, verbose=0)
            outcome, used = "runs", f"{fed.shape[-1]} of {num_features}"
        except Exception as error:  # noqa: BLE001 -- the point is to show whatever Keras raises
            message = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip().splitlines()  # drop terminal colours
            first = next((line for line in message[1:] + message if line.strip()), "")
            outcome, used = f"{type(error).__name__}: {first.strip()[:160]}", "-"
        rows.append({"declared": str(declared), "fed": str(tuple(fed.shape)), "outcome": outcome,
                     "features used": used})
    return pd.DataFrame(rows)


__all__ = ["KerasRecurrentForecaster", "build_forecast_network", "input_shape_demo"]
