"""Cost of a rolling-origin SARIMA evaluation: refit at every origin, or reuse the parameters.

Usage (from the repository root):

    STLAB_DATA=../shared/data .venv/bin/python benchmarks/bench_sarima.py

Runs chapter 3's bike-sharing protocol (UCI Bike Sharing hourly rentals, the last 21 days as
daily origins after 8 weeks of history, horizons 1-24 h, log scale, two-step regressors) under
three policies: refit (warm-started) at every origin; refit every 7 origins and only filter the
new day in between (``results.extend``); never refit. Without ``STLAB_DATA`` it runs on the
simulated stand-in (``stlab.data.series.synthetic_rentals``) and says so. Prints a Markdown
table and writes it to benchmarks/results/sarima.md.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

from stlab.reporting import write_report

ROOT = Path(__file__).resolve().parent.parent
EVAL_DAYS, TRAIN_WEEKS, HORIZON = 21, 8, 24
MODELS = {"SARIMAX(1,0,1)(1,0,0,24)": ((1, 0, 1), (1, 0, 0, 24)),
          "SARIMAX(1,0,1)(1,0,1,24)": ((1, 0, 1), (1, 0, 1, 24))}
POLICIES = {"refit every origin": 1, "refit every 7 origins, else extend": 7, "never refit (extend only)": None}


def main() -> int:
    from stlab.data import load_bike_sharing
    from stlab.data.series import bike_regressors, hourly_bike_series, synthetic_rentals
    from stlab.forecasting import SarimaForecaster, SeasonalNaiveForecaster, rolling_origin

    window = (7 * TRAIN_WEEKS + EVAL_DAYS) * 24
    if os.environ.get("STLAB_DATA"):
        rentals = hourly_bike_series(load_bike_sharing("hour"))
        data = f"UCI Bike Sharing hourly rentals (STLAB_DATA={os.environ['STLAB_DATA']})"
    else:
        rentals = synthetic_rentals(num_days=window // 24, seed=0)
        data = "SIMULATED stand-in (stlab.data.series.synthetic_rentals, seed 0): STLAB_DATA is not set"
    frame = rentals.iloc[-window:]
    y = frame["cnt"].astype(float)
    exog = bike_regressors(frame)
    initial = len(frame) - EVAL_DAYS * 24

    rows = []
    reference = rolling_origin(y, lambda: SeasonalNaiveForecaster(24), initial=initial, horizon=HORIZON, progress=False)
    rows.append(("seasonal naive (24)", "-", reference, 0.0))
    for model_name, (order, seasonal) in MODELS.items():
        for policy, every in POLICIES.items():
            def make(order=order, seasonal=seasonal, every=every) -> SarimaForecaster:
                return SarimaForecaster(order, seasonal, transform="log1p", exog_method="ols", refit_every=every)

            start = time.perf_counter()
            result = rolling_origin(y, make, initial=initial, horizon=HORIZON, exog=exog, progress=False)
            rows.append((model_name, policy, result, time.perf_counter() - start))
            print(f"{model_name}, {policy}: {rows[-1][3]:.1f} s", file=sys.stderr)

    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}, Python {platform.python_version()}"
    lines = [f"Data: {data}; {frame.index[0]:%Y-%m-%d} .. {frame.index[-1]:%Y-%m-%d}.",
             (f"Protocol: expanding window, {reference.num_origins} daily origins from "
              f"{reference.origins[0]:%Y-%m-%d %H:%M}, horizons 1-{HORIZON} h, MASE scaled by the seasonal naive "
              "(24 h) in-sample MAE of the first training window; 90 % intervals."),
             f"Machine: {machine}.", "",
             "| model | policy | first fit (s) | mean per later origin (s) | total (s) | refits | MAE | MASE | coverage |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, policy, result, total in rows:
        metrics = result.metrics()
        cost = result.cost()
        lines.append(f"| {name} | {policy} | {cost['first fit s']:.2f} | {cost['mean per origin s']:.3f} | "
                     f"{total:.1f} | {int(cost['refits'])} | {metrics['MAE']:.2f} | {metrics['MASE']:.3f} | "
                     f"{metrics['coverage']:.3f} |")
    table = "\n".join(lines)
    print(table)
    write_report(ROOT / "benchmarks" / "results" / "sarima.md", f"# Rolling-origin SARIMA: refit or reuse\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
