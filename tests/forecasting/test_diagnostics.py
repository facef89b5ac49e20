"""Stationarity tests and Ljung-Box on series whose answers are known."""

from __future__ import annotations

import numpy as np

from stlab.forecasting import ljung_box, simulate_sarima, stationarity_tests



def test_stationarity_verdicts():
    rng = np.random.default_rng(7)
    noise = rng.normal(size=600)
    assert stationarity_tests(noise).loc["both", "verdict"] == "stationary"
    assert stationarity_tests(np.cumsum(noise)).loc["both", "verdict"].startswith("unit root")


def test_ljung_box_separates_noise_from_ar():
    rng = np.random.default_rng(8)
    assert (ljung_box(rng.normal(size=800), lags=[10, 20])["lb_pvalue"] > 0.01).all()
    assert (ljung_box(simulate_sarima(800, ar=(0.5,), seed=8), lags=10)["lb_pvalue"] < 1e-6).all()


# --------------------------------------------------------------------------- Poisson space-time model
