"""The Poisson space-time model recovers the effects it was simulated with."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stlab.forecasting import PoissonEvolutionModel



def test_poisson_model_recovers_multiplicative_effects():
    rng = np.random.default_rng(9)
    index = pd.date_range("2024-01-01", periods=24 * 7 * 8, freq="h")
    how, hod = (index.day_of_week * 24 + index.hour).to_numpy(), index.hour.to_numpy()
    phi = 0.8 * np.sin(2 * np.pi * np.arange(168) / 24) + 0.4 * (np.arange(168) >= 120)
    phi -= phi.mean()
    psi = np.linspace(-1, 1, 10)
    theta = np.zeros((10, 24))
    theta[0] = 0.6 * np.cos(2 * np.pi * np.arange(24) / 24)
    theta[1] = -theta[0]
    mu = np.exp(1.5 + phi[how][:, None] + psi[None, :] + theta[:, hod].T)
    counts = pd.DataFrame(rng.poisson(mu), index=index)
    model = PoissonEvolutionModel(interaction_penalty=1.0).fit(counts)
    assert model.converged
    assert np.abs(model.psi.to_numpy() - psi).max() < 0.05
    assert np.abs(model.phi.to_numpy() - phi).mean() < 0.06
    assert np.corrcoef(model.theta.to_numpy()[:2].ravel(), theta[:2].ravel())[0, 1] > 0.95
    assert np.abs(model.theta.to_numpy()[2:]).mean() < 0.08  # regions without interaction stay near 0
    # The centred parts rebuild the rate.
    assert np.median(np.abs(model.predict(index) / mu - 1)) < 0.1
    forecast = model.forecast(24)
    assert forecast.mean.shape == (24, 10) and (forecast.lower <= forecast.mean).all()
