"""Three classic bugs of recurrent forecasting, each with a helper that shows it or catches it.

1. declaring a recurrent input of one feature per step while the windows carry ``K``:
   :func:`check_sequence_input` (Keras 3 raises a shape error deep inside the cell, see
   :func:`stlab.models.keras.forecast.input_shape_demo`);
2. a scaler fitted on all columns ``[target, features]`` used to invert the predictions:
   :func:`all_columns_scaler_bug`;
3. an LSTM "never given sequences": :func:`rows_as_sequences` (one step per sample) versus
   :func:`stlab.models.windows.sliding_windows`.

Introduced in chapter 6 (Recurrent models in Keras).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from stlab.models.windows.scaling import Standardizer


def all_columns_scaler_bug(frame: pd.DataFrame, target: str, train_rows: int,
                           predictions: np.ndarray | None = None) -> pd.DataFrame:
    """Inverting predictions with a scaler fitted on all columns, against a target-only scaler.

    The bug: one ``StandardScaler`` (or min-max scaler) is fitted on the whole frame
    ``[target, features]``; since such a scaler refuses a one-column array of predictions, the
    usual workaround fits it on all values at once (``scaler.fit(frame.to_numpy().reshape(-1,
    1))``), and then ``inverse_transform(predictions)`` runs -- with the mean and spread of all
    columns pooled, not the target's. The network learnt the target on the target's own scale,
    so the inverted forecasts come out on the wrong scale. The fix: a scaler fitted on the target
    alone (features get their own), and only it inverts predictions.

    Both scalers are fitted on the first ``train_rows`` rows. The scaled predictions are, by
    default, a *perfect* forecast of the remaining rows (the truth put on the target's training
    scale), so every error in the table comes from the inversion alone: the right way recovers
    the truth exactly.

    Args:
        frame: the target and feature columns (numeric).
        target: the target column.
        train_rows: (int) rows used to fit the scalers; the rest are forecast.
        predictions: ``[rows after train_rows]`` predictions on the target's training scale;
            default the perfect forecast.

    Returns:
        Rows ``"all columns (wrong)"`` and ``"target only (right)"``; columns ``mean used``,
        ``std used``, ``mean forecast``, ``mean actual``, ``MAE``.
    """
    if target not in frame.columns:
        raise ValueError(f"target {target!r} is not a column of the frame ({list(frame.columns)})")
    if not 0 < train_rows < len(frame):
        raise ValueError(f"train_rows must be in (0, {len(frame)}), got {train_rows}")
    values = frame.to_numpy(dtype=np.float64)
    truth = frame[target].to_numpy(dtype=np.float64)[train_rows:]
    right = Standardizer.fit(frame[target].to_numpy(dtype=np.float64)[:train_rows])
    wrong = Standardizer.fit(values[:train_rows].reshape(-1, 1))  # every value of every column, pooled
    scaled = right.transform(truth[:, None])[:, 0] if predictions is None else np.asarray(predictions, dtype=np.float64)
    if scaled.shape != truth.shape:
        raise ValueError(f"predictions must have shape {truth.shape} (one per row after train_rows), got {scaled.shape}")
    rows = {}
    for label, scaler in (("all columns (wrong)", wrong), ("target only (right)", right)):
        forecast = scaler.inverse(scaled[:, None])[:, 0]
        rows[label] = {"mean used": float(scaler.mean[0]), "std used": float(scaler.scale[0]),
                       "mean forecast": float(forecast.mean()), "mean actual": float(truth.mean()),
                       "MAE": float(np.abs(forecast - truth).mean())}
    return pd.DataFrame.from_dict(rows, orient="index")


def rows_as_sequences(values: np.ndarray) -> np.ndarray:
    """The "LSTM never given sequences" bug: every row becomes a sequence of ONE time step.

    ``values.reshape(T, 1, F)`` is what many tutorials feed an LSTM: the shapes satisfy the
    layer, training runs, and the network sees only the current row -- its memory, the reason
    for using it, is never used (the state is reset between samples). Compare
    :func:`sliding_windows`, whose samples each hold ``window`` consecutive rows.

    Returns:
        ``[T, 1, F]`` (a view when possible).
    """
    values = np.asarray(values)
    values = values.reshape(len(values), -1)  # [T, F]
    return values.reshape(len(values), 1, values.shape[1])


def check_sequence_input(x: np.ndarray, input_shape: Sequence[int]) -> None:
    """Check windows ``x`` (``[S, window, K]``) against a model's declared ``input_shape``.

    Declaring ``input_shape=(window, 1)`` -- one value per step -- while the windows carry ``K``
    features (target plus regressors) is a classic: Keras 3 then fails inside the LSTM cell
    with a matrix-shape error that never mentions ``input_shape``; code that "fixes" it by
    keeping ``x[..., :1]`` runs and silently ignores the regressors. This check says what to
    declare.

    Raises:
        ValueError: the shapes disagree; the message gives the shape to declare.
    """
    x_shape, declared = tuple(np.shape(x)), tuple(int(v) for v in input_shape)
    if len(x_shape) != 3:
        raise ValueError(f"a recurrent layer reads [samples, steps, features]; got an array of shape {x_shape} "
                         "-- build windows with sliding_windows()")
    if len(declared) != 2 or x_shape[1:] != declared:
        raise ValueError(f"the windows are {x_shape} = [samples, steps, features] but the model declares "
                         f"input_shape={declared}; declare input_shape=({x_shape[1]}, {x_shape[2]}): "
                         f"{x_shape[2]} features per step")


__all__ = ["all_columns_scaler_bug", "check_sequence_input", "rows_as_sequences"]
