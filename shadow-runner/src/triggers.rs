//! Retraining trigger rules and their evaluation over evidence read from the store (pure: the
//! evidence is plain data; `retrain` reads it and files the requests).

use serde::{Deserialize, Serialize};

/// What makes a rule fire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TriggerKind {
    /// The analyzer's latest window of a monitor of the model has dataset drift.
    Drift {
        /// Only this monitor (default: any monitor of the model).
        #[serde(default)]
        monitor: Option<String>,
    },
    /// Production's accuracy on labelled outcomes (latest shadow run) is below `below`.
    Performance {
        /// Accuracy threshold (0..1).
        below: f64,
        /// Labelled inputs needed before the rule can fire.
        #[serde(default = "default_min_labelled")]
        min_labelled: u64,
    },
    /// A candidate is more accurate than production by more than `margin`, with confidence
    /// (the lower end of the paired 95% interval is above `margin`).
    CandidateBetter {
        /// Accuracy margin (0..1).
        #[serde(default)]
        margin: f64,
        /// Only this candidate version (default: any).
        #[serde(default)]
        candidate: Option<String>,
        /// Labelled inputs needed before the rule can fire.
        #[serde(default = "default_min_labelled")]
        min_labelled: u64,
    },
    /// An LLM candidate's latest semantic shadow comparison (`kind = "openai"` candidates,
    /// docs/shadow.md) reached one of `verdicts`: `equivalent` (its answers match production's
    /// within `[shadow.llm_policy]`: a promotion request), `different` or `rejected` (it needs
    /// more fine-tuning: a retraining request), `inconclusive`.
    LlmCandidate {
        /// Verdicts that fire (default `["equivalent"]`).
        #[serde(default = "default_llm_verdicts")]
        verdicts: Vec<String>,
        /// Only this candidate version (default: any).
        #[serde(default)]
        candidate: Option<String>,
    },
}

fn default_min_labelled() -> u64 {
    100
}

fn default_llm_verdicts() -> Vec<String> {
    vec!["equivalent".into()]
}

/// The verdicts an LLM shadow comparison gives (`crate::llm`).
pub const LLM_VERDICTS: [&str; 4] = ["equivalent", "different", "rejected", "inconclusive"];

/// A `[[shadow.triggers]]` rule.
///
/// ```toml
/// [[shadow.triggers]]
/// name = "intent-drift"
/// model = "intent"
/// kind = "drift"
/// monitor = "intent-inputs"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerRule {
    /// Rule name (in the request and its evidence).
    pub name: String,
    /// Model the rule watches (and the retraining request is for).
    pub model: String,
    /// When it fires.
    #[serde(flatten)]
    pub kind: TriggerKind,
    /// Training window to export, ending where the evidence ends, e.g. `"7d"` (default: the
    /// evidence's own window).
    #[serde(default)]
    pub dataset_window: Option<String>,
}

impl TriggerRule {
    /// The request reason this rule files: `drift`, `performance`, `candidate_better` or `llm_candidate`.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            TriggerKind::Drift { .. } => "drift",
            TriggerKind::Performance { .. } => "performance",
            TriggerKind::CandidateBetter { .. } => "candidate_better",
            TriggerKind::LlmCandidate { .. } => "llm_candidate",
        }
    }

    /// Checks thresholds that need no data.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() || self.model.trim().is_empty() {
            return Err("a trigger needs a `name` and a `model`".into());
        }
        let bad = |what: &str, v: f64| {
            Err(format!(
                "trigger `{}`: {what} = {v} must be in 0..=1",
                self.name
            ))
        };
        match &self.kind {
            TriggerKind::Performance { below, .. } if !(0.0..=1.0).contains(below) => {
                bad("below", *below)
            }
            TriggerKind::CandidateBetter { margin, .. } if !(0.0..=1.0).contains(margin) => {
                bad("margin", *margin)
            }
            TriggerKind::LlmCandidate { verdicts, .. } => {
                if verdicts.is_empty() {
                    return Err(format!("trigger `{}`: `verdicts` is empty", self.name));
                }
                match verdicts
                    .iter()
                    .find(|v| !LLM_VERDICTS.contains(&v.as_str()))
                {
                    Some(v) => Err(format!(
                        "trigger `{}`: unknown verdict {v:?} (one of {})",
                        self.name,
                        LLM_VERDICTS.join(", ")
                    )),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }
}

/// The latest dataset-level verdict of one monitor (from `monitor_results`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftEvidence {
    /// Monitor name.
    pub monitor: String,
    /// Window of the verdict, unix seconds.
    pub window_start: u32,
    /// End of the window (exclusive).
    pub window_end: u32,
    /// Whether the dataset drifted.
    pub drift: bool,
    /// Share of drifted columns.
    pub drift_share: f64,
    /// The drifted columns.
    pub columns: Vec<String>,
}

/// The latest whole-window comparison of one candidate (from `shadow_metrics`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunEvidence {
    /// Shadow run.
    pub job_id: String,
    /// Candidate `name@version`.
    pub candidate: String,
    /// Replayed window.
    pub since: u32,
    /// End of the replayed window (exclusive).
    pub until: u32,
    /// Labelled inputs.
    pub labelled: u64,
    /// Production's accuracy on them.
    pub prod_accuracy: f64,
    /// Paired accuracy delta (candidate − production) and its 95% interval.
    pub accuracy_delta: f64,
    /// Lower end of the interval.
    pub accuracy_delta_low: f64,
    /// Upper end of the interval.
    pub accuracy_delta_high: f64,
    /// For an LLM candidate: its semantic comparison with production.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmEvidence>,
}

/// The semantic comparison of an LLM candidate's answers with production's (from the run's
/// LLM summary).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LlmEvidence {
    /// `equivalent`, `different`, `rejected` or `inconclusive`.
    pub verdict: String,
    /// Prompts both answered.
    pub answered: u64,
    /// Mean encoder cosine of the two answers (absent without answers).
    pub similarity_mean: Option<f64>,
    /// Lower bound of its 95% interval.
    pub similarity_low: Option<f64>,
    /// Upper bound.
    pub similarity_high: Option<f64>,
    /// Why the verdict.
    pub reasons: Vec<String>,
}

/// What the rules look at, for one model.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evidence {
    /// Latest verdict per monitor of the model.
    pub drift: Vec<DriftEvidence>,
    /// Latest total per candidate of the model.
    pub runs: Vec<RunEvidence>,
}

/// A rule that fired: what to file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fired {
    /// The rule.
    pub rule: String,
    /// The model.
    pub model: String,
    /// `drift`, `performance`, `candidate_better` or `llm_candidate`.
    pub reason: String,
    /// What made it fire.
    pub evidence: serde_json::Value,
    /// Training window start (unix seconds).
    pub since: u32,
    /// Training window end (exclusive).
    pub until: u32,
}

fn window(rule: &TriggerRule, since: u32, until: u32, window_secs: Option<u32>) -> (u32, u32) {
    match (rule.dataset_window.as_ref(), window_secs) {
        (Some(_), Some(w)) => (until.saturating_sub(w), until),
        _ => (since, until),
    }
}

/// Evaluates `rule` on `evidence` (of `rule.model`). `dataset_window_secs` is the parsed
/// `dataset_window`. Returns what to file, or `None`.
pub fn evaluate(
    rule: &TriggerRule,
    evidence: &Evidence,
    dataset_window_secs: Option<u32>,
) -> Option<Fired> {
    let fired = |evidence: serde_json::Value, since: u32, until: u32| {
        let (since, until) = window(rule, since, until, dataset_window_secs);
        Some(Fired {
            rule: rule.name.clone(),
            model: rule.model.clone(),
            reason: rule.reason().to_string(),
            evidence,
            since,
            until,
        })
    };
    match &rule.kind {
        TriggerKind::Drift { monitor } => {
            let hit = evidence
                .drift
                .iter()
                .filter(|d| monitor.as_ref().is_none_or(|m| *m == d.monitor))
                .filter(|d| d.drift)
                .max_by_key(|d| d.window_end)?;
            fired(
                serde_json::to_value(hit).ok()?,
                hit.window_start,
                hit.window_end,
            )
        }
        TriggerKind::Performance {
            below,
            min_labelled,
        } => {
            let run = evidence
                .runs
                .iter()
                .filter(|r| r.labelled >= *min_labelled && r.labelled > 0)
                .max_by_key(|r| r.until)?;
            if run.prod_accuracy < *below {
                let mut ev = serde_json::to_value(run).ok()?;
                ev["threshold"] = serde_json::json!(below);
                fired(ev, run.since, run.until)
            } else {
                None
            }
        }
        TriggerKind::CandidateBetter {
            margin,
            candidate,
            min_labelled,
        } => {
            let run = evidence
                .runs
                .iter()
                .filter(|r| names_candidate(candidate.as_deref(), r))
                .filter(|r| r.labelled >= *min_labelled && r.accuracy_delta_low > *margin)
                .max_by(|a, b| a.accuracy_delta_low.total_cmp(&b.accuracy_delta_low))?;
            let mut ev = serde_json::to_value(run).ok()?;
            ev["margin"] = serde_json::json!(margin);
            fired(ev, run.since, run.until)
        }
        TriggerKind::LlmCandidate {
            verdicts,
            candidate,
        } => {
            let run = evidence
                .runs
                .iter()
                .filter(|r| names_candidate(candidate.as_deref(), r))
                .filter(|r| {
                    r.llm
                        .as_ref()
                        .is_some_and(|l| verdicts.contains(&l.verdict))
                })
                .max_by_key(|r| r.until)?;
            fired(serde_json::to_value(run).ok()?, run.since, run.until)
        }
    }
}

/// Whether a rule's `candidate` (a version, or `name@version`; none: any) names `run`'s.
fn names_candidate(candidate: Option<&str>, run: &RunEvidence) -> bool {
    candidate.is_none_or(|c| run.candidate.ends_with(&format!("@{c}")) || run.candidate == c)
}

/// The id of the request `fired` files: the same model, reason and evidence window always give
/// the same id, so two evaluators racing on the same evidence write the same request.
pub fn request_id(fired: &Fired) -> String {
    format!("{}:{}:{}", fired.model, fired.reason, fired.until)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: TriggerKind) -> TriggerRule {
        TriggerRule {
            name: "r".into(),
            model: "intent".into(),
            kind,
            dataset_window: None,
        }
    }

    fn drift(monitor: &str, end: u32, drifted: bool) -> DriftEvidence {
        DriftEvidence {
            monitor: monitor.into(),
            window_start: end - 3600,
            window_end: end,
            drift: drifted,
            drift_share: if drifted { 0.8 } else { 0.0 },
            columns: vec![],
        }
    }

    fn run(cand: &str, labelled: u64, acc: f64, low: f64) -> RunEvidence {
        RunEvidence {
            job_id: "j".into(),
            candidate: format!("intent@{cand}"),
            since: 100,
            until: 200,
            labelled,
            prod_accuracy: acc,
            accuracy_delta: low + 0.02,
            accuracy_delta_low: low,
            accuracy_delta_high: low + 0.04,
            llm: None,
        }
    }

    fn llm_run(cand: &str, until: u32, verdict: &str) -> RunEvidence {
        RunEvidence {
            until,
            llm: Some(LlmEvidence {
                verdict: verdict.into(),
                answered: 40,
                similarity_mean: Some(0.9),
                similarity_low: Some(0.85),
                similarity_high: Some(0.95),
                reasons: vec!["similarity 0.900 [0.850, 0.950]".into()],
            }),
            ..run(cand, 0, 0.0, 0.0)
        }
    }

    #[test]
    fn llm_rule_fires_on_a_verdict_it_names() {
        let ready = rule(TriggerKind::LlmCandidate {
            verdicts: default_llm_verdicts(),
            candidate: None,
        });
        let ev = Evidence {
            drift: vec![],
            runs: vec![
                run("svc", 500, 0.9, 0.1), // a classifier candidate: no LLM evidence
                llm_run("ft-2", 300, "different"),
                llm_run("ft-3", 400, "equivalent"),
            ],
        };
        let f = evaluate(&ready, &ev, None).expect("fires");
        assert_eq!((f.reason.as_str(), f.until), ("llm_candidate", 400));
        assert_eq!(f.evidence["candidate"], "intent@ft-3");
        assert_eq!(f.evidence["llm"]["verdict"], "equivalent");
        assert_eq!(f.evidence["llm"]["similarity_low"], 0.85);
        // Only ft-2, which is `different`: a retraining rule fires, a promotion rule does not.
        let retrain = rule(TriggerKind::LlmCandidate {
            verdicts: vec!["different".into(), "rejected".into()],
            candidate: Some("ft-2".into()),
        });
        assert_eq!(evaluate(&retrain, &ev, None).expect("fires").until, 300);
        let only_ft2 = rule(TriggerKind::LlmCandidate {
            verdicts: default_llm_verdicts(),
            candidate: Some("ft-2".into()),
        });
        assert_eq!(evaluate(&only_ft2, &ev, None), None);
        // Classifier evidence carries no `llm` key.
        assert!(serde_json::to_value(run("svc", 1, 0.0, 0.0))
            .unwrap()
            .get("llm")
            .is_none());
    }

    #[test]
    fn llm_rule_verdicts_are_checked() {
        let bad = rule(TriggerKind::LlmCandidate {
            verdicts: vec!["great".into()],
            candidate: None,
        });
        assert!(bad.validate().unwrap_err().contains("unknown verdict"));
        let none = rule(TriggerKind::LlmCandidate {
            verdicts: vec![],
            candidate: None,
        });
        assert!(none.validate().is_err());
        let parsed: TriggerRule = toml::from_str(
            "name = \"ready\"\nmodel = \"assistant\"\nkind = \"llm_candidate\"\ncandidate = \"ft\"",
        )
        .expect("toml");
        assert_eq!(
            parsed.kind,
            TriggerKind::LlmCandidate {
                verdicts: vec!["equivalent".into()],
                candidate: Some("ft".into())
            }
        );
    }

    #[test]
    fn drift_rule_fires_on_the_latest_drifted_window_only() {
        let r = rule(TriggerKind::Drift { monitor: None });
        let quiet = Evidence {
            drift: vec![drift("m", 7200, false)],
            runs: vec![],
        };
        assert_eq!(evaluate(&r, &quiet, None), None);
        let ev = Evidence {
            drift: vec![drift("m", 7200, true), drift("other", 3600, false)],
            runs: vec![],
        };
        let f = evaluate(&r, &ev, None).expect("fires");
        assert_eq!((f.reason.as_str(), f.since, f.until), ("drift", 3600, 7200));
        assert_eq!(request_id(&f), "intent:drift:7200");
        // Restricted to another monitor: nothing.
        let only = rule(TriggerKind::Drift {
            monitor: Some("other".into()),
        });
        assert_eq!(evaluate(&only, &ev, None), None);
        // A dataset window of a day ends where the evidence ends.
        let mut day = r.clone();
        day.dataset_window = Some("1d".into());
        let f = evaluate(&day, &ev, Some(86_400)).expect("fires");
        assert_eq!((f.since, f.until), (0, 7200));
    }

    #[test]
    fn performance_rule_needs_enough_labels_and_a_low_accuracy() {
        let r = rule(TriggerKind::Performance {
            below: 0.8,
            min_labelled: 100,
        });
        let few = Evidence {
            drift: vec![],
            runs: vec![run("svc", 50, 0.5, 0.0)],
        };
        assert_eq!(evaluate(&r, &few, None), None);
        let good = Evidence {
            drift: vec![],
            runs: vec![run("svc", 500, 0.9, 0.0)],
        };
        assert_eq!(evaluate(&r, &good, None), None);
        let bad = Evidence {
            drift: vec![],
            runs: vec![run("svc", 500, 0.7, 0.0)],
        };
        let f = evaluate(&r, &bad, None).expect("fires");
        assert_eq!(f.reason, "performance");
        assert_eq!(f.evidence["threshold"], serde_json::json!(0.8));
    }

    #[test]
    fn candidate_better_rule_uses_the_lower_confidence_bound() {
        let r = rule(TriggerKind::CandidateBetter {
            margin: 0.01,
            candidate: Some("svc".into()),
            min_labelled: 100,
        });
        let unsure = Evidence {
            drift: vec![],
            runs: vec![run("svc", 500, 0.8, -0.01)],
        };
        assert_eq!(evaluate(&r, &unsure, None), None);
        let other = Evidence {
            drift: vec![],
            runs: vec![run("l3", 500, 0.8, 0.05)],
        };
        assert_eq!(evaluate(&r, &other, None), None);
        let sure = Evidence {
            drift: vec![],
            runs: vec![run("svc", 500, 0.8, 0.02)],
        };
        assert_eq!(
            evaluate(&r, &sure, None).map(|f| f.reason),
            Some("candidate_better".to_string())
        );
    }

    #[test]
    fn rules_parse_from_toml_and_validate() {
        let r: TriggerRule = toml::from_str(
            "name = 'd'\nmodel = 'intent'\nkind = 'drift'\nmonitor = 'm'\ndataset_window = '7d'\n",
        )
        .expect("parse");
        assert_eq!(
            r.kind,
            TriggerKind::Drift {
                monitor: Some("m".into())
            }
        );
        assert!(r.validate().is_ok());
        let p: TriggerRule =
            toml::from_str("name = 'p'\nmodel = 'intent'\nkind = 'performance'\nbelow = 1.5\n")
                .expect("parse");
        assert!(p.validate().is_err());
        assert!(
            toml::from_str::<TriggerRule>("name = 'x'\nmodel = 'm'\nkind = 'vibes'\n").is_err()
        );
    }
}
