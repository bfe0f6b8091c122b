"""Right-censored cost measurements: a self-consistent estimate of the distribution of unit cost ratios.

Private to :mod:`autosplit.estimators`; :class:`~autosplit.estimators.UnitCostModel` documents what it does
with the result. Everything here works in *ratio* units: a unit's seconds divided by its predicted seconds
(the cost model's prediction times its job's speed factor), so that one distribution ``F`` of ratios
describes every unit.

Three kinds of observations:

* **exact**: a unit (or, with job-level timing, a job) that finished, with its ratio ``r`` and its weight
  ``p`` (its predicted seconds);
* **censored single**: a unit cut off while it ran (a job report's ``in_progress``): its ratio is at least
  ``c``;
* **censored group**: a set of units (a job still running) whose *mean* ratio, weighted by their predicted
  seconds, is at least ``C``; ``n`` is the group's effective number of units, ``(sum p)**2 / sum(p**2)``.

``F`` is discrete. Its support is the exact ratios, grouped in at most ``bins`` bins of equal width in
``log r`` (each bin's value is the weighted mean of its ratios, so the mean of ``F`` over exact data alone
is exactly the ratio estimator ``sum(seconds) / sum(predicted)``), plus one point beyond the largest exact
ratio for every single censored beyond it: ``c`` times the mean excess factor ``alpha / (alpha - 1)`` of a
Pareto tail whose index ``alpha`` is Hill's estimate on the largest exact ratios (at least 1.5).

The weights of ``F`` (in predicted seconds) solve the self-consistency equations of the nonparametric
maximum likelihood estimate (Efron's redistribution to the right, Turnbull's EM), by EM accelerated with
SQUAREM (Varadhan and Roland 2008):

* an exact observation keeps its weight at its support point;
* a censored single spreads its weight over the support points above ``c`` in proportion to ``F``
  (Kaplan-Meier's redistribution);
* a censored group spreads its weight over the support by the posterior of one of its units given that
  the group exceeded its bound: ``P(r_u = v) * P(sum of the other n - 1 > n C - v)``, the others' sum
  approximated by a shifted lognormal matching the mean, variance and skewness of the sum of ``n - 1``
  draws from ``F`` (units of a group are taken as equally weighted).

A censored observation's expected ratio given its bound, under ``F``, imputes its seconds in the level of
the model; its posterior gives it its share of the spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr


def hill_index(ratios: np.ndarray, min_top: int = 10, top_fraction: float = 0.02) -> float:
    """Hill's estimate of the tail index ``alpha`` of the largest ratios (the top ``top_fraction``, at
    least ``min_top``), at least 1.5; 1.5 when there are too few ratios to tell."""
    values = np.sort(ratios[ratios > 0])[::-1]
    k = min(max(min_top, int(top_fraction * values.size)), values.size - 1)
    if k < 3:
        return 1.5
    logs = float(np.log(values[:k] / values[k]).sum())
    return max(k / logs, 1.5) if logs > 0 else math.inf


def pareto_strata(alpha: float, n: int) -> np.ndarray:
    """Mean of each of ``n`` equally likely strata of a Pareto variable with index ``alpha`` and minimum 1:
    ``(1 - u) ** (-1 / alpha)`` averaged over ``u`` in ``[k / n, (k + 1) / n]``."""
    if not math.isfinite(alpha):
        return np.ones(n)
    a = 1.0 - 1.0 / alpha
    low = np.arange(n) / n
    high = low + 1.0 / n
    return ((1.0 - low) ** a - np.where(high < 1.0, 1.0 - high, 0.0) ** a) / (a / n)


@dataclass
class Support:
    """Support points ``values`` (sorted) of ``F``, the exact observations' weight at each, the support
    point of every exact observation (``index``), and the points of the Pareto tail block (``tail``)."""

    values: np.ndarray
    exact_mass: np.ndarray
    index: np.ndarray
    tail: np.ndarray
    alpha: float

    def mass_of(self, weight: np.ndarray) -> np.ndarray:
        """Exact weight at each support point for other weights of the same exact observations."""
        return np.bincount(self.index, weights=weight, minlength=self.values.size)


def make_support(
    exact: np.ndarray, weight: np.ndarray, single: np.ndarray, bins: int = 100, tail_points: int = 8
) -> Support:
    """Support of ``F`` (module docstring): the exact ratios ``exact`` (weights ``weight``) binned, a
    Pareto tail block beyond the largest, and a point beyond each single censored beyond them (bounds
    ``single``)."""
    if exact.size == 0:
        raise ValueError("no exact ratios")
    positive = exact[exact > 0]
    floor = float(positive.min()) if positive.size else 1.0
    lr = np.log(np.maximum(exact, floor))
    n_bins = max(min(bins, exact.size), 1)
    low, high = float(lr.min()), float(lr.max())
    if high > low:
        index = np.minimum(((lr - low) / (high - low) * n_bins).astype(np.int64), n_bins - 1)
    else:
        index = np.zeros(exact.size, dtype=np.int64)
    mass = np.bincount(index, weights=weight, minlength=n_bins)
    total = np.bincount(index, weights=weight * exact, minlength=n_bins)
    keep = mass > 0
    position = np.cumsum(keep) - 1
    values, exact_mass, index = total[keep] / mass[keep], mass[keep], position[index]
    alpha = hill_index(exact)
    largest = float(exact.max())
    parts = [values]
    kinds = [np.zeros(values.size, dtype=np.int8)]
    if largest > 0 and math.isfinite(alpha):
        parts.append(largest * pareto_strata(alpha, tail_points))
        kinds.append(np.ones(tail_points, dtype=np.int8))
        mean_excess = alpha / (alpha - 1.0)
    else:
        mean_excess = 1.0
    beyond = single[single >= largest]
    if beyond.size:
        parts.append(np.sort(beyond) * mean_excess)
        kinds.append(np.full(beyond.size, 2, dtype=np.int8))
    values = np.concatenate(parts)
    kind = np.concatenate(kinds)
    exact_mass = np.concatenate([exact_mass, np.zeros(values.size - exact_mass.size)])
    order = np.argsort(values, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return Support(values[order], exact_mass[order], rank[index], kind[order] == 1, alpha)


#: groups with up to this many other units get the exact distribution of their sum (FFT on a grid)
EXACT_SUM_UNITS = 16


def _shifted_lognormal_sf(m: np.ndarray, t: np.ndarray, k1: float, k2: float, k3: float) -> np.ndarray:
    """``P(sum of m draws > t)`` (rows x support; ``m`` one per row, >= 1) for draws with cumulants
    k1, k2, k3: the shifted lognormal with the sum's mean, variance and skewness (normal if not skewed)."""
    m = m[:, None]
    mean, var = m * k1, np.maximum(m * k2, 1e-300)
    if k2 <= 0:
        return (t < mean).astype(np.float64)
    skew = m * k3 / var**1.5
    if not np.all(skew > 1e-6):
        return ndtr(-(t - mean) / np.sqrt(var))
    # Shifted lognormal tau + exp(mu + s Z): skewness (w + 2) sqrt(w - 1) with w = exp(s^2). With
    # u = sqrt(w - 1): u^3 + 3u = skewness, solved by Cardano's formula.
    half = np.sqrt(skew * skew / 4.0 + 1.0)
    u = np.cbrt(skew / 2.0 + half) + np.cbrt(skew / 2.0 - half)
    w = 1.0 + u * u
    s = np.sqrt(np.log(w))
    scale = np.sqrt(var / (w * (w - 1.0)))  # exp(mu)
    above = t - (mean - scale * np.sqrt(w))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.log(np.maximum(above, 1e-300) / scale) / s
    return np.where(above <= 0, 1.0, ndtr(-z))


def _exact_sum_sf(
    values: np.ndarray, w: np.ndarray, counts: list[int]
) -> tuple[float, dict[int, np.ndarray]]:
    """``P(sum of m draws from F > x)`` on the grid ``x = i * dx`` for every ``m`` in ``counts``: F's
    points split linearly between grid nodes (their mean kept), convolution powers by FFT."""
    top = max(float(values.max()), 1e-300)
    bins = 512  # grid nodes per largest value
    dx = top / bins
    position = np.maximum(values, 0.0) / dx
    low = np.minimum(np.floor(position).astype(np.int64), bins)
    frac = position - low
    f = np.bincount(low, weights=w * (1.0 - frac), minlength=bins + 2)
    f += np.bincount(low + 1, weights=w * frac, minlength=bins + 2)
    size = 1 << int(math.ceil(math.log2(max(counts) * (bins + 1) + 2)))
    transform = np.fft.rfft(f, size)
    tables = {}
    for m in counts:
        p = np.maximum(np.fft.irfft(transform**m, size)[: m * (bins + 1) + 1], 0.0)
        at_least = np.cumsum(p[::-1])[::-1]
        tables[m] = np.append(at_least[1:], 0.0) / at_least[0]
    return dx, tables


class SelfConsistent:
    """The self-consistent ``F`` for a set of observations; see the module docstring.

    ``per_unit=False`` (job-level timing: exact ratios are whole jobs) compares every censored bound with
    ``F`` directly, as for singles.
    """

    def __init__(
        self,
        values: np.ndarray,
        exact_mass: np.ndarray,
        single: np.ndarray,
        single_weight: np.ndarray,
        group: np.ndarray,
        group_weight: np.ndarray,
        group_size: np.ndarray,
        *,
        per_unit: bool = True,
        tail: np.ndarray | None = None,
    ) -> None:
        self.values = v = values
        self.exact_mass = exact_mass
        self.tail = np.zeros(v.size, dtype=bool) if tail is None else tail
        self.per_unit = per_unit
        self.n_single = single.size
        if per_unit:
            self.single_bound, self.single_weight = single, single_weight
            self.group_bound, self.group_weight = group, group_weight
            self.group_size = np.maximum(group_size, 1.0)
        else:
            self.single_bound = np.concatenate([single, group])
            self.single_weight = np.concatenate([single_weight, group_weight])
            self.group_bound = self.group_weight = self.group_size = np.zeros(0)
        self._above = v[None, :] > self.single_bound[:, None]
        # A single censored beyond every support point keeps its bound as its value.
        self._none_above = ~self._above.any(axis=1)
        self._thresholds = self.group_bound[:, None] * self.group_size[:, None] - v[None, :]
        self._others = np.rint(self.group_size - 1.0).astype(np.int64)
        self.total = float(self.exact_mass.sum() + self.single_weight.sum() + self.group_weight.sum())

    # ------------------------------------------------------------------ posteriors
    def single_posterior(self, w: np.ndarray) -> np.ndarray:
        post = self._above * w
        sums = post.sum(axis=1)
        zero = sums <= 0
        if zero.any():  # no weight above the bound yet: spread evenly (none above: the largest point)
            fallback = self._above[zero].astype(np.float64)
            fallback[~fallback.any(axis=1), -1] = 1.0
            post[zero] = fallback
            sums = post.sum(axis=1)
        return post / sums[:, None]

    def others_exceed(self, w: np.ndarray) -> np.ndarray:
        """``P(sum of the group's other units > threshold)`` (groups x support) under ``F = (values, w)``.

        A group of one unit has no others (the probability is ``threshold < 0``); up to
        :data:`EXACT_SUM_UNITS` others the sum's distribution is exact (one unit: F itself; more: FFT on a
        grid of 512 nodes per largest value); beyond, a shifted lognormal matching the sum's mean, variance
        and skewness. Group sizes are rounded to whole units.
        """
        v, t, m = self.values, self._thresholds, self._others
        out = np.empty(t.shape)
        alone = m == 0
        out[alone] = t[alone] < 0
        one = m == 1
        if one.any():  # P(X > t) for X ~ F: the weight of the points above t
            above = np.append(np.cumsum(w[::-1])[::-1], 0.0)
            out[one] = above[np.searchsorted(v, t[one], side="right")]
        few = (m > 1) & (m <= EXACT_SUM_UNITS)
        if few.any():
            counts = sorted({int(c) for c in m[few]})
            dx, tables = _exact_sum_sf(v, w, counts)
            for c in counts:
                rows = m == c
                sf = tables[c]
                out[rows] = np.interp(t[rows], np.arange(sf.size) * dx, sf, left=1.0, right=0.0)
        many = m > EXACT_SUM_UNITS
        if many.any():
            k1 = float(w @ v)
            d = v - k1
            out[many] = _shifted_lognormal_sf(
                m[many].astype(np.float64), t[many], k1, float(w @ (d * d)), float(w @ (d * d * d))
            )
        return out

    def group_posterior(self, w: np.ndarray) -> np.ndarray:
        if not self.group_bound.size:
            return np.zeros((0, self.values.size))
        post = self.others_exceed(w) * w
        sums = post.sum(axis=1, keepdims=True)
        # A bound that F cannot reach at all: the unit takes the largest support point.
        empty = sums[:, 0] <= 0
        if empty.any():
            post[empty] = 0.0
            post[empty, -1] = 1.0
            sums[empty] = 1.0
        return post / sums

    def step(self, w: np.ndarray) -> np.ndarray:
        acc = self.exact_mass.copy()
        if self.single_bound.size:
            acc += self.single_weight @ self.single_posterior(w)
        if self.group_bound.size:
            acc += self.group_weight @ self.group_posterior(w)
        if self.tail.any():  # the tail block keeps its Pareto shape: equal weights on its strata
            acc[self.tail] = acc[self.tail].mean()
        return acc / self.total

    # ------------------------------------------------------------------ solve
    def solve(
        self, start: np.ndarray | None = None, *, tol: float = 1e-8, max_steps: int = 600
    ) -> tuple[np.ndarray, int]:
        """Weights of ``F`` (summing to 1) at the fixed point of :meth:`step`, and the EM steps taken."""
        if not (self.single_bound.size or self.group_bound.size):
            return self.exact_mass / self.exact_mass.sum(), 0
        if start is None:
            # The tail block starts with the weight of one more exact support point (EM cannot move
            # weight to a point that has none); it keeps only what the censored measurements call for.
            start = self.exact_mass.copy()
            n_tail = int(self.tail.sum())
            if n_tail:
                start[self.tail] = self.exact_mass.sum() / (np.count_nonzero(self.exact_mass) + 1) / n_tail
        w = start / start.sum()
        steps = 0
        while steps < max_steps:
            w1 = self.step(w)
            w2 = self.step(w1)
            steps += 2
            r = w1 - w
            q = w2 - w1 - r
            nr, nq = float(np.linalg.norm(r)), float(np.linalg.norm(q))
            if nr < tol or nq == 0.0:
                w = w2
                break
            alpha = min(-nr / nq, -1.0)
            extrapolated = np.maximum(w - 2.0 * alpha * r + alpha * alpha * q, 0.0)
            candidate = self.step(extrapolated / extrapolated.sum())
            steps += 1
            change = float(np.abs(candidate - w).max())
            w = candidate
            if change < tol:
                break
        return w, steps

    # ------------------------------------------------------------------ results
    def conditional_means(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Expected ratio of every censored single and every group's mean ratio, given its bound.

        In the order of the input data (singles, then groups), never below the bound.
        """
        v = self.values
        singles = self.single_posterior(w) @ v
        singles = np.where(self._none_above, self.single_bound, np.maximum(singles, self.single_bound))
        if self.per_unit:
            groups = self.group_posterior(w) @ v
            groups = np.maximum(groups, self.group_bound)
            return singles, groups
        n = self.n_single
        return singles[:n], singles[n:]

    def posteriors(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior distribution (rows sum to 1 over :attr:`values`) of a unit of every censored single
        and every group, in the order of the input data."""
        singles = self.single_posterior(w)
        if self.per_unit:
            return singles, self.group_posterior(w)
        n = self.n_single
        return singles[:n], singles[n:]


def relative_variance(values: np.ndarray, weights: np.ndarray) -> float:
    """Squared coefficient of variation of a discrete distribution (weights need not sum to 1)."""
    total = float(weights.sum())
    if total <= 0:
        return 0.0
    mean = float(weights @ values) / total
    if mean <= 0:
        return 0.0
    return float(weights @ (values - mean) ** 2) / total / mean**2


def posterior_draws(values: np.ndarray, posterior: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``counts[i]`` evenly spaced quantiles (at ``(k + 0.5) / counts[i]``) of each row's distribution.

    Deterministic stand-ins for draws: the spread of the censored units in a sample of scores.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if posterior.shape[0] == 0 or counts.sum() == 0:
        return np.zeros(0)
    cdf = np.cumsum(posterior, axis=1)
    cdf /= np.where(cdf[:, -1:] > 0, cdf[:, -1:], 1.0)
    rows = np.repeat(np.arange(posterior.shape[0]), counts)
    starts = np.cumsum(counts) - counts
    rank = np.arange(counts.sum()) - np.repeat(starts, counts)
    level = (rank + 0.5) / np.repeat(counts, counts)
    # For each draw, the first support point whose cumulative probability reaches its level.
    index = (cdf[rows] < level[:, None]).sum(axis=1)
    return values[np.minimum(index, values.size - 1)]
