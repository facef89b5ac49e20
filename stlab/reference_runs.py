"""The reference models every later next-visit chapter compares with, trained once.

Chapter 4's tuned baselines, chapter 7's LSTM and chapter 8's Transformer are the numbers to
beat from chapter 6 on (chapter 7 also sets chapter 6's Keras LSTM and Keras forecaster beside
its own: :func:`keras_recurrent_run`, :func:`keras_forecast_run`); chapter 9 also reuses chapter 8's fitted Transformer itself
(:func:`transformer_model`).
Their chapters fit them and store what a comparison needs (:class:`stlab.runcache.RankedRun`:
ranks of every validation and test query, fit seconds); later chapters read them back through
:func:`baseline_runs` and :func:`lstm_run`, which fit and store them only when the cache has no
verified copy for this task, these settings and this code (:mod:`stlab.runcache`). The numbers
are the same either way: fitting is seeded and deterministic on a CPU.

Introduced in chapter 8 (Self-attention for the next visit).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from stlab.baselines import BaselineGrid, TunedBaselines, tuned_baselines
from stlab.models.attention.config import TransformerConfig
from stlab.models.recurrent import RecurrentConfig, RecurrentNextVisitBase
from stlab.protocol import NextVisitModel, NextVisitTask, query_ranks
from stlab.models.windows.config import ForecasterConfig
from stlab.runcache import (RankedRun, cached_forecast, cached_run, cached_runs, forecast_key, load_runs, load_weights,
                            run_key, save_forecast, save_weights, store_runs)

if TYPE_CHECKING:
    from stlab.forecasting.evaluation import RollingOriginResult
    from stlab.models.torch.attention import TransformerNextVisit

#: Settings fields that change where or how visibly a model trains, not what it computes.
_NOT_IN_KEY = ("device", "progress")


def baseline_settings(seed: int, grid: BaselineGrid) -> dict[str, Any]:
    """The cache settings of chapter 4's tuned baselines."""
    return {"kind": "tuned-baselines", "seed": seed, "grid": asdict(grid)}


def run_key_for_baselines(task: NextVisitTask, *, seed: int, grid: BaselineGrid) -> str:
    """The cache key of chapter 4's tuned baselines on ``task``."""
    return run_key(task, baseline_settings(seed, grid))


def ranked(model: NextVisitModel, task: NextVisitTask, fit_seconds: float, **details: Any) -> RankedRun:
    """A fitted model's run: the ranks of every validation and test query of ``task``."""
    return RankedRun(model.name, {part: query_ranks(model, task.queries(part)) for part in ("val", "test")},
                     float(fit_seconds), dict(details))


def store_baselines(task: NextVisitTask, tuned: TunedBaselines, *, seed: int, grid: BaselineGrid) -> list[RankedRun]:
    """Store chapter 4's fitted baselines for later chapters; returns their runs."""
    runs = [ranked(m, task, tuned.fit_seconds.get(m.name, float("nan")), chosen=tuned.chosen) for m in tuned.models]
    store_runs(task, baseline_settings(seed, grid), runs)
    return runs


def baseline_runs(task: NextVisitTask, *, seed: int, grid: BaselineGrid) -> list[RankedRun]:
    """Chapter 4's baselines tuned on validation MRR (:func:`stlab.baselines.tuned_baselines`),
    from the cache or fitted now."""
    def compute() -> list[RankedRun]:
        tuned = tuned_baselines(task, task.queries("val"), seed=seed, grid=grid)
        return [ranked(m, task, tuned.fit_seconds.get(m.name, float("nan")), chosen=tuned.chosen)
                for m in tuned.models]

    return cached_runs(task, baseline_settings(seed, grid), compute)


def _model_settings(kind: str, config: RecurrentConfig | TransformerConfig) -> dict[str, Any]:
    described = {k: v for k, v in config.describe().items() if k not in _NOT_IN_KEY}
    return {"kind": kind, "config": described}


def _fitted_run(task: NextVisitTask, make: Callable[[], NextVisitModel]) -> RankedRun:
    """Fit ``make()`` on ``task`` and rank its validation and test queries."""
    start = time.perf_counter()
    model = make().fit(task)
    return ranked(model, task, time.perf_counter() - start, epochs=len(model.history_))


def recurrent_settings(config: RecurrentConfig) -> dict[str, Any]:
    """The cache settings of a PyTorch recurrent next-POI model."""
    return _model_settings("recurrent-pytorch", config)


def store_recurrent(task: NextVisitTask, model: RecurrentNextVisitBase, fit_seconds: float) -> RankedRun:
    """Store chapter 7's fitted LSTM (or GRU) for later chapters; returns its run."""
    run = ranked(model, task, fit_seconds, epochs=len(getattr(model, "history_", [])))
    store_runs(task, recurrent_settings(model.config), [run])
    return run


def lstm_run(task: NextVisitTask, config: RecurrentConfig) -> RankedRun:
    """Chapter 7's recurrent model with ``config``, from the cache or fitted now."""
    def compute() -> RankedRun:
        from stlab.models.torch.nextvisit import RecurrentNextVisit  # torch only on a miss

        return _fitted_run(task, lambda: RecurrentNextVisit(config))

    return cached_run(task, recurrent_settings(config), compute)


def keras_recurrent_settings(config: RecurrentConfig, backend: str) -> dict[str, Any]:
    """The cache settings of a Keras recurrent next-POI model on Keras backend ``backend``."""
    return {**_model_settings("recurrent-keras", config), "backend": backend}


def _keras_run(model: NextVisitModel, task: NextVisitTask, fit_seconds: float) -> RankedRun:
    history = model.history_  # type: ignore[attr-defined]
    return ranked(model, task, fit_seconds, epochs=len(history), seconds_per_epoch=float(history["seconds"].mean()))


def store_keras_recurrent(task: NextVisitTask, model: NextVisitModel, fit_seconds: float) -> RankedRun:
    """Store chapter 6's fitted Keras LSTM for chapter 7's side-by-side; returns its run."""
    import keras

    run = _keras_run(model, task, fit_seconds)
    store_runs(task, keras_recurrent_settings(model.config, keras.backend.backend()), [run])  # type: ignore[attr-defined]
    return run


def keras_recurrent_run(task: NextVisitTask, config: RecurrentConfig) -> RankedRun:
    """Chapter 6's Keras recurrent model with ``config``, from the cache or fitted now (on the
    Keras backend of this process; Keras is seeded and deterministic on a CPU)."""
    import keras

    def compute() -> RankedRun:
        from stlab.models.keras.nextvisit import RecurrentNextVisit  # Keras model code only on a miss

        start = time.perf_counter()
        model = RecurrentNextVisit(config).fit(task)
        return _keras_run(model, task, time.perf_counter() - start)

    return cached_run(task, keras_recurrent_settings(config, keras.backend.backend()), compute)


def keras_forecast_settings(config: ForecasterConfig, backend: str, *, initial: int, horizon: int,
                            step: int) -> dict[str, Any]:
    """The cache settings of chapter 6's Keras forecaster evaluated from rolling origins."""
    described = {k: v for k, v in config.describe().items() if k not in _NOT_IN_KEY}
    return {"kind": "forecaster-keras", "config": described, "backend": backend, "initial": initial,
            "horizon": horizon, "step": step}


def store_keras_forecast(y: Any, exog: Any, config: ForecasterConfig, result: RollingOriginResult,
                         forecaster: Any, *, initial: int, horizon: int, step: int = 24) -> None:
    """Store chapter 6's rolling-origin evaluation of its Keras forecaster (the fitted
    ``forecaster`` gives the fit time and epochs) for chapter 7's side-by-side."""
    import keras

    settings = keras_forecast_settings(config, keras.backend.backend(), initial=initial, horizon=horizon, step=step)
    save_forecast(forecast_key(y, exog, settings), result,
                  {"fit_seconds": float(forecaster.fit_seconds_), "epochs": len(forecaster.history_)})


def keras_forecast_run(y: Any, exog: Any, config: ForecasterConfig, *, initial: int, horizon: int,
                       step: int = 24) -> tuple[RollingOriginResult, dict[str, Any]]:
    """Chapter 6's Keras forecaster with ``config``, evaluated from rolling origins on ``y``
    (regressors ``exog``): from the cache when chapter 6 stored this very evaluation, else
    fitted and evaluated now (Keras is seeded and deterministic on a CPU). Returns the result and
    ``{"fit_seconds", "epochs"}``."""
    import keras

    def compute() -> tuple[RollingOriginResult, dict[str, Any]]:
        from stlab.forecasting import rolling_origin
        from stlab.models.keras.forecast import KerasRecurrentForecaster  # Keras model code only on a miss

        fitted: list[Any] = []

        def make() -> KerasRecurrentForecaster:
            fitted.append(KerasRecurrentForecaster(config))
            return fitted[-1]

        result = rolling_origin(y, make, initial=initial, horizon=horizon, step=step, exog=exog, progress=False)
        return result, {"fit_seconds": float(fitted[0].fit_seconds_), "epochs": len(fitted[0].history_)}

    settings = keras_forecast_settings(config, keras.backend.backend(), initial=initial, horizon=horizon, step=step)
    return cached_forecast(y, exog, settings, compute)


def transformer_settings(config: TransformerConfig) -> dict[str, Any]:
    """The cache settings of a PyTorch space-time Transformer next-POI model."""
    return _model_settings("transformer-pytorch", config)


def store_transformer(task: NextVisitTask, model: TransformerNextVisit, config: TransformerConfig,
                      fit_seconds: float) -> RankedRun:
    """Store chapter 8's fitted Transformer -- its run and its weights -- for later chapters;
    returns its run."""
    run = ranked(model, task, fit_seconds, epochs=len(getattr(model, "history_", [])))
    settings = transformer_settings(config)
    store_runs(task, settings, [run])
    # Native dtypes (some buffers are float64), so the model comes back exactly as it was.
    save_weights(run_key(task, settings), {name: tensor.detach().cpu().numpy()
                                           for name, tensor in model.net_.state_dict().items()})
    return run


def transformer_model(task: NextVisitTask, config: TransformerConfig) -> tuple[TransformerNextVisit, RankedRun]:
    """Chapter 8's fitted Transformer with ``config`` and its run: rebuilt from its stored
    weights when the cache has a verified copy of both, else fitted now and stored."""
    from stlab.models.torch.attention import TransformerNextVisit  # torch only when a model is wanted

    key = run_key(task, transformer_settings(config))
    runs, weights = load_runs(key), load_weights(key)
    if runs is not None and weights is not None:
        return TransformerNextVisit(config).import_weights(task, weights), runs[0]
    start = time.perf_counter()
    model = TransformerNextVisit(config).fit(task)
    return model, store_transformer(task, model, config, time.perf_counter() - start)


def transformer_run(task: NextVisitTask, config: TransformerConfig) -> RankedRun:
    """Chapter 8's Transformer with ``config``, from the cache or fitted now."""
    def compute() -> RankedRun:
        from stlab.models.torch.attention import TransformerNextVisit  # torch only on a miss

        return _fitted_run(task, lambda: TransformerNextVisit(config))

    return cached_run(task, transformer_settings(config), compute)


__all__ = ["baseline_runs", "baseline_settings", "keras_forecast_run", "keras_forecast_settings", "keras_recurrent_run", "keras_recurrent_settings", "lstm_run", "ranked", "recurrent_settings", "run_key_for_baselines",
           "store_baselines", "store_keras_forecast", "store_keras_recurrent", "store_recurrent", "store_transformer", "transformer_model", "transformer_run",
           "transformer_settings"]
