"""The unit cost model's regression statistics on exact measurements: coefficients, jackknife, shape misfit.

Private to :mod:`autosplit.estimators`; :class:`~autosplit.estimators.unitcost.UnitCostModel` documents the
model (steps 1, 2 and 4 of its module docstring). Everything works on the regression rows of
:mod:`autosplit.estimators._cost_rows`: per-unit rows grouped by job (job factors and totals are sums over
each job's rows) and job-level rows.
"""

from __future__ import annotations

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
