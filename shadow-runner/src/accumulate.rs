//! Streaming comparison of one candidate with production over replayed inputs: counts, sums and
//! bounded reservoirs, so a replay of any length uses bounded memory and its state can be saved
//! in a checkpoint (serde) and resumed. Pure: no I/O.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::compare::ShadowPolicy;
use crate::stats::{
    paired_accuracy_delta, paired_f1_delta, quantiles, DeltaCi, PairedCounts, Reservoir,
};

/// Reservoir size of a whole-run accumulator.
pub const TOTAL_SAMPLE: usize = 20_000;
/// Reservoir size of a time-bucket accumulator.
pub const BUCKET_SAMPLE: usize = 2_000;
/// Bootstrap resamples for the macro-F1 interval.
pub const BOOTSTRAP_RESAMPLES: usize = 400;
/// Confidence level of the reported intervals.
pub const CONFIDENCE: f64 = 0.95;

/// What both models said about one input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation<'a> {
    /// Production's label and winning score, as re-computed by the replay.
    pub prod: (&'a str, f32),
    /// The candidate's label and winning score.
    pub cand: (&'a str, f32),
    /// Production's label as logged when the request was served (empty: none logged).
    pub logged: &'a str,
    /// Ground truth from an outcome event, if any.
    pub truth: Option<&'a str>,
    /// Cosine of the two models' embeddings (None when their dimensions differ).
    pub cosine: Option<f64>,
}

/// Accumulated comparison of one candidate with production.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accumulator {
    /// Inputs seen.
    pub n: u64,
    /// Inputs where the labels agree.
    pub agree: u64,
    /// Inputs with a logged production label.
    pub replay_n: u64,
    /// ... that the re-run production model reproduced.
    pub replay_agree: u64,
    /// Per label: (production count, candidate count).
    pub labels: BTreeMap<String, (u64, u64)>,
    /// Sum of candidate − production winning scores.
    pub score_delta_sum: f64,
    /// Sample of those deltas.
    pub score_deltas: Reservoir<f32>,
    /// Sum of embedding cosines and how many there were.
    pub cosine_sum: f64,
    /// Inputs with a cosine.
    pub cosine_n: u64,
    /// Sample of the cosines.
    pub cosines: Reservoir<f32>,
    /// Paired correctness on labelled inputs.
    pub paired: PairedCounts,
    /// Sample of labelled inputs as (truth, production, candidate) class ids into `classes`.
    pub labelled: Reservoir<(u32, u32, u32)>,
    /// Class names by id (labelled inputs only).
    pub classes: Vec<String>,
    #[serde(skip)]
    class_ids: HashMap<String, u32>,
    /// Seconds production's model spent (encoder + head), and on how many inputs.
    pub prod_secs: f64,
    /// Seconds the candidate's model spent.
    pub cand_secs: f64,
    /// Inputs timed.
    pub timed: u64,
}

/// A finished comparison, ready for the store and reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Inputs compared.
    pub n: u64,
    /// Label agreement with production.
    pub agreement: f64,
    /// Share of logged production labels the replayed production model reproduced (NaN: none).
    pub replay_agreement: f64,
    /// Mean of candidate − production winning-class score.
    pub score_delta_mean: f64,
    /// 5th, 50th and 95th percentiles of that delta.
    pub score_delta_q: [f64; 3],
    /// Mean embedding cosine (NaN when dims differ).
    pub cosine_mean: f64,
    /// 5th percentile of the cosine.
    pub cosine_p05: f64,
    /// Label whose share moved most, and by how much (candidate − production share).
    pub top_shift: (String, f64),
    /// Labelled inputs.
    pub labelled: u64,
    /// Accuracy of production and candidate on labelled inputs.
    pub accuracy: (f64, f64),
    /// Paired accuracy delta (candidate − production).
    pub accuracy_delta: DeltaCi,
    /// Macro F1 of production and candidate (on the labelled sample).
    pub f1: (f64, f64),
    /// Paired macro-F1 delta (bootstrap).
    pub f1_delta: DeltaCi,
    /// Milliseconds per input of production and candidate (model time only).
    pub ms_per_input: (f64, f64),
    /// Candidate inputs per second (model time only).
    pub cand_inputs_per_sec: f64,
    /// `acceptable`, `rejected` or `better`.
    pub verdict: String,
    /// Why.
    pub reasons: Vec<String>,
}

impl Accumulator {
    /// An empty accumulator whose reservoirs keep `sample` items.
    pub fn new(sample: usize, seed: u64) -> Self {
        Self {
            n: 0,
            agree: 0,
            replay_n: 0,
            replay_agree: 0,
            labels: BTreeMap::new(),
            score_delta_sum: 0.0,
            score_deltas: Reservoir::new(sample, seed),
            cosine_sum: 0.0,
            cosine_n: 0,
            cosines: Reservoir::new(sample, seed ^ 0x5555),
            paired: PairedCounts::default(),
            labelled: Reservoir::new(sample, seed ^ 0xAAAA),
            classes: Vec::new(),
            class_ids: HashMap::new(),
            prod_secs: 0.0,
            cand_secs: 0.0,
            timed: 0,
        }
    }

    fn class_id(&mut self, name: &str) -> u32 {
        if self.class_ids.len() != self.classes.len() {
            // Restored from a checkpoint: rebuild the index.
            self.class_ids = self
                .classes
                .iter()
                .enumerate()
                .map(|(i, c)| (c.clone(), i as u32))
                .collect();
        }
        if let Some(&id) = self.class_ids.get(name) {
            return id;
        }
        let id = self.classes.len() as u32;
        self.classes.push(name.to_string());
        self.class_ids.insert(name.to_string(), id);
        id
    }

    /// Adds one input.
    pub fn observe(&mut self, o: &Observation<'_>) {
        self.n += 1;
        let (pl, ps) = o.prod;
        let (cl, cs) = o.cand;
        if pl == cl {
            self.agree += 1;
        }
        if !o.logged.is_empty() {
            self.replay_n += 1;
            if o.logged == pl {
                self.replay_agree += 1;
            }
        }
        self.labels.entry(pl.to_string()).or_default().0 += 1;
        self.labels.entry(cl.to_string()).or_default().1 += 1;
        let delta = cs - ps;
        self.score_delta_sum += f64::from(delta);
        self.score_deltas.push(delta);
        if let Some(c) = o.cosine {
            self.cosine_sum += c;
            self.cosine_n += 1;
            self.cosines.push(c as f32);
        }
        if let Some(t) = o.truth.filter(|t| !t.is_empty()) {
            self.paired.add(t == pl, t == cl);
            let ids = (self.class_id(t), self.class_id(pl), self.class_id(cl));
            self.labelled.push(ids);
        }
    }

    /// Adds model time: `prod` and `cand` seconds spent on `inputs` inputs.
    pub fn add_time(&mut self, prod: f64, cand: f64, inputs: u64) {
        self.prod_secs += prod;
        self.cand_secs += cand;
        self.timed += inputs;
    }

    /// Summarises the comparison and judges it against `policy`. A candidate is `rejected` when
    /// it agrees too little with production, moves a label's share too much, or is less
    /// accurate with confidence; `better` when it is more accurate than production by more
    /// than `policy.better_margin` with confidence and otherwise acceptable.
    pub fn summary(&self, policy: &ShadowPolicy, min_labelled: u64) -> Summary {
        let n = self.n.max(1) as f64;
        let agreement = self.agree as f64 / n;
        let replay_agreement = if self.replay_n == 0 {
            f64::NAN
        } else {
            self.replay_agree as f64 / self.replay_n as f64
        };
        let deltas: Vec<f64> = self
            .score_deltas
            .items()
            .iter()
            .map(|&d| f64::from(d))
            .collect();
        let dq = quantiles(&deltas, &[0.05, 0.5, 0.95]);
        let cos: Vec<f64> = self.cosines.items().iter().map(|&c| f64::from(c)).collect();
        let cosine_p05 = quantiles(&cos, &[0.05])[0];
        let top_shift = self
            .labels
            .iter()
            .map(|(l, &(p, c))| (l.clone(), (c as f64 - p as f64) / n))
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()).then_with(|| b.0.cmp(&a.0)))
            .unwrap_or_default();
        let accuracy_delta = paired_accuracy_delta(&self.paired, CONFIDENCE);
        let sample = self.labelled.items();
        let truth: Vec<u32> = sample.iter().map(|s| s.0).collect();
        let prod: Vec<u32> = sample.iter().map(|s| s.1).collect();
        let cand: Vec<u32> = sample.iter().map(|s| s.2).collect();
        let f1_delta = paired_f1_delta(
            &truth,
            &prod,
            &cand,
            CONFIDENCE,
            BOOTSTRAP_RESAMPLES,
            0x5EED,
        );
        let f1 = (
            crate::stats::macro_f1(&truth, &prod),
            crate::stats::macro_f1(&truth, &cand),
        );
        let timed = self.timed.max(1) as f64;
        let ms_per_input = (
            self.prod_secs * 1000.0 / timed,
            self.cand_secs * 1000.0 / timed,
        );
        let cand_inputs_per_sec = if self.cand_secs > 0.0 {
            self.timed as f64 / self.cand_secs
        } else {
            f64::NAN
        };

        let mut reasons = Vec::new();
        if agreement < policy.min_agreement {
            reasons.push(format!(
                "label agreement {:.1}% is below {:.1}%",
                agreement * 100.0,
                policy.min_agreement * 100.0
            ));
        }
        if top_shift.1.abs() > policy.max_label_shift {
            reasons.push(format!(
                "share of `{}` moves by {:+.1} points",
                top_shift.0,
                top_shift.1 * 100.0
            ));
        }
        let enough_labels = self.paired.n() >= min_labelled;
        if enough_labels && accuracy_delta.worse(0.0) {
            reasons.push(format!(
                "accuracy {:+.1} points vs production (95% CI {:+.1}..{:+.1}) on {} labelled inputs",
                accuracy_delta.delta * 100.0,
                accuracy_delta.low * 100.0,
                accuracy_delta.high * 100.0,
                accuracy_delta.n
            ));
        }
        let verdict = if !reasons.is_empty() {
            "rejected"
        } else if enough_labels && accuracy_delta.better(policy.better_margin) {
            reasons.push(format!(
                "accuracy {:+.1} points vs production (95% CI {:+.1}..{:+.1}), above the {:.1}-point margin",
                accuracy_delta.delta * 100.0,
                accuracy_delta.low * 100.0,
                accuracy_delta.high * 100.0,
                policy.better_margin * 100.0
            ));
            "better"
        } else {
            "acceptable"
        };
        Summary {
            n: self.n,
            agreement,
            replay_agreement,
            score_delta_mean: self.score_delta_sum / n,
            score_delta_q: [dq[0], dq[1], dq[2]],
            cosine_mean: if self.cosine_n == 0 {
                f64::NAN
            } else {
                self.cosine_sum / self.cosine_n as f64
            },
            cosine_p05,
            top_shift,
            labelled: self.paired.n(),
            accuracy: (self.paired.prod_accuracy(), self.paired.cand_accuracy()),
            accuracy_delta,
            f1,
            f1_delta,
            ms_per_input,
            cand_inputs_per_sec,
            verdict: verdict.to_string(),
            reasons,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs<'a>(p: &'a str, c: &'a str, truth: Option<&'a str>) -> Observation<'a> {
        Observation {
            prod: (p, 0.9),
            cand: (c, 0.6),
            logged: p,
            truth,
            cosine: Some(0.5),
        }
    }

    #[test]
    fn agreement_shift_and_deltas() {
        let mut a = Accumulator::new(100, 1);
        for _ in 0..6 {
            a.observe(&obs("x", "x", None));
        }
        for _ in 0..4 {
            a.observe(&obs("x", "oos", None));
        }
        a.add_time(1.0, 0.5, 10);
        let s = a.summary(&ShadowPolicy::default(), 10);
        assert_eq!(s.n, 10);
        assert!((s.agreement - 0.6).abs() < 1e-12);
        assert!((s.replay_agreement - 1.0).abs() < 1e-12);
        assert_eq!(s.top_shift.0, "oos");
        assert!((s.top_shift.1 - 0.4).abs() < 1e-12);
        assert!((s.score_delta_mean + 0.3).abs() < 1e-6);
        assert!((s.score_delta_q[1] + 0.3).abs() < 1e-6);
        assert!((s.cosine_mean - 0.5).abs() < 1e-12);
        assert_eq!(s.ms_per_input, (100.0, 50.0));
        assert!((s.cand_inputs_per_sec - 20.0).abs() < 1e-9);
        assert_eq!(s.verdict, "rejected");
        assert_eq!(s.reasons.len(), 2, "{:?}", s.reasons);
        assert_eq!(s.labelled, 0);
        assert!(s.accuracy_delta.delta.is_nan());
    }

    #[test]
    fn labelled_inputs_give_paired_deltas_and_verdicts() {
        // Candidate fixes 30 of production's errors and breaks 2: better with confidence.
        let mut a = Accumulator::new(1000, 1);
        for i in 0..400 {
            let (p, c) = match i {
                0..=29 => ("b", "a"),
                30..=31 => ("a", "b"),
                _ => ("a", "a"),
            };
            a.observe(&obs(p, c, Some("a")));
        }
        let policy = ShadowPolicy {
            min_agreement: 0.5,
            max_label_shift: 0.5,
            better_margin: 0.01,
        };
        let s = a.summary(&policy, 100);
        assert_eq!(s.labelled, 400);
        assert!((s.accuracy.0 - 370.0 / 400.0).abs() < 1e-12);
        assert!((s.accuracy.1 - 398.0 / 400.0).abs() < 1e-12);
        assert!((s.accuracy_delta.delta - 28.0 / 400.0).abs() < 1e-12);
        assert!(s.f1_delta.delta > 0.0 && s.f1_delta.low <= s.f1_delta.delta);
        assert_eq!(s.verdict, "better", "{:?}", s.reasons);
        // Too few labels: no accuracy verdict.
        assert_eq!(a.summary(&policy, 1000).verdict, "acceptable");
    }

    #[test]
    fn state_survives_a_checkpoint_round_trip() {
        let mut a = Accumulator::new(100, 1);
        a.observe(&obs("x", "y", Some("x")));
        let json = serde_json::to_string(&a).expect("serialize");
        let mut b: Accumulator = serde_json::from_str(&json).expect("deserialize");
        b.observe(&obs("y", "y", Some("y")));
        a.observe(&obs("y", "y", Some("y")));
        assert_eq!(a.classes, b.classes);
        assert_eq!(a.labelled.items(), b.labelled.items());
        assert_eq!(a.paired, b.paired);
    }
}
