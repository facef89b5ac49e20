"""Power-law fits recover known laws and refuse curves that are not laws."""

from __future__ import annotations

import numpy as np
import pytest

from stlab.models.attention.scaling import fit_power_law, fit_saturating_power_law


def test_recovers_an_exact_power_law():
    x = np.array([1e4, 3e4, 1e5, 3e5, 1e6])
    fit = fit_power_law(x, 7.0 * x ** -0.3)
    assert fit.exponent == pytest.approx(0.3) and fit.coefficient == pytest.approx(7.0)
    assert fit.r2 == pytest.approx(1.0) and fit.fits
    np.testing.assert_allclose(fit.predict(x), 7.0 * x ** -0.3)


def test_recovers_the_floor_of_a_saturating_law():
    x = np.geomspace(1e3, 1e7, 9)
    y = 2.5 + 40.0 * x ** -0.4
    fit = fit_saturating_power_law(x, y, grid=2000)
    assert fit.floor == pytest.approx(2.5, abs=0.01)
    assert fit.exponent == pytest.approx(0.4, abs=0.02)
    assert fit.fits


def test_a_curve_that_rises_again_does_not_fit():
    x = np.array([1e4, 1e5, 1e6, 1e7])
    y = np.array([5.0, 4.6, 4.8, 5.3])  # overfits past 1e5
    assert not fit_power_law(x, y).fits


@pytest.mark.parametrize("x, y", [([1, 2], [1, 2]), ([0, 1, 2], [1, 1, 1]), ([1, 2, 3], [1, -1, 1])])
def test_bad_input_is_refused(x, y):
    with pytest.raises(ValueError):
        fit_power_law(np.array(x, float), np.array(y, float))
