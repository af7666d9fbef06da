//! The ROI value model (`[roi]` in `vigil.toml`) and the incremental-value computation.
//!
//! Incremental value of a candidate (a model version, or an experiment arm) against its control:
//!
//! ```text
//! uplift per unit   = mean value per unit (candidate) − mean value per unit (control)
//! value per unit    = Σ over the unit's outcomes of value_per_outcome[name] × outcome value
//! gross value       = uplift per unit × units served by the candidate
//! incremental cost  = (cost per 1k inferences (candidate) − (control)) × candidate inferences / 1000
//! cost per 1k       = inference cost per 1k (from the events' `cost`, else `inference_cost_per_1k`)
//!                     + gpu_hours_per_1k["model/version"] × gpu_hour_cost
//! incremental value = gross value − incremental cost
//! ```
//!
//! The 95 % interval comes from the Welch interval on the uplift per unit (the experimenter's
//! frequentist engine, absolute difference), scaled by the units; costs are taken as known.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use vigil_experimenter::stats::{
    frequentist, ArmStats, DifferenceType, FrequentistConfig, SampleMoments,
};

/// `[roi]`: what outcomes are worth and what serving costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoiConfig {
    /// Currency code shown next to every amount.
    pub currency: String,
    /// Worth of one unit of an outcome's value, by outcome name (negative for bad outcomes,
    /// e.g. `churned = -120.0`; `revenue = 1.0` counts revenue at face value).
    pub value_per_outcome: BTreeMap<String, f64>,
    /// Inference cost per 1,000 inferences when events carry no `cost`.
    pub inference_cost_per_1k: f64,
    /// Price of one GPU hour.
    pub gpu_hour_cost: f64,
    /// GPU hours per 1,000 inferences, by `"model/version"`.
    pub gpu_hours_per_1k: BTreeMap<String, f64>,
    /// Control version per model (default: the lowest version name).
    pub control: BTreeMap<String, String>,
}

impl Default for RoiConfig {
    fn default() -> Self {
        RoiConfig {
            currency: "EUR".into(),
            value_per_outcome: BTreeMap::new(),
            inference_cost_per_1k: 0.0,
            gpu_hour_cost: 0.0,
            gpu_hours_per_1k: BTreeMap::new(),
            control: BTreeMap::new(),
        }
    }
}

impl RoiConfig {
    /// Checks the numbers are finite and the currency is set.
    pub fn validate(&self) -> Result<(), String> {
        if self.currency.trim().is_empty() {
            return Err("roi.currency must not be empty".into());
        }
        let finite = |what: &str, v: f64| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(format!("roi.{what} must be a finite number"))
            }
        };
        finite("inference_cost_per_1k", self.inference_cost_per_1k)?;
        finite("gpu_hour_cost", self.gpu_hour_cost)?;
        for (k, v) in &self.value_per_outcome {
            finite(&format!("value_per_outcome.{k}"), *v)?;
        }
        for (k, v) in &self.gpu_hours_per_1k {
            finite(&format!("gpu_hours_per_1k.\"{k}\""), *v)?;
            if !k.contains('/') {
                return Err(format!(
                    "roi.gpu_hours_per_1k key `{k}` must be \"model/version\""
                ));
            }
        }
        Ok(())
    }

    /// GPU cost per 1,000 inferences of `model/version`.
    pub fn gpu_cost_per_1k(&self, model: &str, version: &str) -> f64 {
        self.gpu_hours_per_1k
            .get(&format!("{model}/{version}"))
            .copied()
            .unwrap_or(0.0)
            * self.gpu_hour_cost
    }
}

/// What the store says about one arm (a version of a model, or an experiment arm).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ArmTotals {
    /// Units (each unit once, with the value of all its outcomes).
    pub units: u64,
    /// Σ value per unit.
    pub value_sum: f64,
    /// Σ (value per unit)².
    pub value_sumsq: f64,
    /// Inferences served.
    pub inferences: u64,
    /// Σ of the events' `cost`.
    pub cost: f64,
    /// Inferences that carried a `cost`.
    pub costed: u64,
}

impl ArmTotals {
    pub fn add(&mut self, o: &ArmTotals) {
        self.units += o.units;
        self.value_sum += o.value_sum;
        self.value_sumsq += o.value_sumsq;
        self.inferences += o.inferences;
        self.cost += o.cost;
        self.costed += o.costed;
    }

    pub fn mean_value(&self) -> f64 {
        if self.units == 0 {
            0.0
        } else {
            self.value_sum / self.units as f64
        }
    }

    /// Inference cost per 1,000 inferences: measured when events carry costs, else configured.
    pub fn inference_cost_per_1k(&self, cfg: &RoiConfig) -> f64 {
        if self.costed > 0 && self.inferences > 0 {
            self.cost / self.inferences as f64 * 1000.0
        } else {
            cfg.inference_cost_per_1k
        }
    }
}

/// Incremental value of a candidate against control.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Roi {
    pub units: u64,
    pub inferences: u64,
    pub uplift_per_unit: f64,
    pub uplift_ci: [f64; 2],
    pub gross_value: f64,
    pub cost_per_1k_control: f64,
    pub cost_per_1k_candidate: f64,
    pub incremental_cost: f64,
    pub incremental_value: f64,
    pub incremental_value_ci: [f64; 2],
    /// Whether the interval could be estimated (enough units with variance on both sides).
    pub estimable: bool,
}

/// Incremental value of `candidate` (served as `model/candidate_version`) against `control`.
pub fn incremental_value(
    cfg: &RoiConfig,
    model: &str,
    control_version: &str,
    control: &ArmTotals,
    candidate_version: &str,
    candidate: &ArmTotals,
) -> Roi {
    let uplift = candidate.mean_value() - control.mean_value();
    let stats = |a: &ArmTotals| {
        ArmStats::Mean(SampleMoments {
            n: a.units,
            sum: a.value_sum,
            sum_squares: a.value_sumsq,
        })
    };
    let config = FrequentistConfig {
        difference: DifferenceType::Absolute,
        ..FrequentistConfig::default()
    };
    let (ci, estimable) = match frequentist::analyze(&stats(control), &stats(candidate), &config) {
        Ok(r) if r.not_estimable.is_none() && r.ci[0].is_finite() && r.ci[1].is_finite() => {
            (r.ci, true)
        }
        _ => ([uplift, uplift], false),
    };
    let cpk_c = control.inference_cost_per_1k(cfg) + cfg.gpu_cost_per_1k(model, control_version);
    let cpk_t =
        candidate.inference_cost_per_1k(cfg) + cfg.gpu_cost_per_1k(model, candidate_version);
    let units = candidate.units as f64;
    let incremental_cost = (cpk_t - cpk_c) * candidate.inferences as f64 / 1000.0;
    let gross = uplift * units;
    Roi {
        units: candidate.units,
        inferences: candidate.inferences,
        uplift_per_unit: uplift,
        uplift_ci: ci,
        gross_value: gross,
        cost_per_1k_control: cpk_c,
        cost_per_1k_candidate: cpk_t,
        incremental_cost,
        incremental_value: gross - incremental_cost,
        incremental_value_ci: [
            ci[0] * units - incremental_cost,
            ci[1] * units - incremental_cost,
        ],
        estimable,
    }
}

/// Cumulative incremental value over time: `buckets` are `(bucket start, control, candidate)`
/// totals of units first seen in that bucket; each point is the value of everything up to it.
pub fn cumulative(
    cfg: &RoiConfig,
    model: &str,
    control_version: &str,
    candidate_version: &str,
    buckets: &[(u32, ArmTotals, ArmTotals)],
) -> Vec<(u32, Roi)> {
    let (mut c, mut t) = (ArmTotals::default(), ArmTotals::default());
    buckets
        .iter()
        .map(|(b, bc, bt)| {
            c.add(bc);
            t.add(bt);
            (
                *b,
                incremental_value(cfg, model, control_version, &c, candidate_version, &t),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RoiConfig {
        RoiConfig {
            currency: "EUR".into(),
            value_per_outcome: [("churned".to_string(), -100.0)].into_iter().collect(),
            inference_cost_per_1k: 0.5,
            gpu_hour_cost: 2.0,
            gpu_hours_per_1k: [("churn/v2".to_string(), 0.25)].into_iter().collect(),
            control: BTreeMap::new(),
        }
    }

    /// Per-unit values → totals.
    fn totals(values: &[f64], inferences: u64) -> ArmTotals {
        ArmTotals {
            units: values.len() as u64,
            value_sum: values.iter().sum(),
            value_sumsq: values.iter().map(|v| v * v).sum(),
            inferences,
            cost: 0.0,
            costed: 0,
        }
    }

    #[test]
    fn incremental_value_by_hand() {
        // Control: 2 of 10 units churn (−100 each); candidate: 1 of 10.
        let mut c = vec![0.0; 10];
        c[0] = -100.0;
        c[1] = -100.0;
        let mut t = vec![0.0; 10];
        t[0] = -100.0;
        let r = incremental_value(
            &cfg(),
            "churn",
            "v1",
            &totals(&c, 40),
            "v2",
            &totals(&t, 20),
        );
        assert!((r.uplift_per_unit - 10.0).abs() < 1e-12);
        assert!((r.gross_value - 100.0).abs() < 1e-12);
        // Costs: control 0.5/1k; candidate 0.5 + 0.25 h × 2 = 1.0/1k; 20 inferences.
        assert!((r.cost_per_1k_candidate - 1.0).abs() < 1e-12);
        assert!((r.incremental_cost - 0.01).abs() < 1e-12);
        assert!((r.incremental_value - 99.99).abs() < 1e-9);
        assert!(r.estimable);
        assert!(r.uplift_ci[0] < 10.0 && r.uplift_ci[1] > 10.0);
        assert!(
            (r.incremental_value_ci[0] - (r.uplift_ci[0] * 10.0 - 0.01)).abs() < 1e-9,
            "{r:?}"
        );
    }

    #[test]
    fn measured_costs_win_over_configured_ones() {
        let mut a = totals(&[1.0, 2.0], 4000);
        a.cost = 1.6;
        a.costed = 4000;
        assert!((a.inference_cost_per_1k(&cfg()) - 0.4).abs() < 1e-12);
        a.costed = 0;
        assert_eq!(a.inference_cost_per_1k(&cfg()), 0.5);
    }

    #[test]
    fn cumulative_ends_at_the_total() {
        let b1 = (100, totals(&[0.0, -100.0], 4), totals(&[0.0, 0.0], 4));
        let b2 = (200, totals(&[0.0, 0.0], 4), totals(&[-100.0, 0.0, 0.0], 6));
        let series = cumulative(&cfg(), "churn", "v1", "v2", &[b1, b2]);
        let mut c = b1.1;
        c.add(&b2.1);
        let mut t = b1.2;
        t.add(&b2.2);
        let total = incremental_value(&cfg(), "churn", "v1", &c, "v2", &t);
        assert_eq!(series.len(), 2);
        assert_eq!(series[1].1, total);
    }

    #[test]
    fn empty_arms_are_not_estimable_and_zero() {
        let r = incremental_value(
            &RoiConfig::default(),
            "m",
            "a",
            &ArmTotals::default(),
            "b",
            &ArmTotals::default(),
        );
        assert_eq!(r.incremental_value, 0.0);
        assert!(!r.estimable);
    }

    #[test]
    fn validates_config() {
        assert!(cfg().validate().is_ok());
        let mut bad = cfg();
        bad.gpu_hours_per_1k.insert("churn".into(), 1.0);
        assert!(bad.validate().unwrap_err().contains("model/version"));
    }
}
