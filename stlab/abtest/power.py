"""Power and sample size of two-arm tests on a mean or a rate.

How many users must an experiment have to detect an effect of a given size with a given
probability (its power), at a given false-positive rate ``alpha``? Rates use Cohen's (1988)
arcsine effect size, as statsmodels, G*Power and R's ``pwr`` do.

Introduced in chapter 14 (Testing and running a recommender).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import optimize, stats

from stlab.abtest._common import (
    _ALTERNATIVES,
    Alternative,
    _check_choice,
    _check_open_unit,
    _check_positive,
)


def _check_power_inputs(alpha: float, ratio: float, alternative: str) -> None:
    _check_open_unit(alpha, "alpha")
    _check_positive(ratio, "ratio")
    _check_choice(alternative, "alternative", _ALTERNATIVES)


def mean_power(effect: float, n_per_arm: float, *, sd: float = 1.0, alpha: float = 0.05, ratio: float = 1.0,
               alternative: Alternative = "two-sided") -> float:
    """Power of the two-sample z-test for a difference in means.

    The control arm has ``n_per_arm`` observations and the treatment arm ``ratio * n_per_arm``,
    both with standard deviation ``sd``; the estimate's standard error is
    ``sd * sqrt(1 / n + 1 / (ratio n))``. A two-sided test counts rejections in both tails.

    Args:
        effect: true difference ``treatment - control``.
        n_per_arm: observations in the control arm (a float is allowed, for solving).
        sd: standard deviation of one observation.
        alpha: significance level in (0, 1).
        ratio: treatment-arm size over control-arm size.
        alternative: ``"two-sided"``, ``"larger"`` (treatment > control) or ``"smaller"``.
    """
    _check_power_inputs(alpha, ratio, alternative)
    _check_positive(n_per_arm, "n_per_arm")
    _check_positive(sd, "sd")
    shift = effect / (sd * np.sqrt(1.0 / n_per_arm + 1.0 / (ratio * n_per_arm)))
    if alternative == "two-sided":
        crit = stats.norm.isf(alpha / 2)
        return float(stats.norm.cdf(shift - crit) + stats.norm.cdf(-shift - crit))
    crit = stats.norm.isf(alpha)
    return float(stats.norm.cdf((shift if alternative == "larger" else -shift) - crit))


def mean_sample_size(effect: float, *, sd: float = 1.0, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0,
                     alternative: Alternative = "two-sided") -> int:
    """Smallest control-arm size at which :func:`mean_power` reaches ``power`` (the treatment arm
    then needs ``ceil(ratio * n)``).

    Starts from the textbook ``n = (z_{1-alpha/2} + z_{power})^2 sd^2 (1 + 1/ratio) / effect^2``,
    which ignores the far tail, then solves the exact power equation.

    Raises:
        ValueError: ``effect`` is 0 or points the wrong way for a one-sided test, or ``power`` is
            not in ``(alpha, 1)``.
    """
    _check_power_inputs(alpha, ratio, alternative)
    _check_positive(sd, "sd")
    if not alpha < power < 1:
        raise ValueError(f"power must be in (alpha, 1) = ({alpha}, 1), got {power!r}; "
                         "a test rejects with probability alpha even when there is no effect")
    if effect == 0 or not np.isfinite(effect):
        raise ValueError(f"effect must be a finite, non-zero difference, got {effect!r}")
    if (alternative == "larger" and effect < 0) or (alternative == "smaller" and effect > 0):
        raise ValueError(f"a one-sided test for {alternative!r} cannot detect effect = {effect}; flip the "
                         "alternative or the sign")
    z_alpha = stats.norm.isf(alpha / 2 if alternative == "two-sided" else alpha)
    start = (z_alpha + stats.norm.ppf(power)) ** 2 * sd**2 * (1 + 1 / ratio) / effect**2

    def gap(n: float) -> float:
        return mean_power(effect, n, sd=sd, alpha=alpha, ratio=ratio, alternative=alternative) - power

    # The far tail only adds power, so the root lies at or below the textbook size.
    n = start if gap(start) <= 0 else optimize.brentq(gap, start * 1e-6, start, xtol=1e-10, rtol=1e-12)
    return int(np.ceil(n - 1e-9))


def proportion_effect_size(baseline: float, treated: float) -> float:
    """Cohen's ``h = 2 asin(sqrt(p_t)) - 2 asin(sqrt(p_c))``: a difference of rates on the arcsine
    scale, where an estimated rate's variance is about ``1 / n`` whatever the rate."""
    _check_open_unit(baseline, "baseline")
    _check_open_unit(treated, "treated")
    return float(2 * np.arcsin(np.sqrt(treated)) - 2 * np.arcsin(np.sqrt(baseline)))


def _treated_rate(baseline: float, mde: float, relative: bool) -> float:
    _check_open_unit(baseline, "baseline")
    if mde == 0 or not np.isfinite(mde):
        raise ValueError(f"mde (minimum detectable effect) must be a finite, non-zero change, got {mde!r}")
    treated = baseline * (1 + mde) if relative else baseline + mde
    if not 0 < treated < 1:
        raise ValueError(f"baseline {baseline} changed by mde {mde} ({'relative' if relative else 'absolute'}) gives a "
                         f"rate of {treated:g}, outside (0, 1); an absolute mde is in rate units (0.01 = one "
                         "percentage point), a relative one a fraction of the baseline (0.05 = +5 %)")
    return treated


def proportion_power(baseline: float, mde: float, n_per_arm: float, *, relative: bool = False, alpha: float = 0.05,
                     ratio: float = 1.0, alternative: Alternative = "two-sided") -> float:
    """Power to detect a change of a rate (acceptance, conversion) from ``baseline``.

    Uses the arcsine transform (:func:`proportion_effect_size`), as statsmodels' ``NormalIndPower``
    with ``proportion_effectsize``, G*Power and R's ``pwr.2p.test`` do.

    Args:
        baseline: control rate in (0, 1).
        mde: the change to detect: absolute (``0.01`` = one percentage point) or, with
            ``relative=True``, a fraction of the baseline (``0.05`` = +5 %).
        n_per_arm: users (independent observations) in the control arm.
        relative, alpha, ratio, alternative: see above and :func:`mean_power`.
    """
    effect = proportion_effect_size(baseline, _treated_rate(baseline, mde, relative))
    return mean_power(effect, n_per_arm, sd=1.0, alpha=alpha, ratio=ratio, alternative=alternative)


def proportion_sample_size(baseline: float, mde: float, *, relative: bool = False, alpha: float = 0.05,
                           power: float = 0.8, ratio: float = 1.0, alternative: Alternative = "two-sided") -> int:
    """Control-arm size needed to detect a change ``mde`` of a rate from ``baseline``.

    Example: a 10 % acceptance rate and a 1-point change (``mde=0.01``) at ``alpha=0.05`` and 80 %
    power need about 14,750 users per arm -- small effects on small rates are expensive.
    Arguments as :func:`proportion_power`; errors as :func:`mean_sample_size`.
    """
    effect = proportion_effect_size(baseline, _treated_rate(baseline, mde, relative))
    return mean_sample_size(effect, sd=1.0, alpha=alpha, power=power, ratio=ratio, alternative=alternative)


def proportion_mde(baseline: float, n_per_arm: float, *, alpha: float = 0.05, power: float = 0.8,
                   ratio: float = 1.0, alternative: Literal["two-sided", "larger"] = "two-sided") -> float:
    """The smallest absolute increase of a rate from ``baseline`` detected with ``power`` by
    ``n_per_arm`` users per control arm (the inverse of :func:`proportion_sample_size`).

    Raises:
        ValueError: even a rate of one would not be detected with this power.
    """
    _check_power_inputs(alpha, ratio, alternative)
    _check_open_unit(baseline, "baseline")
    _check_positive(n_per_arm, "n_per_arm")
    if not alpha < power < 1:
        raise ValueError(f"power must be in (alpha, 1) = ({alpha}, 1), got {power!r}")

    def gap(h: float) -> float:
        return mean_power(h, n_per_arm, alpha=alpha, ratio=ratio, alternative=alternative) - power

    start = 2 * np.arcsin(np.sqrt(baseline))
    largest = np.pi - start  # h of a treated rate of one
    if gap(largest) < 0:
        raise ValueError(f"{n_per_arm:g} users per arm cannot detect any increase from {baseline} with power {power}")
    h = optimize.brentq(gap, 1e-12, largest, xtol=1e-14)
    return float(np.sin((start + h) / 2) ** 2 - baseline)
