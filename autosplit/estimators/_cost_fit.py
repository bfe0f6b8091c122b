"""The unit cost model's regression statistics on exact measurements: coefficients, jackknife, shape misfit.

Private to :mod:`autosplit.estimators`; :class:`~autosplit.estimators.unitcost.UnitCostModel` documents the
model (steps 1, 2 and 4 of its module docstring). Everything works on the regression rows of
:mod:`autosplit.estimators._cost_rows`: per-unit rows grouped by job (job factors and totals are sums over
each job's rows) and job-level rows.
"""

from __future__ import annotations

import math

import numpy as np

from autosplit.estimators._base import EstimatorError, robust_nnls
from autosplit.estimators._cost_rows import Rows


def fit_coef(
    Xu: np.ndarray,
    yu: np.ndarray,
    ju: np.ndarray,
    Xj: np.ndarray,
    yj: np.ndarray,
    n_jobs: int,
    huber_k: float,
    rounds: int,
) -> np.ndarray:
    """Coefficients (seconds per term, at the measurements' average speed) from unit rows and job rows.

    ``Xu, yu, ju``: per-unit terms, seconds and job index; ``Xj, yj``: per-job summed terms and seconds of
    jobs that only measured job totals.
    """
    factors = np.ones(n_jobs)
    X = np.vstack([Xu, Xj])
    coef = np.zeros(X.shape[1])
    for _ in range(rounds if yu.size else 1):
        y = np.concatenate([yu / factors[ju], yj])
        coef = robust_nnls(X, y, huber_k=huber_k)
        if not yu.size:
            break
        gu = Xu @ coef
        num = np.bincount(ju, weights=yu, minlength=n_jobs)
        den = np.bincount(ju, weights=gu, minlength=n_jobs)
        seen = den > 0
        factors = np.ones(n_jobs)
        factors[seen] = num[seen] / den[seen]
        factors[seen] /= num[seen].sum() / den[seen].sum()
    predicted = (Xu @ coef).sum() + (Xj @ coef).sum()
    total = yu.sum() + yj.sum()
    if not predicted > 0:
        raise EstimatorError("the cost fit predicts zero seconds for every measurement")
    return coef * (total / predicted)


def jackknife(
    rows: Rows, coef: np.ndarray, groups: np.ndarray, huber_k: float, n_groups: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Refit with each group of jobs left out (``n_groups`` groups; a group without a job of ``rows``,
    holding only censored measurements, keeps ``coef``).

    Returns the coefficients of every refit (groups x terms), each unit's out-of-fold prediction, and each
    job's out-of-fold predicted seconds.
    """
    n_groups = int(groups.max()) + 1 if n_groups is None else n_groups
    coef_folds = np.empty((n_groups, coef.size))
    unit_oof = np.empty(rows.yu.size)
    job_oof = np.zeros(rows.n_jobs)
    present = np.bincount(groups, minlength=n_groups) > 0
    for g in range(n_groups):
        keep_u = groups[rows.ju] != g
        keep_j = groups[rows.jj] != g
        if n_groups == 1 or not present[g] or present.sum() == 1:
            coef_g = coef
        else:
            coef_g = fit_coef(
                rows.Xu[keep_u],
                rows.yu[keep_u],
                rows.ju[keep_u],
                rows.Xj[keep_j],
                rows.yj[keep_j],
                rows.n_jobs,
                huber_k,
                rounds=2,
            )
        coef_folds[g] = coef_g
        unit_oof[~keep_u] = rows.Xu[~keep_u] @ coef_g
        job_oof[rows.jj[~keep_j]] = rows.Xj[~keep_j] @ coef_g
    job_oof += np.bincount(rows.ju, weights=unit_oof, minlength=rows.n_jobs)
    return coef_folds, unit_oof, job_oof


def extra_folds(n_folds: int, n_extra: int, max_folds: int, seed: int) -> tuple[np.ndarray, int]:
    """Jackknife groups of ``n_extra`` jobs known only by censored measurements, next to the ``n_folds``
    groups of the jobs with exact ones: one group each while there are at most ``max_folds`` groups in all,
    else spread evenly at random over ``max(max_folds, n_folds)`` groups. Returns the groups and their count.
    """
    if n_extra == 0:
        return np.zeros(0, dtype=np.int64), n_folds
    cap = max(max_folds, n_folds)
    if n_folds + n_extra <= cap:
        return n_folds + np.arange(n_extra, dtype=np.int64), n_folds + n_extra
    ids = (n_folds + np.arange(n_extra, dtype=np.int64)) % cap
    np.random.default_rng([seed, 1]).shuffle(ids)
    return ids, cap


def shape_misfit(y: np.ndarray, pred: np.ndarray, events: np.ndarray, min_per_class: int = 40) -> float:
    """Squared relative misfit of the model's shape, from out-of-fold predictions ``pred`` of ``y``.

    Rows with events are split into classes of predicted seconds per event; the spread of the classes'
    ratios ``sum(y) / sum(pred)`` beyond what their sampling noise explains is the misfit a job made of
    similar lumis would inherit.
    """
    keep = (events > 0) & (pred > 0)
    n_classes = min(int(keep.sum()) // min_per_class, 6)
    if n_classes < 2:
        return 0.0
    y, pred = y[keep], pred[keep]
    per_event = pred / events[keep]
    edges = np.quantile(per_event, np.linspace(0, 1, n_classes + 1)[1:-1])
    cls = np.searchsorted(edges, per_event, side="right")
    obs_c = np.bincount(cls, weights=y, minlength=n_classes)
    pred_c = np.bincount(cls, weights=pred, minlength=n_classes)
    if np.any(pred_c <= 0):
        return 0.0
    ratio_c = obs_c / pred_c
    noise_c = np.bincount(cls, weights=(y - ratio_c[cls] * pred) ** 2, minlength=n_classes) / pred_c**2
    share = pred_c / pred_c.sum()
    centre = float((share * ratio_c).sum())
    spread = float((share * (ratio_c - centre) ** 2).sum() - (share * (1 - share) * noise_c).sum())
    return max(spread, 0.0) / centre**2


def unit_noise_cv2(
    yu: np.ndarray, ju: np.ndarray, mu: np.ndarray, ratio: np.ndarray, level: np.ndarray, n_terms: int
) -> float:
    """Squared coefficient of variation of unit noise, from the residuals within jobs (method of moments).

    ``yu`` are measured unit seconds, ``ju`` their jobs, ``mu`` the units' predictions, ``ratio`` each
    job's measured over predicted seconds and ``level`` each job's expected ratio (its site's). A unit's
    residual ``y - ratio * mu`` against its own job's ratio is free of the job-wide factor; for unit noise
    of relative spread ``cv`` its expected square, summed over a job, is
    ``cv**2 * level**2 * (s2 - 2 * s3 / s1 + s2**2 / s1**2)`` with ``sK = sum(mu**K)`` over the job's units,
    so the estimate is the summed squared residuals over the summed brackets.

    Dividing by the squared fitted values ``(ratio * mu)**2`` instead (the earlier estimator) is biased low
    when jobs hold few units: a job with one slow unit has a high ratio, which shrinks that unit's residual
    and swells its own denominator. With 2-5 units per job and lognormal unit noise of log-sd 0.9 it
    estimated a coefficient of variation of 0.8-0.9 against 1.12, and the job-to-job spread left over
    (``node_cv_``) came out at 0.4-0.7 against the pool's 0.1, which made jobs a third of the target.
    """
    if yu.size == 0:
        return 0.0
    n_jobs = ratio.size
    k = np.bincount(ju, minlength=n_jobs)
    s1 = np.bincount(ju, weights=mu, minlength=n_jobs)
    s2 = np.bincount(ju, weights=mu**2, minlength=n_jobs)
    s3 = np.bincount(ju, weights=mu**3, minlength=n_jobs)
    # A job of one unit has no residual (its bracket is 0 up to rounding): it says nothing here.
    informative = (k > 1) & (s1 > 0) & np.isfinite(ratio) & np.isfinite(level) & (level > 0)
    safe = np.where(informative, s1, 1.0)
    bracket = np.where(informative, level**2 * (s2 - 2.0 * s3 / safe + s2**2 / safe**2), 0.0)
    residual = np.where(informative[ju], yu - ratio[ju] * mu, 0.0)
    expected = float(bracket.sum())
    # The coefficients were fitted on the same residuals: n_terms fewer degrees of freedom.
    within_dof = int((k[informative] - 1).sum())
    if expected <= 0 or within_dof <= n_terms:
        return 0.0
    return float((residual**2).sum() / expected) * within_dof / (within_dof - n_terms)


#: the largest log-scale node variance taken from the data (a coefficient of variation of about 100)
_MAX_LOG_VARIANCE = math.log1p(1e4)


def node_noise_cv2(
    ju: np.ndarray,
    log_ratio: np.ndarray,
    site_of: np.ndarray,
    relative: np.ndarray,
    relative_site: np.ndarray,
    herfindahl: np.ndarray,
    unit_cv2: float,
) -> float:
    """Squared spread of the job-wide speed factor within a site (the node jitter).

    With per-unit timings (``ju``: each timed unit's job, ``log_ratio``: its ``log(seconds / prediction)``,
    ``site_of``: every job's site index), a one-way random-effects analysis on the log scale: the spread of
    the jobs' mean log ratios around their site's (each site's squared deviations scaled by
    ``n / (n - 1)`` for its ``n`` jobs; sites with one job say nothing), less what the within-job spread
    explains for a job of that many units, averaged with weights ``1 / (node + within / k)**2`` (inverse
    variances, iterated from the plain mean); the node's log-variance ``s2`` gives ``exp(s2) - 1``.

    Without within-job information (job-level timing only, or every timed job of one unit) the moment
    estimate: the jobs' ``relative`` ratios (measured over predicted seconds, over their site's, minus 1;
    ``relative_site`` their site indices) less ``unit_cv2 * herfindahl`` (0 there: the whole spread).

    On the log scale a straggler counts as its logarithm: on ``grid``/``heavy-tail`` one single-unit job
    whose unit took 34x its prediction made half of the summed squared ratios of 7,500 jobs, and the moment
    estimate put ``node_cv_`` at 0.36-0.58 against the pool's 0.1.
    """
    if ju.size:
        k = np.bincount(ju, minlength=site_of.size)
        timed = np.flatnonzero(k > 0)
        if int((k[timed] - 1).sum()) > 0:
            job_mean = np.bincount(ju, weights=log_ratio, minlength=site_of.size) / np.maximum(k, 1)
            within = float(np.square(log_ratio - job_mean[ju]).sum()) / int((k[timed] - 1).sum())
            deviation2, kept = _within_site_deviations(job_mean[timed], site_of[timed])
            if kept.any():
                noise = within / k[timed][kept]
                value = _weighted_excess(deviation2[kept] - noise, noise)
                return math.expm1(min(value, _MAX_LOG_VARIANCE))
    deviation2, kept = _within_site_deviations(relative, relative_site, centred=True)
    if not kept.any():
        return 0.0
    noise = unit_cv2 * herfindahl[kept]
    return _weighted_excess(deviation2[kept] - noise, noise)


def _within_site_deviations(
    values: np.ndarray, site: np.ndarray, centred: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Each value's squared deviation from its site's mean (``values`` themselves when ``centred``), scaled
    by ``n / (n - 1)`` for the ``n`` values of its site, and which values belong to a site with two or more."""
    n_sites = int(site.max()) + 1 if site.size else 0
    count = np.bincount(site, minlength=n_sites)
    if centred:
        deviation = values
    else:
        deviation = (
            values - (np.bincount(site, weights=values, minlength=n_sites) / np.maximum(count, 1))[site]
        )
    kept = count[site] > 1
    scale = np.where(kept, count[site] / np.maximum(count[site] - 1, 1), 0.0)
    return np.square(deviation) * scale, kept


def _weighted_excess(excess: np.ndarray, noise: np.ndarray) -> float:
    """The node variance from per-job unbiased ``excess`` values whose own noise variance is ``noise``."""
    value = max(float(excess.mean()), 0.0)
    for _ in range(3):
        weight = 1.0 / np.square(np.maximum(value + noise, 1e-4))
        value = max(float((weight * excess).sum() / weight.sum()), 0.0)
    return value if math.isfinite(value) else 0.0
