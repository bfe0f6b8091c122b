"""The default cost model: seconds per unit from its events and features, with calibrated uncertainty.

Model. A unit ``i`` processed by job ``j`` takes ``t_ij = S_j * g(x_i) * e_ij`` seconds, where

* ``g(x) = sum_k b_k x_k`` is linear with non-negative coefficients in the *terms* ``unit`` (a fixed cost per
  lumi), ``events``, ``events*f`` and ``events*f^2`` for every per-event feature ``f`` (pileup, ...) and
  ``bytes``;
* ``S_j`` is a job-wide time factor: the site's factor times a node jitter (mean 1 within a site);
* ``e_ij`` is unit noise with mean 1 and coefficient of variation ``unit_cv_``.

Fit (:meth:`UnitCostModel.fit`):

1. *Shape*: the coefficients ``b`` come from a Huber-robust, relative-error, non-negative regression
   (iteratively re-weighted non-negative least squares, ``_base.robust_nnls``). With per-unit timings each
   unit is a row and the job factors ``S_j`` are estimated alternately (ratio of the job's seconds to its
   predicted seconds), so site and node speed do not blur the shape. With job-level timing only (CMSSW
   FJR), each job is a row whose terms are the sums over its units.
2. *Level*: the coefficients are rescaled by the ratio estimator ``sum(seconds) / sum(predicted)`` over
   every measurement, so predictions are unbiased for the mean even though the shape fit down-weights
   heavy tails.
3. *Sites*: each site's factor is its own ratio estimate, shrunk toward 1 by empirical Bayes (weight
   ``between / (between + sampling variance)``), so a site seen in one or two jobs stays near 1.
4. *Spread*, as relative standard deviations: unit noise ``unit_cv_`` from the within-job residuals; node
   jitter ``node_cv_`` from the job ratios within sites minus what unit noise explains; between-site
   spread ``site_cv_``; parameter uncertainty ``param_cv_`` from a grouped jackknife over jobs (refits
   with each job, or group of jobs, left out); and ``shape_cv_``, the misfit of the model's shape, from
   out-of-fold ratios of seconds to predictions in classes of predicted seconds per event (a job of
   similar lumis inherits its class's bias). Job-level variances are scaled by ``nu / (nu - 2)`` for
   their ``nu`` degrees of freedom (a Student-t predictive). For a job landing on an unknown site the
   planner's shared factor has ``shared_cv**2 = site_cv_**2 + node_cv_**2 + param_cv_**2 + shape_cv_**2``.
5. *Quantiles*: out-of-fold scores ``seconds / predicted`` from the same jackknife refits give
   split-conformal per-unit quantiles (:meth:`predict_quantile`); the jackknife gives a confidence
   interval of any total (:meth:`total_seconds_interval`).

Predictions are for a job whose site is unknown (the probes' site mix, or ``site_weights``), or for the
site named by the ``destination`` parameter; :meth:`for_site` gives a fitted copy for a known destination.

The model follows scikit-learn's estimator contract (it is a :class:`sklearn.base.BaseEstimator`): the
constructor only stores its parameters, :meth:`fit` sets the learned attributes (ending in ``_``) and
returns ``self``, and ``get_params``/``set_params``/``sklearn.base.clone`` work.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator

from autosplit.estimators._base import (
    EstimatorError,
    as_reports,
    check_fitted,
    collect,
    design,
    finite_quantile,
    fold_ids,
    jackknife_variance,
    numeric_features,
    overhead_from,
    robust_nnls,
    t_quantile,
    term_columns,
)
from autosplit.jobreport import JobReport


def _fit_coef(
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


@dataclass
class _Rows:
    """The measurements as regression rows.

    Unit rows (jobs with per-unit timing): terms ``Xu``, seconds ``yu``, job ``ju``, events ``eu``.
    Job rows (jobs with job-level timing only): summed terms ``Xj``, seconds ``yj``, job ``jj``, events
    ``ej``. Jobs are numbered 0 .. n_jobs-1 in report order.
    """

    Xu: np.ndarray
    yu: np.ndarray
    ju: np.ndarray
    eu: np.ndarray
    Xj: np.ndarray
    yj: np.ndarray
    jj: np.ndarray
    ej: np.ndarray
    n_jobs: int

    def job_totals(self, coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Observed and predicted seconds of every job."""
        observed = np.bincount(self.ju, weights=self.yu, minlength=self.n_jobs)
        predicted = np.bincount(self.ju, weights=self.Xu @ coef, minlength=self.n_jobs)
        observed[self.jj] = self.yj
        predicted[self.jj] = self.Xj @ coef
        return observed, predicted


def _jackknife(
    rows: _Rows, coef: np.ndarray, groups: np.ndarray, huber_k: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Refit with each group of jobs left out.

    Returns the coefficients of every refit (groups x terms), each unit's out-of-fold prediction, and each
    job's out-of-fold predicted seconds.
    """
    n_groups = int(groups.max()) + 1
    coef_folds = np.empty((n_groups, coef.size))
    unit_oof = np.empty(rows.yu.size)
    job_oof = np.zeros(rows.n_jobs)
    for g in range(n_groups):
        keep_u = groups[rows.ju] != g
        keep_j = groups[rows.jj] != g
        if n_groups == 1:
            coef_g = coef
        else:
            coef_g = _fit_coef(
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


def _shape_misfit(y: np.ndarray, pred: np.ndarray, events: np.ndarray, min_per_class: int = 40) -> float:
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


class UnitCostModel(BaseEstimator):
    """Per-unit seconds from events and unit features, per-site factors, calibrated spread (the default).

    Implements the planner's cost-model protocol (:class:`autosplit.splitting.CostModel`).

    Parameters
    ----------
    features:
        Per-event cost features (unit-table columns, e.g. ``["pileup"]``), each entering as an
        ``events * feature`` term; ``"auto"`` uses every extra floating-point column known for at least
        90 % of the measured units; ``[]`` for none. Missing values take the feature's mean over the
        measured units, in the fit and in predictions.
    per_unit_cost:
        Fit a fixed cost per unit (seconds per lumi, e.g. begin/end-lumi work).
    quadratic:
        Also fit ``events * feature**2`` for each per-event feature, so the per-event cost may rise
        faster than linearly (reconstruction time grows super-linearly with pile-up).
    use_bytes:
        Fit a cost per input byte when the units carry ``bytes`` (``"auto"``: when present and non-zero).
    site_factors:
        Learn per-site time factors (shrunk toward 1). When False, site differences stay in the job spread.
    site_weights:
        Destination distribution ``{site: weight}`` of future jobs; default: the sites' shares of the
        measured work. Unknown sites in it count with factor 1.
    destination:
        The site future jobs run at, when known (``None``: unknown, see ``site_weights``): predictions use
        its factor (1 if it was never seen) and the between-site spread leaves :attr:`shared_cv`. Only
        predictions depend on it; :meth:`for_site` sets it on a fitted copy.
    match_quantile:
        The planner approximates a job's runtime as normal. When the job-wide time factor is skewed (a
        few slow sites, lognormal node speeds), :attr:`shared_cv` is widened so that the normal quantile
        at this level equals the factor's own quantile (``None``: plain moments). Use the planner's
        ``1 - alpha``.
    confidence:
        Level of :meth:`total_seconds_interval` (default 0.95).
    huber_k:
        Huber threshold in robust standard deviations of the relative residuals.
    max_folds:
        Jackknife groups: one job per group up to this many jobs, else this many random groups of jobs.
    random_state:
        Seed for the assignment of jobs to jackknife groups.

    Attributes
    ----------
    terms_, coef_:
        The cost terms and their coefficients (seconds per unit, per event, per event x feature, ...),
        at the measured site mix.
    coef_folds_:
        Coefficients of the jackknife refits (groups x terms).
    site_factors_, site_raw_factors_, site_shares_:
        Per-site time factors relative to the mix (shrunk toward 1, and raw), and each site's share of
        the measured work.
    unit_cv_, node_cv_, site_cv_, param_cv_, shape_cv_:
        Relative spreads (see the module docstring); :attr:`shared_cv` combines the last four.
    overhead_seconds_:
        Mean per-job overhead (seconds).
    scores_:
        Sorted out-of-fold ratios ``seconds / predicted`` (per unit, or per job for job-level data).
    seconds_per_event_:
        Measured processing seconds over measured events.
    mode_:
        ``"unit"``, ``"job"`` or ``"mixed"``: which timings the fit had.
    job_z_rms_:
        Diagnostic: root-mean-square of out-of-fold job z-scores under the planner's normal model
        (about 1 when calibrated, above 1 when the spread is under-estimated).
    """

    def __init__(
        self,
        *,
        features: Sequence[str] | str = "auto",
        per_unit_cost: bool = True,
        quadratic: bool = True,
        use_bytes: bool | str = "auto",
        site_factors: bool = True,
        site_weights: Mapping[str, float] | None = None,
        destination: str | None = None,
        match_quantile: float | None = 0.95,
        confidence: float = 0.95,
        huber_k: float = 1.345,
        max_folds: int = 20,
        random_state: int = 0,
    ) -> None:
        self.features = features
        self.per_unit_cost = per_unit_cost
        self.quadratic = quadratic
        self.use_bytes = use_bytes
        self.site_factors = site_factors
        self.site_weights = site_weights
        self.destination = destination
        self.match_quantile = match_quantile
        self.confidence = confidence
        self.huber_k = huber_k
        self.max_folds = max_folds
        self.random_state = random_state

    # ------------------------------------------------------------------ fit
    def _choose_terms(self, unit_rows: pl.DataFrame, jobs: pl.DataFrame) -> list[str]:
        terms = (["unit"] if self.per_unit_cost else []) + ["events"]
        # Terms beyond unit/events need per-unit feature values for every measured unit.
        if jobs.filter(~pl.col("per_unit")).height and not self._units_complete(unit_rows, jobs):
            if self.features not in ("auto", [], ()):
                raise EstimatorError(
                    "features were requested but some job-level reports lack per-unit events/features; "
                    "pass the dataset's units table to fit(reports, units=...)"
                )
            return terms
        if self.features == "auto":
            # A feature known for at least 90 % of the measured units; the others take its mean.
            wanted = [
                f for f in numeric_features(unit_rows) if unit_rows[f].null_count() <= 0.1 * unit_rows.height
            ]
        else:
            wanted = list(self.features)
            for f in wanted:
                if f not in unit_rows.columns or unit_rows[f].null_count() == unit_rows.height:
                    raise EstimatorError(f"feature {f!r} is missing for the measured units")
        for f in wanted:
            terms.append(f"events*{f}")
            if self.quadratic:
                terms.append(f"events*{f}^2")
        has_bytes = "bytes" in unit_rows.columns and unit_rows["bytes"].null_count() == 0
        if self.use_bytes is True and not has_bytes:
            raise EstimatorError("use_bytes=True but the measured units have no 'bytes'")
        if has_bytes and self.use_bytes and float(unit_rows["bytes"].cast(pl.Float64).sum()) > 0:
            terms.append("bytes")
        return terms

    @staticmethod
    def _units_complete(unit_rows: pl.DataFrame, jobs: pl.DataFrame) -> bool:
        job_level = jobs.filter(~pl.col("per_unit"))["job"]
        rows = unit_rows.filter(pl.col("job").is_in(job_level.implode()))
        n_units = int(jobs.filter(~pl.col("per_unit"))["n_units"].sum())
        return rows.height == n_units and n_units > 0 and rows["events"].null_count() == 0

    def _rows(self, reports: list[JobReport], units: Any) -> tuple[_Rows, list[str], pl.DataFrame]:
        """Regression rows, terms and the table of the jobs used (in job order)."""
        jobs, unit_rows = collect(reports, units)
        unit_jobs = jobs.filter(pl.col("per_unit") & (pl.col("n_units") > 0))
        job_jobs = jobs.filter(
            ~pl.col("per_unit")
            & pl.col("ok")
            & pl.col("seconds").is_not_null()
            & pl.col("events").is_not_null()
            & (pl.col("n_units") > 0)
        )
        used = pl.concat([unit_jobs, job_jobs]).sort("job")
        if used.height == 0:
            raise EstimatorError(
                f"none of the {len(reports)} reports measured processing time and events for processed units"
            )
        unit_rows = unit_rows.filter(pl.col("job").is_in(used["job"].implode()))
        terms = self._choose_terms(unit_rows, used)
        self.feature_fill_ = {
            c: float(unit_rows[c].cast(pl.Float64).mean() or 0.0)
            for t in terms
            for c in term_columns(t)
            if c in unit_rows.columns
        }
        remap = np.full(len(reports), -1, dtype=np.int64)
        remap[used["job"].to_numpy()] = np.arange(used.height)
        n_jobs = used.height

        in_unit_mode = unit_rows["job"].is_in(unit_jobs["job"].implode())
        urows = unit_rows.filter(in_unit_mode)
        jrows = unit_rows.filter(~in_unit_mode)
        jj = remap[job_jobs["job"].to_numpy()]
        if not job_jobs.height:
            Xj = np.zeros((0, len(terms)))
        elif jrows.height == int(job_jobs["n_units"].sum()) and not jrows["events"].null_count():
            # Job-level rows: the sums of their units' terms.
            summed = np.zeros((n_jobs, len(terms)))
            np.add.at(summed, remap[jrows["job"].to_numpy()], design(jrows, terms, self.feature_fill_))
            Xj = summed[jj]
        else:  # only the job's unit count and events are known (terms are then unit and events)
            known = {"unit": job_jobs["n_units"].to_numpy(), "events": job_jobs["events"].to_numpy()}
            Xj = np.column_stack([known[t] for t in terms]).astype(np.float64)
        rows = _Rows(
            Xu=design(urows, terms, self.feature_fill_),
            yu=urows["seconds"].to_numpy().astype(np.float64),
            ju=remap[urows["job"].to_numpy()],
            eu=urows["events"].cast(pl.Float64).to_numpy(),
            Xj=Xj,
            yj=job_jobs["seconds"].to_numpy().astype(np.float64),
            jj=jj,
            ej=job_jobs["events"].cast(pl.Float64).to_numpy(),
            n_jobs=n_jobs,
        )
        if rows.yu.sum() + rows.yj.sum() <= 0:
            raise EstimatorError("the reports measured zero processing seconds in total")
        return rows, terms, used

    def fit(self, reports: Iterable[JobReport], units: Any = None) -> UnitCostModel:
        """Learn from job reports (probe or processing jobs); returns ``self``.

        ``units`` (a Dataset or its units table) supplies unit features by (run, lumi) for reports that
        carry only run and lumi (CMSSW FJRs). Reports with per-unit seconds contribute every processed
        unit (whatever the job's exit); reports with job-level timing only contribute when the job
        succeeded and measured its processing time and events.
        """
        reports = as_reports(reports)
        rows, terms, used = self._rows(reports, units)
        n_jobs = rows.n_jobs
        coef = _fit_coef(rows.Xu, rows.yu, rows.ju, rows.Xj, rows.yj, n_jobs, self.huber_k, rounds=3)
        groups = fold_ids(n_jobs, self.max_folds, self.random_state)
        coef_folds, unit_oof, job_oof = _jackknife(rows, coef, groups, self.huber_k)

        # ---------------------------------------------------------------- unit noise
        observed, predicted = rows.job_totals(coef)
        ratio = observed / np.maximum(predicted, 1e-300)
        mu = rows.Xu @ coef
        herfindahl = np.zeros(n_jobs)
        unit_cv2 = 0.0
        if rows.yu.size:
            per_unit_jobs = np.unique(rows.ju)
            squares = np.bincount(rows.ju, weights=mu**2, minlength=n_jobs)
            # A job whose units all predict 0 s (zero-event lumis) carries no information on unit noise.
            informative = per_unit_jobs[predicted[per_unit_jobs] > 0]
            herfindahl[informative] = squares[informative] / predicted[informative] ** 2
            scaled = ratio[rows.ju] * mu
            dof = rows.yu.size - per_unit_jobs.size - len(terms)
            if dof > 0:
                unit_cv2 = float(((rows.yu - scaled) ** 2).sum() / (scaled**2).sum()) * rows.yu.size / dof

        # ---------------------------------------------------------------- sites and nodes
        sites = used["site"].to_list() if self.site_factors else [""] * n_jobs
        names = sorted(set(sites))
        site_of = np.array([names.index(s) for s in sites], dtype=np.int64)
        n_sites = len(names)
        site_pred = np.bincount(site_of, weights=predicted, minlength=n_sites)
        raw = np.bincount(site_of, weights=observed, minlength=n_sites) / site_pred
        excess = (ratio / raw[site_of] - 1.0) ** 2 - unit_cv2 * herfindahl
        node_cv2 = max(float(excess.sum()) / (n_jobs - n_sites), 0.0) if n_jobs > n_sites else 0.0
        job_var = node_cv2 + unit_cv2 * herfindahl
        raw_var = np.bincount(site_of, weights=predicted**2 * job_var, minlength=n_sites) / site_pred**2
        share = site_pred / site_pred.sum()
        between = 0.0
        if n_sites > 1:
            between = float((share * (raw - 1.0) ** 2).sum() - (share * (1 - share) * raw_var).sum())
            between = max(between, 0.0)
        shrink = between / (between + raw_var) if between > 0 else np.zeros(n_sites)
        factors = 1.0 + shrink * (raw - 1.0)
        nu = n_jobs - n_sites
        inflate = min(nu / (nu - 2.0), 3.0) if nu > 3 else 3.0

        # ---------------------------------------------------------------- parameters and shape
        # Parameter uncertainty of a prediction for a row like those measured: the jackknife variance
        # of each row's prediction relative to it, averaged with the rows' seconds as weights. It holds
        # the level and the shape uncertainty and acts on a job like a shared factor.
        param_cv2 = 0.0
        k = coef_folds.shape[0]
        if k > 1:
            X_all = np.vstack([rows.Xu, rows.Xj])
            rows_pred = X_all @ coef
            spread = coef_folds - coef_folds.mean(axis=0)
            # Jackknife variance of x @ coef for every row x: (k-1)/k * x^T C x, C = sum of outer products.
            rows_var = (k - 1) / k * np.einsum("ij,jk,ik->i", X_all, spread.T @ spread, X_all)
            positive = rows_pred > 0
            param_cv2 = float((rows_var[positive] / rows_pred[positive]).sum() / rows_pred[positive].sum())
        if rows.yu.size:
            shape_cv2 = _shape_misfit(rows.yu / ratio[rows.ju], unit_oof, rows.eu)
        else:
            shape_cv2 = _shape_misfit(rows.yj, job_oof[rows.jj], rows.ej, min_per_class=10)

        # ---------------------------------------------------------------- store
        self.terms_ = list(terms)
        self.coef_ = coef
        self.coef_folds_ = coef_folds
        self.n_jobs_ = n_jobs
        self.n_units_ = int(rows.yu.size + used.filter(~pl.col("per_unit"))["n_units"].sum())
        self.mode_ = "unit" if not rows.yj.size else ("job" if not rows.yu.size else "mixed")
        self.unit_cv_ = math.sqrt(unit_cv2)
        self.node_cv_ = math.sqrt(node_cv2 * inflate)
        self.site_cv_ = math.sqrt(between * inflate)
        self.variance_inflation_ = inflate
        self.param_cv_ = math.sqrt(param_cv2)
        self.shape_cv_ = math.sqrt(shape_cv2)
        self.site_factors_ = {name: float(f) for name, f in zip(names, factors, strict=True) if name}
        self.site_raw_factors_ = {name: float(f) for name, f in zip(names, raw, strict=True) if name}
        self.site_shares_ = {name: float(s) for name, s in zip(names, share, strict=True)}
        self.overhead_seconds_ = overhead_from(used)
        if rows.yu.size:
            scores = rows.yu / np.where(unit_oof > 0, unit_oof, np.nan)
        else:
            scores = rows.yj / np.where(job_oof[rows.jj] > 0, job_oof[rows.jj], np.nan)
        self.scores_ = np.sort(scores[np.isfinite(scores)])
        events_total = float(used["events"].sum() or 0)
        self.seconds_per_event_ = float(observed.sum() / events_total) if events_total > 0 else math.nan
        # Diagnostic: out-of-fold job z-scores under the planner's normal model (rms ~ 1 when calibrated).
        valid = job_oof > 0
        sd = np.sqrt(self.shared_cv**2 + unit_cv2 * herfindahl[valid])
        z = (observed[valid] / job_oof[valid] - 1.0) / np.maximum(sd, 1e-12)
        self.job_z_rms_ = float(np.sqrt(np.mean(z**2))) if z.size else math.nan
        return self

    # ------------------------------------------------------------------ protocol
    @property
    def overhead_seconds(self) -> float:
        """Mean fixed seconds per job (set-up, stage-out): wall minus processing time of the reports."""
        check_fitted(self, "coef_")
        return self.overhead_seconds_

    def _destination_factor(self) -> float:
        if self.destination is not None:
            return self.site_factors_.get(self.destination, 1.0)
        if not self.site_weights:
            return 1.0  # the coefficients are already at the measured work mix
        weights = {s: float(w) for s, w in self.site_weights.items() if w > 0}
        total = sum(weights.values())
        if total <= 0:
            raise EstimatorError("site_weights must contain a positive weight")
        return sum(w * self.site_factors_.get(s, 1.0) for s, w in weights.items()) / total

    def _site_mixture(self) -> tuple[np.ndarray, np.ndarray]:
        """Time factors (mean 1) and weights of the sites a job may land on."""
        if self.destination is not None:
            return np.ones(1), np.ones(1)
        if self.site_weights:
            weights = {s: float(w) for s, w in self.site_weights.items() if w > 0}
        else:
            weights = dict(self.site_shares_)
        w = np.array(list(weights.values()))
        f = np.array([self.site_factors_.get(s, 1.0) for s in weights])
        w = w / w.sum()
        f = f / float((w * f).sum())
        # Widen the factors like the between-site variance (Student-t predictive).
        return 1.0 + math.sqrt(self.variance_inflation_) * (f - 1.0), w

    def shared_factor_quantile(self, q: float) -> float:
        """``q``-quantile of a job's time factor relative to the predicted mean (e.g. 1.4 = 40 % slower).

        The factor is a mixture over the destination sites (their learned factors and shares) of lognormal
        variables with mean 1 and relative spread ``sqrt(node_cv_**2 + param_cv_**2 + shape_cv_**2)``.
        """
        check_fitted(self, "coef_")
        from statistics import NormalDist

        factors, weights = self._site_mixture()
        cv2 = self.node_cv_**2 + self.param_cv_**2 + self.shape_cv_**2
        sigma = math.sqrt(math.log1p(cv2))
        if sigma == 0:
            order = np.argsort(factors)
            return float(factors[order][np.searchsorted(np.cumsum(weights[order]), q)])
        cdf = NormalDist().cdf

        def below(x: float) -> float:
            return sum(
                w * cdf((math.log(x / f) + sigma**2 / 2) / sigma)
                for f, w in zip(factors, weights, strict=True)
            )

        from scipy.optimize import brentq

        # The root of below(x) = q, in log x, between 10 sigma below the slowest site and above the fastest.
        low = math.log(float(factors.min())) - 10 * sigma
        high = math.log(float(factors.max())) + 10 * sigma
        if below(math.exp(high)) <= q:
            return math.exp(high)
        if below(math.exp(low)) >= q:
            return math.exp(low)
        return math.exp(brentq(lambda u: below(math.exp(u)) - q, low, high, xtol=1e-12))

    @property
    def shared_cv(self) -> float:
        """Relative spread of the job-wide time factor (site mix unless the site is fixed, node, parameters,
        shape misfit), at least as wide as makes the planner's normal ``match_quantile`` equal the
        factor's own (:meth:`shared_factor_quantile`), which is skewed when sites differ a lot."""
        check_fitted(self, "coef_")
        site = 0.0 if self.destination is not None else self.site_cv_
        moment = math.sqrt(site**2 + self.node_cv_**2 + self.param_cv_**2 + self.shape_cv_**2)
        if self.match_quantile is None:
            return moment
        from statistics import NormalDist

        q = self.match_quantile
        matched = (self.shared_factor_quantile(q) - 1.0) / NormalDist().inv_cdf(q)
        return max(moment, matched)

    def _mean(self, units: Any) -> np.ndarray:
        check_fitted(self, "coef_")
        table = units.units if hasattr(units, "units") and not isinstance(units, pl.DataFrame) else units
        if not isinstance(table, pl.DataFrame):
            raise EstimatorError(f"expected a polars units table or a Dataset, got {type(units).__name__}")
        X = design(table, self.terms_, self.feature_fill_)
        return (X @ self.coef_) * self._destination_factor()

    def predict_unit_seconds(self, units: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation (seconds) of each unit's processing time, independent part only.

        The job-wide part of the spread is :attr:`shared_cv`; the per-job overhead is
        :attr:`overhead_seconds`.
        """
        mean = self._mean(units)
        return mean, self.unit_cv_ * mean

    def predict_quantile(self, units: pl.DataFrame, q: float) -> np.ndarray:
        """Per-unit ``q``-quantile of seconds on a job of unknown speed (split-conformal, out-of-fold).

        With job-level timings only, the scores are whole-job ratios: the quantile then reflects job-wide
        speed only, not the unit's own noise.
        """
        return self._mean(units) * finite_quantile(self.scores_, q)

    def total_seconds_interval(
        self, units: pl.DataFrame, confidence: float | None = None
    ) -> tuple[float, float, float]:
        """``(low, estimate, high)`` of the expected total processing seconds of ``units``.

        A grouped-jackknife confidence interval over the reporting jobs (Student-t), covering the
        uncertainty of the coefficients and of the site mix the probes happened to see.
        """
        check_fitted(self, "coef_")
        table = units.units if hasattr(units, "units") and not isinstance(units, pl.DataFrame) else units
        sums = design(table, self.terms_, self.feature_fill_).sum(axis=0)
        factor = self._destination_factor()
        estimate = float(self.coef_ @ sums) * factor
        totals = (self.coef_folds_ @ sums) * factor
        k = totals.size
        if k < 2:
            return 0.0, estimate, math.inf
        half = t_quantile(confidence or self.confidence, k - 1) * math.sqrt(
            float(jackknife_variance(totals[:, None])[0])
        )
        return max(estimate - half, 0.0), estimate, estimate + half

    # ------------------------------------------------------------------ views
    def for_site(self, site: str) -> UnitCostModel:
        """A fitted copy predicting for jobs that run at ``site`` (its ``destination`` parameter; factor 1
        if the site was never seen). This model is left as it is; the copy shares its learned arrays."""
        check_fitted(self, "coef_")
        return copy.copy(self).set_params(destination=site)

    def summary(self) -> dict[str, Any]:
        """Fitted values as plain JSON-ready data (seconds, fractions)."""
        check_fitted(self, "coef_")
        return {
            "model": "UnitCostModel",
            "mode": self.mode_,
            "terms": dict(zip(self.terms_, self.coef_.tolist(), strict=True)),
            "seconds_per_event": self.seconds_per_event_,
            "overhead_seconds": self.overhead_seconds_,
            "unit_cv": self.unit_cv_,
            "node_cv": self.node_cv_,
            "site_cv": self.site_cv_,
            "param_cv": self.param_cv_,
            "shape_cv": self.shape_cv_,
            "shared_cv": self.shared_cv,
            "site_factors": self.site_factors_,
            "jobs": self.n_jobs_,
            "units": self.n_units_,
            "job_z_rms": self.job_z_rms_,
        }
