"""The default cost model: seconds per unit from its events and features, with calibrated uncertainty.

Model. A unit ``i`` processed by job ``j`` takes ``t_ij = S_j * g(x_i) * e_ij`` seconds, where

* ``g(x) = sum_k b_k x_k`` is linear with non-negative coefficients in the *terms* ``unit`` (a fixed cost per
  lumi), ``events``, ``events*f`` and ``events*f^2`` for every per-event feature ``f`` (pileup, ...) and
  ``bytes``;
* ``S_j`` is a job-wide time factor: the site's factor times a node jitter (mean 1 within a site);
* ``e_ij`` is unit noise with mean 1 and coefficient of variation ``unit_cv_``.

Fit (:meth:`UnitCostModel.fit`):

1. *Shape*: the coefficients ``b`` come from a Huber-robust, relative-error, non-negative regression
   (iteratively re-weighted non-negative least squares). With per-unit timings each unit is a row and
   the job factors ``S_j`` are estimated alternately (ratio of the job's seconds to its predicted
   seconds), so site and node speed do not blur the shape. With job-level timing only (CMSSW FJR), each
   job is a row whose terms are the sums over its units.
2. *Level*: the coefficients are rescaled by the ratio estimator ``sum(seconds) / sum(predicted)`` over
   every measurement, so predictions are unbiased for the mean even though the shape fit down-weights
   heavy tails.
3. *Sites*: each site's factor is its own ratio estimate, shrunk toward 1 by empirical Bayes (weight
   ``between / (between + sampling variance)``), so a site seen in one or two jobs stays near 1.
4. *Spread*, as relative standard deviations: unit noise ``unit_cv_`` from the within-job residuals (each
   job's squared residuals against its expectation for that job's units, a method of moments that stays
   unbiased for jobs of few units); node jitter ``node_cv_`` from the spread of the jobs' mean log ratios
   within sites minus what unit noise explains, inverse-variance weighted so that jobs of many units count
   most (with job-level timing only, the whole spread of the job ratios within sites); between-site
   spread ``site_cv_``; parameter uncertainty ``param_cv_`` from a grouped jackknife over jobs (refits
   with each job, or group of jobs, left out); and ``shape_cv_``, the misfit of the model's shape, from
   out-of-fold ratios of seconds to predictions in classes of predicted seconds per event (a job of
   similar lumis inherits its class's bias). Job-level variances are scaled by ``nu / (nu - 2)`` for
   their ``nu`` degrees of freedom (a Student-t predictive). For a job landing on an unknown site the
   planner's shared factor has ``shared_cv**2 = site_cv_**2 + node_cv_**2 + param_cv_**2 + shape_cv_**2``.
5. *Quantiles*: out-of-fold scores ``seconds / predicted`` from the same jackknife refits give
   split-conformal per-unit quantiles (:meth:`predict_quantile`); the jackknife gives a confidence
   interval of any total (:meth:`total_seconds_interval`).
6. *Censoring*: units cut off while they ran and jobs still running only bound their seconds from below.
   Their ratios to the predictions, with the exact ones, give a self-consistent distribution of ratios
   that imputes their seconds: the coefficients (and each jackknife refit) are re-levelled, the spread
   widened, and the censored units take part in the quantile scores.

Predictions are for a job whose site is unknown (the probes' site mix, or ``site_weights``), or for the
site named by the ``destination`` parameter; :meth:`for_site` gives a fitted copy for a known destination.

The model follows scikit-learn's estimator contract (it is a :class:`sklearn.base.BaseEstimator`): the
constructor only stores its parameters, :meth:`fit` sets the learned attributes (ending in ``_``) and
returns ``self``, and ``get_params``/``set_params``/``sklearn.base.clone`` work.

This module holds the estimator; its fit is assembled from private modules: the terms and regression rows
(:mod:`~autosplit.estimators._cost_rows`), the coefficient fit, jackknife and shape misfit
(:mod:`~autosplit.estimators._cost_fit`), the censored measurements as rows
(:mod:`~autosplit.estimators._censored_rows`) and their likelihood (:mod:`~autosplit.estimators._censored_fit`,
on :mod:`~autosplit.estimators._censoring`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator

from autosplit._quantile import cv_for_quantile
from autosplit.estimators._base import (
    EstimatorError,
    as_reports,
    check_fitted,
    design,
    finite_quantile,
    fold_ids,
    jackknife_variance,
    overhead_from,
    t_quantile,
)
from autosplit.estimators._censored_fit import censored_fit
from autosplit.estimators._censored_rows import censored_rows
from autosplit.estimators._cost_fit import (
    extra_folds,
    fit_coef,
    jackknife,
    node_noise_cv2,
    shape_misfit,
    unit_noise_cv2,
)
from autosplit.estimators._cost_rows import cost_rows
from autosplit.jobreport import JobReport

#: widest relative variance a job factor may have in a quantile (cv 100: beyond it nothing is learned)
_MAX_CV2 = 1.0e4


def _meaningful(predicted: np.ndarray, floor: float = 1e-2) -> np.ndarray:
    """Predictions a ratio can be taken to: positive and at least ``floor`` of the median positive one.

    A unit predicted at almost nothing (a lumi without events) that measured a few seconds has a ratio of
    millions: as a conformal score it would make every unit's upper quantile absurd, while its seconds
    hardly matter.
    """
    positive = predicted[predicted > 0]
    if positive.size == 0:
        return predicted > 0
    return predicted >= floor * float(np.median(positive))


def _safe_exp(u: float) -> float:
    """``exp(u)`` within float range (the quantile of an extremely wide factor stays finite)."""
    return math.exp(min(max(u, -700.0), 700.0))


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
        When the job-wide time factor is skewed (a few slow sites, lognormal node speeds), :attr:`shared_cv`
        is widened so that the planner's quantile at this level (:mod:`autosplit._quantile`: lognormal, at
        least normal) equals the factor's own quantile (``None``: plain moments). Use the planner's
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
        Diagnostic: root-mean-square of out-of-fold job z-scores under a normal model
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
    def fit(
        self, reports: Iterable[JobReport], units: Any = None, censored: pl.DataFrame | None = None
    ) -> UnitCostModel:
        """Learn from job reports (probe or processing jobs); returns ``self``.

        ``units`` (a Dataset or its units table) supplies unit features by (run, lumi) for reports that
        carry only run and lumi (CMSSW FJRs), and for censored units. Reports with per-unit seconds
        contribute every processed unit (whatever the job's exit); reports with job-level timing only
        contribute when the job succeeded and measured its processing time and events.

        Right-censored measurements (module docstring, step 6) come from two places:

        * every report's ``in_progress`` unit: it took at least ``seconds`` at its job's speed (looked up
          in ``units``; left out, with a warning, when ``units`` is not given);
        * ``censored``: a polars DataFrame of jobs still running, one row per unit, with columns ``group``
          (int, one value per job), ``run``, ``lumi`` (the unit, looked up in ``units``),
          ``seconds_at_least`` (float, the same on every row of a group: the group's units have taken at
          least this many seconds in total, e.g. the time its job has been running) and optionally
          ``site`` (str, where it runs; unknown sites count with factor 1).
        """
        reports = as_reports(reports)
        rows, terms, used, self.feature_fill_ = cost_rows(
            reports,
            units,
            features=self.features,
            per_unit_cost=self.per_unit_cost,
            quadratic=self.quadratic,
            use_bytes=self.use_bytes,
        )
        n_jobs = rows.n_jobs
        # Called from here, so that its warnings (stacklevel=3) point at the caller of fit.
        cens = censored_rows(reports, units, censored, used, terms, self.feature_fill_)
        coef = fit_coef(rows.Xu, rows.yu, rows.ju, rows.Xj, rows.yj, n_jobs, self.huber_k, rounds=3)
        groups = fold_ids(n_jobs, self.max_folds, self.random_state)
        extra_groups, n_folds = extra_folds(
            int(groups.max()) + 1, cens.n_extra, self.max_folds, self.random_state
        )
        coef_folds, unit_oof, job_oof = jackknife(rows, coef, groups, self.huber_k, n_folds)

        # ---------------------------------------------------------------- job totals
        observed, predicted = rows.job_totals(coef)
        ratio = observed / np.maximum(predicted, 1e-300)
        mu = rows.Xu @ coef
        herfindahl = np.zeros(n_jobs)
        if rows.yu.size:
            per_unit_jobs = np.unique(rows.ju)
            squares = np.bincount(rows.ju, weights=mu**2, minlength=n_jobs)
            # A job whose units all predict 0 s (zero-event lumis) carries no information on unit noise.
            informative = per_unit_jobs[predicted[per_unit_jobs] > 0]
            herfindahl[informative] = squares[informative] / predicted[informative] ** 2

        # ---------------------------------------------------------------- sites, units and nodes
        sites = used["site"].to_list() if self.site_factors else [""] * n_jobs
        names = sorted(set(sites))
        site_of = np.array([names.index(s) for s in sites], dtype=np.int64)
        n_sites = len(names)
        site_pred = np.bincount(site_of, weights=predicted, minlength=n_sites)
        raw = np.bincount(site_of, weights=observed, minlength=n_sites) / site_pred
        unit_cv2 = unit_noise_cv2(rows.yu, rows.ju, mu, ratio, raw[site_of], len(terms))
        # A job predicted at 0 s (only zero-event lumis, or features the fit gave no weight) that still
        # measured seconds has no finite ratio: it says nothing about the node spread and is left out.
        spread_jobs = (predicted > 0) & np.isfinite(ratio) & (raw[site_of] > 0)
        relative = ratio[spread_jobs] / raw[site_of][spread_jobs] - 1.0
        positive = (rows.yu > 0) & (mu > 0)
        node_cv2 = node_noise_cv2(
            rows.ju[positive],
            np.log(rows.yu[positive] / mu[positive]),
            site_of,
            relative,
            site_of[spread_jobs],
            herfindahl[spread_jobs],
            unit_cv2,
        )
        # The residuals' expectation took each job's speed as its site's level; its mean square is
        # level**2 * (1 + node_cv2).
        unit_cv2 /= 1.0 + node_cv2
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

        # ---------------------------------------------------------------- censored measurements
        censoring = None
        if not cens.empty:
            # Ratios are taken at each job's site speed (its site's factor); a node's own speed stays in
            # the unit noise: a job's ratio measured on the same few units would hide their tail.
            censoring = censored_fit(
                rows,
                coef,
                coef_folds,
                np.concatenate([groups, extra_groups]),
                cens,
                factors[site_of],
                dict(zip(names, factors.tolist(), strict=True)) if self.site_factors else {},
            )
        if censoring is not None:
            coef = coef * censoring.level
            coef_folds = coef_folds * censoring.level_folds[:, None]
            if rows.yu.size:
                unit_cv2 += censoring.extra_cv2
            else:
                node_cv2 += censoring.extra_cv2
        level = censoring.level if censoring is not None else 1.0

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
        level_cv2 = censoring.level_cv2 if censoring is not None else 0.0
        param_cv2 += level_cv2
        if rows.yu.size:
            # Each unit's seconds at its job's speed. A job that measured no seconds (only zero-event
            # lumis) has speed 0: its units say nothing about the shape and are left out.
            speed = ratio[rows.ju]
            timed = speed > 0
            shape_cv2 = shape_misfit(rows.yu[timed] / speed[timed], unit_oof[timed], rows.eu[timed])
        else:
            shape_cv2 = shape_misfit(rows.yj, job_oof[rows.jj], rows.ej, min_per_class=10)

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
            scores = rows.yu / np.where(_meaningful(unit_oof), unit_oof, np.nan)
        else:
            oof = job_oof[rows.jj]
            scores = rows.yj / np.where(_meaningful(oof), oof, np.nan)
        if censoring is not None:
            # Relative to the re-levelled predictions; the censored units by draws from their posteriors.
            scores = np.concatenate([scores / level, censoring.draws / level])
        self.scores_ = np.sort(scores[np.isfinite(scores)])
        self.censoring_factor_ = level
        self.censoring_cv_ = math.sqrt(level_cv2)
        self.n_censored_units_ = censoring.n_singles if censoring is not None else 0
        self.n_censored_groups_ = censoring.n_groups if censoring is not None else 0
        events_total = float(used["events"].sum() or 0)
        self.seconds_per_event_ = float(observed.sum() / events_total) if events_total > 0 else math.nan
        # Diagnostic: out-of-fold job z-scores under a normal model (rms ~ 1 when calibrated).
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
        if not math.isfinite(cv2):
            cv2 = _MAX_CV2
        sigma = math.sqrt(math.log1p(min(cv2, _MAX_CV2)))
        if sigma == 0:
            order = np.argsort(factors)
            at = int(np.searchsorted(np.cumsum(weights[order]), q))
            return float(factors[order][min(at, factors.size - 1)])
        cdf = NormalDist().cdf

        # Work in log x throughout: exp() of a wide spread under- or overflows (a zero x has no log).
        log_f = np.log(np.maximum(factors, 1e-12))

        def below_log(u: float) -> float:
            return sum(w * cdf((u - lf + sigma**2 / 2) / sigma) for lf, w in zip(log_f, weights, strict=True))

        from scipy.optimize import brentq

        # The root of below(x) = q, in log x, between 10 sigma below the slowest site and above the fastest.
        low = float(log_f.min()) - 10 * sigma
        high = float(log_f.max()) + 10 * sigma
        if below_log(high) <= q:
            return _safe_exp(high)
        if below_log(low) >= q:
            return _safe_exp(low)
        return _safe_exp(brentq(lambda u: below_log(u) - q, low, high, xtol=1e-12))

    @property
    def shared_cv(self) -> float:
        """Relative spread of the job-wide time factor (site mix unless the site is fixed, node, parameters,
        shape misfit), at least as wide as makes the planner's quantile at ``match_quantile``
        (:func:`autosplit._quantile.payload_quantile`) equal the factor's own (:meth:`shared_factor_quantile`),
        which is skewed when sites differ a lot."""
        check_fitted(self, "coef_")
        site = 0.0 if self.destination is not None else self.site_cv_
        moment = math.sqrt(site**2 + self.node_cv_**2 + self.param_cv_**2 + self.shape_cv_**2)
        if self.match_quantile is None:
            return moment
        from statistics import NormalDist

        q = self.match_quantile
        matched = cv_for_quantile(self.shared_factor_quantile(q), NormalDist().inv_cdf(q))
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
        # Models pickled before censoring was learned have no censoring_cv_.
        censoring = getattr(self, "censoring_cv_", 0.0) * estimate
        variance = float(jackknife_variance(totals[:, None])[0]) + censoring**2
        half = t_quantile(confidence or self.confidence, k - 1) * math.sqrt(variance)
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
            "censoring": {
                "factor": getattr(self, "censoring_factor_", 1.0),
                "cv": getattr(self, "censoring_cv_", 0.0),
                "units": getattr(self, "n_censored_units_", 0),
                "groups": getattr(self, "n_censored_groups_", 0),
            },
        }
