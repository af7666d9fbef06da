//! Comparing a candidate's outputs with production's on the same inputs.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::registry::ModelOutputs;

/// How many label flips a report keeps.
pub const TOP_FLIPS: usize = 10;

/// Inputs that production labelled `production` and the candidate `candidate`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelFlip {
    /// Production's label.
    pub production: String,
    /// Candidate's label.
    pub candidate: String,
    /// Number of inputs.
    pub count: usize,
}

/// How often a label is predicted by each model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelShift {
    /// The label.
    pub label: String,
    /// Inputs production gave this label.
    pub production_count: usize,
    /// Inputs the candidate gave this label.
    pub candidate_count: usize,
    /// Candidate share minus production share (-1..=1).
    pub shift: f64,
}

/// Result of a shadow comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowReport {
    /// `name@version` of production.
    pub production: String,
    /// `name@version` of the candidate.
    pub candidate: String,
    /// Number of inputs compared.
    pub inputs: usize,
    /// Share of inputs with the same label (None without heads on both sides).
    pub agreement_rate: Option<f64>,
    /// The most frequent (production label, candidate label) disagreements, most frequent first.
    pub top_flips: Vec<LabelFlip>,
    /// Per-label share change, largest absolute shift first (labels with no change omitted).
    pub label_shift: Vec<LabelShift>,
    /// Mean cosine similarity of the embeddings (None when dimensions differ). Different
    /// encoders live in different spaces: judge them on labels, not on this.
    pub mean_cosine: Option<f64>,
}

/// Thresholds a candidate must meet to be considered safe.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShadowPolicy {
    /// Minimum label agreement with production.
    pub min_agreement: f64,
    /// Maximum absolute change of any label's share.
    pub max_label_shift: f64,
    /// Accuracy gain (lower end of the 95% interval) above which a candidate is `better`.
    pub better_margin: f64,
}

impl Default for ShadowPolicy {
    fn default() -> Self {
        Self {
            min_agreement: 0.8,
            max_label_shift: 0.1,
            better_margin: 0.01,
        }
    }
}

/// Outcome of [`ShadowReport::verdict`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Verdict {
    /// Within the policy.
    Acceptable,
    /// Outside the policy, with reasons.
    Rejected(Vec<String>),
}

impl ShadowReport {
    /// Judges the report against `policy`.
    pub fn verdict(&self, policy: &ShadowPolicy) -> Verdict {
        let mut reasons = Vec::new();
        match self.agreement_rate {
            Some(rate) if rate < policy.min_agreement => reasons.push(format!(
                "label agreement {:.1}% is below {:.1}%",
                rate * 100.0,
                policy.min_agreement * 100.0
            )),
            Some(_) => {}
            None => reasons.push("no labels to compare (a head is missing)".to_string()),
        }
        if let Some(worst) = self.label_shift.first() {
            if worst.shift.abs() > policy.max_label_shift {
                reasons.push(format!(
                    "share of `{}` moves by {:+.1} points ({} -> {} of {})",
                    worst.label,
                    worst.shift * 100.0,
                    worst.production_count,
                    worst.candidate_count,
                    self.inputs
                ));
            }
        }
        if reasons.is_empty() {
            Verdict::Acceptable
        } else {
            Verdict::Rejected(reasons)
        }
    }
}

/// Compares `candidate` with `production` (outputs for the same inputs, in the same order).
pub fn compare(production: &ModelOutputs, candidate: &ModelOutputs) -> Result<ShadowReport> {
    let n = production.embeddings.len();
    if candidate.embeddings.len() != n {
        return Err(Error::Incomparable(format!(
            "production has {n} outputs, the candidate {}",
            candidate.embeddings.len()
        )));
    }
    let mean_cosine = mean_cosine(&production.embeddings, &candidate.embeddings);

    let (mut agreement_rate, mut top_flips, mut label_shift) = (None, Vec::new(), Vec::new());
    if let (Some(p), Some(c)) = (&production.predictions, &candidate.predictions) {
        if p.len() != n || c.len() != n {
            return Err(Error::Incomparable(
                "predictions and embeddings differ in number".to_string(),
            ));
        }
        let mut agree = 0usize;
        let mut flips: HashMap<(&str, &str), usize> = HashMap::new();
        let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (a, b) in p.iter().zip(c) {
            counts.entry(&a.label).or_default().0 += 1;
            counts.entry(&b.label).or_default().1 += 1;
            if a.label == b.label {
                agree += 1;
            } else {
                *flips.entry((&a.label, &b.label)).or_default() += 1;
            }
        }
        let denom = n.max(1) as f64;
        agreement_rate = Some(agree as f64 / denom);
        let mut flips: Vec<LabelFlip> = flips
            .into_iter()
            .map(|((from, to), count)| LabelFlip {
                production: from.to_string(),
                candidate: to.to_string(),
                count,
            })
            .collect();
        flips.sort_by(|x, y| {
            y.count
                .cmp(&x.count)
                .then_with(|| x.production.cmp(&y.production))
                .then_with(|| x.candidate.cmp(&y.candidate))
        });
        flips.truncate(TOP_FLIPS);
        top_flips = flips;
        label_shift = counts
            .into_iter()
            .filter(|(_, (a, b))| a != b)
            .map(|(label, (a, b))| LabelShift {
                label: label.to_string(),
                production_count: a,
                candidate_count: b,
                shift: (b as f64 - a as f64) / denom,
            })
            .collect();
        label_shift.sort_by(|x, y| {
            y.shift
                .abs()
                .total_cmp(&x.shift.abs())
                .then_with(|| x.label.cmp(&y.label))
        });
    }
    Ok(ShadowReport {
        production: format!("{}@{}", production.model, production.version),
        candidate: format!("{}@{}", candidate.model, candidate.version),
        inputs: n,
        agreement_rate,
        top_flips,
        label_shift,
        mean_cosine,
    })
}

fn mean_cosine(a: &[Vec<f32>], b: &[Vec<f32>]) -> Option<f64> {
    if a.is_empty() || a.iter().zip(b).any(|(x, y)| x.len() != y.len()) {
        return None;
    }
    let total: f64 = a.iter().zip(b).map(|(x, y)| cosine(x, y)).sum();
    Some(total / a.len() as f64)
}

/// Cosine similarity (0 when either vector is zero).
pub fn cosine(x: &[f32], y: &[f32]) -> f64 {
    let (mut dot, mut nx, mut ny) = (0f64, 0f64, 0f64);
    for (&a, &b) in x.iter().zip(y) {
        let (a, b) = (f64::from(a), f64::from(b));
        dot += a * b;
        nx += a * a;
        ny += b * b;
    }
    if nx == 0.0 || ny == 0.0 {
        0.0
    } else {
        dot / (nx.sqrt() * ny.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::Prediction;

    fn outputs(version: &str, labels: &[&str], emb: Vec<Vec<f32>>) -> ModelOutputs {
        ModelOutputs {
            model: "intent".into(),
            version: version.into(),
            embeddings: emb,
            predictions: Some(
                labels
                    .iter()
                    .map(|l| Prediction {
                        index: 0,
                        label: (*l).to_string(),
                        score: 1.0,
                        scores: vec![1.0],
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn counts_agreement_flips_and_shift() {
        let e = vec![vec![1.0, 0.0]; 4];
        let p = outputs("a", &["x", "x", "y", "z"], e.clone());
        let c = outputs("b", &["x", "oos", "oos", "z"], e);
        let r = compare(&p, &c).expect("compare");
        assert_eq!(r.inputs, 4);
        assert_eq!(r.agreement_rate, Some(0.5));
        assert_eq!(r.top_flips.len(), 2);
        assert_eq!(r.label_shift[0].label, "oos");
        assert!((r.label_shift[0].shift - 0.5).abs() < 1e-12);
        assert_eq!(r.mean_cosine, Some(1.0));
        assert_eq!(r.production, "intent@a");
        match r.verdict(&ShadowPolicy::default()) {
            Verdict::Rejected(reasons) => assert_eq!(reasons.len(), 2, "{reasons:?}"),
            Verdict::Acceptable => panic!("should be rejected"),
        }
        let same = compare(&p, &p).expect("compare");
        assert_eq!(same.verdict(&ShadowPolicy::default()), Verdict::Acceptable);
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let p = outputs("a", &["x"], vec![vec![1.0]]);
        let c = outputs("b", &["x", "y"], vec![vec![1.0], vec![1.0]]);
        assert!(compare(&p, &c).is_err());
    }

    #[test]
    fn cosine_of_different_dims_is_none() {
        assert_eq!(mean_cosine(&[vec![1.0, 0.0]], &[vec![1.0]]), None);
        assert!((cosine(&[1.0, 0.0], &[0.0, 2.0])).abs() < 1e-12);
    }
}
