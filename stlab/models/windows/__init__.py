"""Sliding windows, scaling and the framework-free half of the recurrent forecasters.

A recurrent forecaster of hourly counts needs the same plumbing in every framework: cut the
history into windows, scale the target and the regressors with statistics of the training part
only, split off a chronological validation part for early stopping and a later calibration part
for the prediction intervals, and keep the history up to date as the forecast origin moves. All of that lives here, in NumPy, in
:class:`WindowedForecaster`; the PyTorch (:mod:`stlab.models.torch.forecast`) and Keras
(:mod:`stlab.models.keras.forecast`) forecasters only add a network and its training loop, so
the two differ in the framework and nothing else. Chapter 7 (Recurrent models in PyTorch) reuses
the module unchanged.

**The model** (both frameworks). From the last ``window`` hours -- the scaled target and the
step features (regressors, clock) -- an LSTM or GRU produces a summary ``h``; the forecast of
all ``horizon`` steps comes at once (*direct* multi-horizon, no feeding back of forecasts), by
a head in the style of MQ-RNN (Wen et al., 2017): a linear map turns ``h`` into one small
context vector per step ``j``, and one MLP, shared by the steps, maps ``[context_j, known
features at step j, series id]`` to the forecast of step ``j``. Output ``j`` depends on the
features of step ``j`` only, so a forecast over fewer steps than ``horizon`` is exact.

**Known in advance** at step ``j``: the regressors ``exog`` (calendar terms; weather only as a
perfect forecast, say so), the clock (:func:`clock_features`), and *seasonal lags*: the scaled
target one day and one week before the step (``seasonal_lags``), a highway from the input to
the output in the spirit of LSTNet's autoregressive component (Lai et al., 2018). The network
then learns corrections to "same hour yesterday / last week" rather than the level from scratch;
``seasonal_lags=()`` leaves a pure recurrent model.

**Several series** (``y`` of shape ``[T, N]``): one global network for all columns, each column
a separate stream of windows (scaled with its own statistics), optionally told which column it
is by a one-hot series id in the head. Twenty regions train one network.

**Three classic bugs**, each with a small helper so a chapter can show it and its fix:

1. declaring a recurrent input of one feature per step while the windows carry ``K``:
   :func:`check_sequence_input` (Keras 3 raises a shape error deep inside the cell, see
   :func:`stlab.models.keras.forecast.input_shape_demo`);
2. a scaler fitted on all columns ``[target, features]`` used to invert the predictions:
   :func:`all_columns_scaler_bug`;
3. an LSTM "never given sequences": :func:`rows_as_sequences` (one step per sample) versus
   :func:`sliding_windows`.

**The modules**, by concern (every public name is importable from ``stlab.models.windows``):

* :mod:`~stlab.models.windows.config` -- :class:`ForecasterConfig`;
* :mod:`~stlab.models.windows.scaling` -- :class:`Standardizer`, :class:`TargetScaler`;
* :mod:`~stlab.models.windows.inputs` -- :func:`sliding_windows`, :func:`clock_features`,
  :func:`calendar_features`, :class:`WindowInputs`, :func:`window_inputs`;
* :mod:`~stlab.models.windows.forecaster` -- :class:`WindowedForecaster`;
* :mod:`~stlab.models.windows.bugs` -- the three bugs above.

Introduced in chapter 6 (Recurrent models in Keras).
"""

from __future__ import annotations

from stlab.models.windows.bugs import all_columns_scaler_bug, check_sequence_input, rows_as_sequences
from stlab.models.windows.config import MIN_EARLY_STOPPING_ORIGINS, MIN_VALIDATION_ORIGINS, ForecasterConfig
from stlab.models.windows.forecaster import WindowedForecaster
from stlab.models.windows.inputs import (HOURS_PER_DAY, HOURS_PER_WEEK, WindowInputs, calendar_features,
                                         clock_features, fill_causal, sliding_windows, window_inputs)
from stlab.models.windows.scaling import MIN_SCALE, Standardizer, TargetScaler

__all__ = [
    "HOURS_PER_DAY", "HOURS_PER_WEEK", "MIN_EARLY_STOPPING_ORIGINS", "MIN_SCALE", "MIN_VALIDATION_ORIGINS",
    "ForecasterConfig", "Standardizer", "TargetScaler", "WindowInputs", "WindowedForecaster", "all_columns_scaler_bug",
    "calendar_features", "check_sequence_input", "clock_features", "fill_causal", "rows_as_sequences",
    "sliding_windows", "window_inputs",
]
