"""The unit cost model's censored likelihood: right-censored measurements folded into its level and spread.

Private to :mod:`autosplit.estimators`; :class:`~autosplit.estimators.unitcost.UnitCostModel` documents the
model. The censored measurements (:mod:`autosplit.estimators._censored_rows`) and the exact ones
(:mod:`autosplit.estimators._cost_rows`) become ratios to the fitted predictions at each job's speed; the
self-consistent (nonparametric maximum likelihood) distribution of those ratios
(:class:`~autosplit.estimators._censoring.SelfConsistent`) then imputes the censored seconds: the level
factor of the coefficients, of each jackknife refit, and the extra spread the censored units bring.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from autosplit.estimators._censored_rows import Censored
from autosplit.estimators._censoring import SelfConsistent, make_support, posterior_draws, relative_variance
from autosplit.estimators._cost_rows import Rows


@dataclass
class CensoredFit:
    """What the censored measurements change: the level factor of the coefficients (and of each
    jackknife refit), the extra relative variance of the unit ratios, and scores standing for the
    censored units (ratios to the predictions at the measured level)."""

    level: float
    level_folds: np.ndarray
    extra_cv2: float
    level_cv2: float
    draws: np.ndarray
    n_singles: int
    n_groups: int
    steps: int


def censored_fit(
    rows: Rows,
    coef: np.ndarray,
    coef_folds: np.ndarray,
    folds: np.ndarray,
    cens: Censored,
    job_factor: np.ndarray,
    site_factor: Mapping[str, float],
) -> CensoredFit | None:
    """Fold right-censored measurements into the level and the spread (module docstring).

    ``coef`` and ``coef_folds`` are the fitted and the jackknife coefficients (exact measurements only);
    ``folds`` is the jackknife group of every extended job; ``job_factor`` each used job's speed factor.
    Returns ``None`` when no censored measurement is usable.
    """
    per_unit = bool(rows.yu.size)
    if per_unit:
        scale_e, y_e, ext_e = (rows.Xu @ coef) * job_factor[rows.ju], rows.yu, rows.ju
    else:
        scale_e, y_e, ext_e = (rows.Xj @ coef) * job_factor[rows.jj], rows.yj, rows.jj
    ok = scale_e > 0
    scale_e, y_e, ext_e = scale_e[ok], y_e[ok], ext_e[ok]
    fac_s = np.array(
        [
            job_factor[j] if j >= 0 else site_factor.get(site, 1.0)
            for j, site in zip(cens.job_s, cens.site_s, strict=True)
        ],
        dtype=np.float64,
    )
    base_s = cens.Xs @ coef
    scale_s = base_s * fac_s
    keep = (scale_s > 0) & (cens.cs > 0)
    base_s, scale_s, fac_s, ext_s = base_s[keep], scale_s[keep], fac_s[keep], cens.ext_s[keep]
    bound_s, Xs = cens.cs[keep] / scale_s, cens.Xs[keep]
    fac_g = np.array([site_factor.get(site, 1.0) for site in cens.site_g], dtype=np.float64)
    base_g = cens.Xg @ coef
    squares = np.bincount(cens.row_group, weights=(cens.Xg_rows @ coef) ** 2, minlength=base_g.size)
    scale_g = base_g * fac_g
    keep = (scale_g > 0) & (cens.cg > 0)
    size_g = base_g[keep] ** 2 / squares[keep]
    base_g, scale_g, fac_g, ext_g = base_g[keep], scale_g[keep], fac_g[keep], cens.ext_g[keep]
    bound_g, Xg, units_g = cens.cg[keep] / scale_g, cens.Xg[keep], cens.units_g[keep]
    if not (bound_s.size or bound_g.size) or not y_e.size:
        return None

    support = make_support(y_e / scale_e, scale_e, bound_s)
    solver = SelfConsistent(
        support.values,
        support.exact_mass,
        bound_s,
        scale_s,
        bound_g,
        scale_g,
        size_g,
        per_unit=per_unit,
        tail=support.tail,
    )
    weights, steps = solver.solve()
    mean_s, mean_g = solver.conditional_means(weights)
    exact_total = float(rows.yu.sum() + rows.yj.sum())
    level = (exact_total + float(scale_s @ mean_s) + float(scale_g @ mean_g)) / (
        exact_total + float(base_s.sum()) + float(base_g.sum())
    )

    # The jackknife refits: each group's censored measurements leave with it, and F is re-solved (from
    # the full solution) on what stays, against the refit's coefficients.
    level_folds = np.full(coef_folds.shape[0], level)
    if coef_folds.shape[0] > 1:
        y_fold = np.bincount(folds[rows.ju], weights=rows.yu, minlength=coef_folds.shape[0]) + np.bincount(
            folds[rows.jj], weights=rows.yj, minlength=coef_folds.shape[0]
        )
        for g in range(coef_folds.shape[0]):
            ks, kg = folds[ext_s] != g, folds[ext_g] != g
            mass = support.mass_of(scale_e * (folds[ext_e] != g))
            if mass.sum() <= 0:
                continue
            fold = SelfConsistent(
                support.values,
                mass,
                bound_s[ks],
                scale_s[ks],
                bound_g[kg],
                scale_g[kg],
                size_g[kg],
                per_unit=per_unit,
                tail=support.tail,
            )
            w_g, used_steps = fold.solve(weights, tol=1e-7, max_steps=3)
            steps += used_steps
            m_s, m_g = fold.conditional_means(w_g)
            kept = exact_total - float(y_fold[g])
            denominator = kept + float((Xs[ks] @ coef_folds[g]).sum() + (Xg[kg] @ coef_folds[g]).sum())
            if denominator > 0:
                level_folds[g] = (kept + float(scale_s[ks] @ m_s) + float(scale_g[kg] @ m_g)) / denominator

    extra_cv2 = max(
        relative_variance(support.values, weights) - relative_variance(support.values, support.exact_mass),
        0.0,
    )
    post_s, post_g = solver.posteriors(weights)
    # The imputed seconds are expectations; the censored units' actual seconds vary around them by their
    # conditional variance, which the jackknife of the imputed data cannot see (missing information).
    v = support.values
    var_s = np.maximum(post_s @ (v * v) - (post_s @ v) ** 2, 0.0) * scale_s**2
    var_g = np.maximum(post_g @ (v * v) - (post_g @ v) ** 2, 0.0) * scale_g**2 / size_g
    denominator = exact_total + float(base_s.sum()) + float(base_g.sum())
    level_cv2 = float(var_s.sum() + var_g.sum()) / (denominator * level) ** 2
    counts = np.concatenate(
        [np.ones(bound_s.size, dtype=np.int64), units_g if per_unit else np.ones_like(units_g)]
    )
    draws = posterior_draws(support.values, np.vstack([post_s, post_g]), counts)
    draws *= np.repeat(np.concatenate([fac_s, fac_g]), counts)
    return CensoredFit(
        level, level_folds, extra_cv2, level_cv2, draws, int(bound_s.size), int(bound_g.size), steps
    )
