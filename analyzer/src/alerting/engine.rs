//! Pure evaluation of monitor results into incident transitions.
//!
//! Input: the recent windows of one monitor for one model/version (as stored in
//! `monitor_results`), the rule, learned baselines and the group's current state. Output: at
//! most one [`Transition`]: an incident fires, is updated (more columns, newer scores) or
//! resolves. No I/O, so every anti-fatigue mechanism is unit-tested with numbers:
//!
//! - **multiple testing**: p-value columns of one window are corrected together with
//!   Benjamini–Hochberg (`multiple_testing = "bh"`, FDR `fdr`, default the method's 0.05);
//! - **learned thresholds**: a distance column fires only above `max(threshold, mean + k·σ)` of
//!   its own statistic over a baseline (reference chunks or the first stored windows);
//! - **persistence**: a column counts when it fired in `for_windows` of the last `of_windows`
//!   windows (per column: noise hopping between columns never adds up);
//! - **grouping**: one incident per rule, monitor, model and version, listing every column;
//! - **hysteresis**: resolve after `resolve_after` consecutive clear windows, where clear
//!   means every distance below `resolve_ratio` × its threshold (not merely below it);
//! - **cooldown**: after a resolve, the same group does not fire again for `cooldown`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vigil_store::rows::MonitorResultRow;

use super::config::{MultipleTesting, RuleConfig, RuleKind};
use crate::drift::DriftTest;
use crate::monitor::DATASET_COLUMN;

/// One column's verdict in one window.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnScore {
    pub column: String,
    pub method: String,
    pub score: f64,
    pub threshold: f64,
    /// `drift`, `ok` or `insufficient_data`.
    pub verdict: String,
}

/// All column verdicts of one monitor window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowResults {
    pub window_end: u32,
    pub columns: Vec<ColumnScore>,
    /// Verdict of the dataset row (`insufficient_data` when nothing could be judged).
    pub dataset_verdict: String,
}

/// Which monitor results an incident is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    pub monitor: String,
    pub model: String,
    pub version: String,
}

/// Groups stored rows into windows per (monitor, model, version), windows ascending.
pub fn group_rows(rows: &[MonitorResultRow]) -> BTreeMap<GroupKey, Vec<WindowResults>> {
    let mut out: BTreeMap<GroupKey, BTreeMap<u32, WindowResults>> = BTreeMap::new();
    for r in rows {
        let key = GroupKey {
            monitor: r.monitor.clone(),
            model: r.model.clone(),
            version: r.version.clone(),
        };
        let w = out
            .entry(key)
            .or_default()
            .entry(r.window_end)
            .or_insert_with(|| WindowResults {
                window_end: r.window_end,
                columns: vec![],
                dataset_verdict: "insufficient_data".into(),
            });
        if r.column == DATASET_COLUMN {
            w.dataset_verdict = r.verdict.clone();
        } else {
            w.columns.push(ColumnScore {
                column: r.column.clone(),
                method: r.method.clone(),
                score: r.score,
                threshold: r.threshold,
                verdict: r.verdict.clone(),
            });
        }
    }
    out.into_iter()
        .map(|(k, ws)| (k, ws.into_values().collect()))
        .collect()
}

/// Mean and standard deviation of a column's statistic over a baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub mean: f64,
    pub std: f64,
    pub n: usize,
}

/// Fewer baseline values than this learn nothing (the configured threshold applies alone).
pub const MIN_BASELINE: usize = 5;

impl Baseline {
    /// Mean and sample standard deviation of `scores` (finite ones); `None` below
    /// [`MIN_BASELINE`] values.
    pub fn learn(scores: &[f64]) -> Option<Baseline> {
        let v: Vec<f64> = scores.iter().copied().filter(|x| x.is_finite()).collect();
        if v.len() < MIN_BASELINE {
            return None;
        }
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        Some(Baseline {
            mean,
            std: var.sqrt(),
            n: v.len(),
        })
    }

    /// `mean + k·σ`.
    pub fn threshold(&self, k: f64) -> f64 {
        self.mean + k * self.std
    }
}

/// Learns a baseline per column from the given windows (distance columns only; p-values are
/// handled by multiple-testing control instead).
pub fn learn_baselines(windows: &[WindowResults]) -> BTreeMap<String, Baseline> {
    let mut scores: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for w in windows {
        for c in &w.columns {
            if c.verdict != "insufficient_data" && !is_p_value(&c.method) {
                scores.entry(c.column.clone()).or_default().push(c.score);
            }
        }
    }
    scores
        .into_iter()
        .filter_map(|(c, s)| Baseline::learn(&s).map(|b| (c, b)))
        .collect()
}

fn is_p_value(method: &str) -> bool {
    DriftTest::from_name(method).is_ok_and(|m| m.is_p_value())
}

/// Benjamini–Hochberg step-up: which of `p_values` are discoveries at false discovery rate
/// `q`. The largest rank `k` with `p_(k) ≤ k/m · q` and every smaller p-value are rejected.
pub fn benjamini_hochberg(p_values: &[f64], q: f64) -> Vec<bool> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut cutoff = 0;
    for (rank, &i) in order.iter().enumerate() {
        let k = rank + 1;
        if p_values[i] <= k as f64 / m as f64 * q {
            cutoff = k;
        }
    }
    let mut out = vec![false; m];
    for &i in order.iter().take(cutoff) {
        out[i] = true;
    }
    out
}

/// A column that fired in a window, with the threshold it was judged against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiredColumn {
    pub column: String,
    pub method: String,
    pub score: f64,
    /// The effective threshold (learned or configured; the BH cut-off for p-values).
    pub threshold: f64,
    pub window_end: u32,
}

impl FiredColumn {
    /// How far past its threshold the column is (≥ 1 for distances; for p-values the
    /// threshold over the p-value), for ordering.
    pub fn severity_ratio(&self) -> f64 {
        if is_p_value(&self.method) {
            self.threshold / self.score.max(1e-300)
        } else if self.method == crate::monitor::health::BELOW {
            // A lower limit on a share (accuracy): how much larger the shortfall is.
            (1.0 - self.score) / (1.0 - self.threshold).max(1e-12)
        } else {
            self.score / self.threshold.max(1e-12)
        }
    }
}

/// What one window says under a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowJudgement {
    pub fired: Vec<FiredColumn>,
    /// Counts towards persistence.
    pub firing: bool,
    /// Counts towards resolving (hysteresis: stricter than "not firing").
    pub clear: bool,
    /// False when nothing could be judged (every column `insufficient_data`): such a window
    /// neither fires nor counts as clear (no data is no evidence of recovery).
    pub judged: bool,
}

/// Judges one window: multiple-testing control for p-values, learned thresholds for distances.
pub fn judge_window(
    rule: &RuleConfig,
    window: &WindowResults,
    baselines: &BTreeMap<String, Baseline>,
) -> WindowJudgement {
    if rule.kind == RuleKind::Health {
        return judge_health_window(rule, window);
    }
    if rule.kind == RuleKind::NoData {
        let nodata = window.dataset_verdict == "insufficient_data";
        return WindowJudgement {
            fired: vec![],
            firing: nodata,
            clear: !nodata,
            judged: true,
        };
    }
    let judged: Vec<&ColumnScore> = window
        .columns
        .iter()
        .filter(|c| c.verdict != "insufficient_data")
        .collect();
    let (pv, dist): (Vec<&ColumnScore>, Vec<&ColumnScore>) =
        judged.into_iter().partition(|c| is_p_value(&c.method));
    let mut fired = Vec::new();
    let mut clear = true;
    if !pv.is_empty() {
        let p: Vec<f64> = pv.iter().map(|c| c.score).collect();
        let rejected = match rule.multiple_testing {
            MultipleTesting::Bh => {
                let q = rule.fdr.unwrap_or(pv[0].threshold);
                benjamini_hochberg(&p, q)
            }
            MultipleTesting::None => pv.iter().map(|c| c.verdict == "drift").collect(),
        };
        let cut = match rule.multiple_testing {
            MultipleTesting::Bh => {
                let q = rule.fdr.unwrap_or(pv[0].threshold);
                let k = rejected.iter().filter(|r| **r).count().max(1);
                k as f64 / p.len() as f64 * q
            }
            MultipleTesting::None => pv[0].threshold,
        };
        for (c, r) in pv.iter().zip(rejected) {
            if r {
                clear = false;
                fired.push(FiredColumn {
                    column: c.column.clone(),
                    method: c.method.clone(),
                    score: c.score,
                    threshold: cut,
                    window_end: window.window_end,
                });
            }
        }
    }
    for c in dist {
        let learned = if rule.learned_thresholds {
            baselines.get(&c.column).map(|b| b.threshold(rule.k))
        } else {
            None
        };
        let t = learned.map_or(c.threshold, |l| l.max(c.threshold));
        if c.score >= t {
            fired.push(FiredColumn {
                column: c.column.clone(),
                method: c.method.clone(),
                score: c.score,
                threshold: t,
                window_end: window.window_end,
            });
        }
        if c.score >= rule.resolve_ratio * t {
            clear = false;
        }
    }
    let firing = fired.len() >= rule.min_columns.max(1) as usize;
    let judged = window
        .columns
        .iter()
        .any(|c| c.verdict != "insufficient_data");
    WindowJudgement {
        fired,
        firing,
        clear: clear && judged,
        judged,
    }
}

/// A health window: a check fires when its monitor judged it breached (the threshold is the
/// SLO itself; there is nothing to learn or correct for). Clear (hysteresis) means every
/// judged check is back inside `resolve_ratio` of its limit: for an upper limit
/// `score ≤ ratio·threshold`, for a lower limit (accuracy) the shortfall `1 − score` within
/// `ratio·(1 − threshold)`.
fn judge_health_window(rule: &RuleConfig, window: &WindowResults) -> WindowJudgement {
    let judged: Vec<&ColumnScore> = window
        .columns
        .iter()
        .filter(|c| c.verdict != "insufficient_data")
        .collect();
    let fired: Vec<FiredColumn> = judged
        .iter()
        .filter(|c| c.verdict == "drift")
        .map(|c| FiredColumn {
            column: c.column.clone(),
            method: c.method.clone(),
            score: c.score,
            threshold: c.threshold,
            window_end: window.window_end,
        })
        .collect();
    let clear = judged.iter().all(|c| {
        if c.method == crate::monitor::health::BELOW {
            1.0 - c.score <= rule.resolve_ratio * (1.0 - c.threshold)
        } else {
            c.score <= rule.resolve_ratio * c.threshold
        }
    });
    WindowJudgement {
        firing: fired.len() >= rule.min_columns.max(1) as usize,
        fired,
        clear: clear && !judged.is_empty(),
        judged: !judged.is_empty(),
    }
}

/// Lifecycle state of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    Firing,
    Acknowledged,
    Resolved,
}

impl IncidentState {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Firing => "firing",
            IncidentState::Acknowledged => "acknowledged",
            IncidentState::Resolved => "resolved",
        }
    }
    pub fn parse(s: &str) -> Option<IncidentState> {
        match s {
            "firing" => Some(IncidentState::Firing),
            "acknowledged" => Some(IncidentState::Acknowledged),
            "resolved" => Some(IncidentState::Resolved),
            _ => None,
        }
    }
}

/// An incident as the engine sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub rule: String,
    pub kind: String,
    pub monitor: String,
    pub model: String,
    pub version: String,
    pub severity: String,
    pub state: IncidentState,
    pub silenced: bool,
    pub opened_at: u32,
    pub first_window_end: u32,
    pub last_window_end: u32,
    pub clear_windows: u32,
    /// Every column that fired while open, latest score each, worst first.
    pub columns: Vec<FiredColumn>,
    pub acked_by: String,
    pub acked_at: u32,
    pub resolved_at: u32,
}

/// The group's state before a step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupState {
    /// The incident that is firing or acknowledged, if any.
    pub open: Option<Incident>,
    /// Window end at which the last incident of the group resolved.
    pub last_resolved_window: Option<u32>,
}

/// What a step decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// A new incident (notify unless silenced).
    Fired(Incident),
    /// The open incident saw another window (new columns or scores, clear-window count).
    Updated(Incident),
    /// The open incident resolved (notify).
    Resolved(Incident),
}

/// Stable id of an incident: the same firing evaluated twice (a retry, a restart) is the same
/// incident.
pub fn incident_id(rule: &str, key: &GroupKey, first_window_end: u32) -> String {
    let version = if key.version.is_empty() {
        "all"
    } else {
        &key.version
    };
    format!(
        "{rule}:{}:{}:{version}:{first_window_end}",
        key.monitor, key.model
    )
}

fn merge_columns(into: &mut Vec<FiredColumn>, new: &[FiredColumn]) {
    for c in new {
        match into.iter_mut().find(|x| x.column == c.column) {
            Some(x) if x.window_end <= c.window_end => *x = c.clone(),
            Some(_) => {}
            None => into.push(c.clone()),
        }
    }
    into.sort_by(|a, b| {
        b.severity_ratio()
            .total_cmp(&a.severity_ratio())
            .then(a.column.cmp(&b.column))
    });
}

/// Columns that fired in at least `for_windows` of the judged windows (newest first), each with
/// its newest firing score: persistence is per column, so noise that hops from column to
/// column never adds up to an incident.
pub fn persistent_columns(rule: &RuleConfig, judged: &[WindowJudgement]) -> Vec<FiredColumn> {
    let mut counts: BTreeMap<&str, (usize, &FiredColumn)> = BTreeMap::new();
    // Oldest first, so the newest firing of a column is kept.
    for j in judged.iter().rev() {
        for c in &j.fired {
            let e = counts.entry(c.column.as_str()).or_insert((0, c));
            e.0 += 1;
            e.1 = c;
        }
    }
    let mut out: Vec<FiredColumn> = counts
        .into_values()
        .filter(|(n, _)| *n >= rule.for_windows as usize)
        .map(|(_, c)| c.clone())
        .collect();
    out.sort_by(|a, b| {
        b.severity_ratio()
            .total_cmp(&a.severity_ratio())
            .then(a.column.cmp(&b.column))
    });
    out
}

/// One evaluation of one group at its newest window (`history`, ascending, ends with it).
#[allow(clippy::too_many_arguments)]
pub fn step(
    rule: &RuleConfig,
    key: &GroupKey,
    history: &[WindowResults],
    baselines: &BTreeMap<String, Baseline>,
    state: &GroupState,
    cooldown_secs: u32,
    silenced: bool,
    now: u32,
) -> Option<Transition> {
    let latest = history.last()?;
    let after = state.last_resolved_window.unwrap_or(0);
    // The last `of_windows` windows since the last resolve, newest first.
    let tail: Vec<&WindowResults> = history
        .iter()
        .filter(|w| w.window_end > after)
        .rev()
        .take(rule.of_windows as usize)
        .collect();
    let judged: Vec<WindowJudgement> = tail
        .iter()
        .map(|w| judge_window(rule, w, baselines))
        .collect();
    let persistent = persistent_columns(rule, &judged);
    if let Some(open) = &state.open {
        if latest.window_end <= open.last_window_end {
            return None; // already seen
        }
        let j = judge_window(rule, latest, baselines);
        let mut inc = open.clone();
        inc.last_window_end = latest.window_end;
        if !j.judged {
            // No data: the clear-window count holds (neither resets nor advances).
        } else if j.clear {
            inc.clear_windows += 1;
        } else {
            inc.clear_windows = 0;
            // Newer scores for listed columns; new columns only once they persist.
            let listed: Vec<FiredColumn> = j
                .fired
                .iter()
                .filter(|c| inc.columns.iter().any(|x| x.column == c.column))
                .cloned()
                .collect();
            merge_columns(&mut inc.columns, &listed);
            merge_columns(&mut inc.columns, &persistent);
        }
        if inc.clear_windows >= rule.resolve_after {
            inc.state = IncidentState::Resolved;
            inc.resolved_at = now;
            return Some(Transition::Resolved(inc));
        }
        return Some(Transition::Updated(inc));
    }
    if let Some(resolved) = state.last_resolved_window {
        if latest.window_end <= resolved.saturating_add(cooldown_secs) {
            return None;
        }
    }
    let newest = judged.first()?;
    let (fires, columns, first) = match rule.kind {
        RuleKind::NoData => {
            let count = judged.iter().filter(|j| j.firing).count();
            let first = tail
                .iter()
                .zip(&judged)
                .filter(|(_, j)| j.firing)
                .map(|(w, _)| w.window_end)
                .min();
            (
                newest.firing && count >= rule.for_windows as usize,
                vec![],
                first,
            )
        }
        RuleKind::Drift | RuleKind::Health => {
            let in_newest = persistent
                .iter()
                .filter(|c| newest.fired.iter().any(|f| f.column == c.column))
                .count();
            let first = tail
                .iter()
                .zip(&judged)
                .filter(|(_, j)| {
                    j.fired
                        .iter()
                        .any(|f| persistent.iter().any(|p| p.column == f.column))
                })
                .map(|(w, _)| w.window_end)
                .min();
            (
                in_newest > 0 && persistent.len() >= rule.min_columns.max(1) as usize,
                persistent,
                first,
            )
        }
    };
    if !fires {
        return None;
    }
    let first = first.unwrap_or(latest.window_end);
    Some(Transition::Fired(Incident {
        id: incident_id(&rule.name, key, first),
        rule: rule.name.clone(),
        kind: rule.kind.as_str().to_string(),
        monitor: key.monitor.clone(),
        model: key.model.clone(),
        version: key.version.clone(),
        severity: rule.severity.clone(),
        state: IncidentState::Firing,
        silenced,
        opened_at: now,
        first_window_end: first,
        last_window_end: latest.window_end,
        clear_windows: 0,
        columns,
        acked_by: String::new(),
        acked_at: 0,
        resolved_at: 0,
    }))
}

/// Applies a transition to the in-memory state (what the store does by inserting rows).
pub fn apply(state: &mut GroupState, t: &Transition) {
    match t {
        Transition::Fired(i) | Transition::Updated(i) => state.open = Some(i.clone()),
        Transition::Resolved(i) => {
            state.open = None;
            state.last_resolved_window = Some(i.last_window_end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(end: u32, cols: &[(&str, &str, f64, f64)]) -> WindowResults {
        WindowResults {
            window_end: end,
            columns: cols
                .iter()
                .map(|(c, m, s, t)| ColumnScore {
                    column: c.to_string(),
                    method: m.to_string(),
                    score: *s,
                    threshold: *t,
                    verdict: if DriftTest::from_name(m).unwrap().is_drift(*s, *t) {
                        "drift".into()
                    } else {
                        "ok".into()
                    },
                })
                .collect(),
            dataset_verdict: "ok".into(),
        }
    }

    fn key() -> GroupKey {
        GroupKey {
            monitor: "m".into(),
            model: "churn".into(),
            version: "v3".into(),
        }
    }

    #[test]
    fn bh_matches_hand_computation() {
        // m = 5, q = 0.05: cut-offs 0.01, 0.02, 0.03, 0.04, 0.05.
        let p = [0.001, 0.03, 0.012, 0.5, 0.041];
        // sorted: 0.001 (≤.01 ✓), 0.012 (≤.02 ✓), 0.03 (≤.03 ✓), 0.041 (≤.04 ✗), 0.5 ✗.
        assert_eq!(
            benjamini_hochberg(&p, 0.05),
            vec![true, true, true, false, false]
        );
        // Step-up: a later rank passing rejects all smaller ones (0.04 ≤ 4/4·0.05).
        assert_eq!(
            benjamini_hochberg(&[0.04, 0.04, 0.04, 0.04], 0.05),
            vec![true; 4]
        );
        assert_eq!(benjamini_hochberg(&[0.02, 0.9], 0.01), vec![false, false]);
        assert!(benjamini_hochberg(&[], 0.05).is_empty());
    }

    #[test]
    fn bh_silences_one_lucky_p_value_among_twenty() {
        let rule = RuleConfig::new("r", RuleKind::Drift);
        let mut cols: Vec<(String, f64)> = (0..20).map(|i| (format!("c{i}"), 0.5)).collect();
        cols[3].1 = 0.02; // below 0.05 alone, above 1/20·0.05 = 0.0025
        let cs: Vec<(&str, &str, f64, f64)> = cols
            .iter()
            .map(|(c, p)| (c.as_str(), "ks", *p, 0.05))
            .collect();
        let win = w(100, &cs);
        assert!(!judge_window(&rule, &win, &BTreeMap::new()).firing);
        let mut none = rule.clone();
        none.multiple_testing = MultipleTesting::None;
        assert!(judge_window(&none, &win, &BTreeMap::new()).firing);
        let mut strong = cs.clone();
        strong[5].2 = 1e-6;
        let j = judge_window(&rule, &w(100, &strong), &BTreeMap::new());
        assert_eq!(j.fired.len(), 1);
        assert_eq!(j.fired[0].column, "c5");
        assert!((j.fired[0].threshold - 0.0025).abs() < 1e-12);
    }

    #[test]
    fn learned_threshold_is_mean_plus_k_sigma() {
        let b = Baseline::learn(&[0.10, 0.12, 0.14, 0.12, 0.12]).unwrap();
        assert!((b.mean - 0.12).abs() < 1e-12);
        // sample variance: (4e-4 + 0 + 4e-4 + 0 + 0) / 4 = 2e-4
        assert!((b.std - 2e-4f64.sqrt()).abs() < 1e-12);
        assert!((b.threshold(3.0) - (0.12 + 3.0 * 2e-4f64.sqrt())).abs() < 1e-12);
        assert!(Baseline::learn(&[0.1, 0.2]).is_none());
        // A noisy column (baseline ≈ 0.12 ± 0.014) with threshold 0.1 does not fire at 0.13 …
        let rule = RuleConfig::new("r", RuleKind::Drift);
        let mut bl = BTreeMap::new();
        bl.insert("x".to_string(), b);
        let j = judge_window(&rule, &w(1, &[("x", "wasserstein", 0.13, 0.1)]), &bl);
        assert!(!j.firing);
        // … but does at 0.2, and without learning 0.13 fires.
        assert!(judge_window(&rule, &w(1, &[("x", "wasserstein", 0.2, 0.1)]), &bl).firing);
        let mut plain = rule.clone();
        plain.learned_thresholds = false;
        assert!(judge_window(&plain, &w(1, &[("x", "wasserstein", 0.13, 0.1)]), &bl).firing);
    }

    /// Runs a rule over windows of per-column scores; returns the transitions by window.
    fn run(rule: &RuleConfig, scores: &[&[(&str, f64)]]) -> Vec<(u32, &'static str, usize)> {
        let mut state = GroupState::default();
        let mut history = Vec::new();
        let mut out = Vec::new();
        for (i, cols) in scores.iter().enumerate() {
            let end = (i as u32 + 1) * 3600;
            let cs: Vec<(&str, &str, f64, f64)> = cols
                .iter()
                .map(|(c, s)| (*c, "wasserstein", *s, 0.1))
                .collect();
            history.push(w(end, &cs));
            let cooldown = rule.cooldown_secs().unwrap();
            if let Some(t) = step(
                rule,
                &key(),
                &history,
                &BTreeMap::new(),
                &state,
                cooldown,
                false,
                end,
            ) {
                let (name, n) = match &t {
                    Transition::Fired(i) => ("fired", i.columns.len()),
                    Transition::Updated(i) => ("updated", i.columns.len()),
                    Transition::Resolved(i) => ("resolved", i.columns.len()),
                };
                out.push((i as u32 + 1, name, n));
                apply(&mut state, &t);
            }
        }
        out
    }

    #[test]
    fn persistence_two_of_three() {
        let rule = RuleConfig::new("r", RuleKind::Drift);
        let q: &[(&str, f64)] = &[("a", 0.02), ("b", 0.03)];
        let d: &[(&str, f64)] = &[("a", 0.3), ("b", 0.03)];
        // A single spike never fires; the second drifted window within three does.
        let t = run(&rule, &[q, d, q, q, d, q, d]);
        assert_eq!(t, vec![(7, "fired", 1)]);
    }

    #[test]
    fn persistence_is_per_column() {
        let rule = RuleConfig::new("r", RuleKind::Drift);
        let a: &[(&str, f64)] = &[("a", 0.3), ("b", 0.03), ("c", 0.03)];
        let b: &[(&str, f64)] = &[("a", 0.03), ("b", 0.3), ("c", 0.03)];
        let c: &[(&str, f64)] = &[("a", 0.03), ("b", 0.03), ("c", 0.3)];
        // A window fires every time, but never the same column twice in three windows.
        assert!(run(&rule, &[a, b, c, a, b, c, a, b, c]).is_empty());
        // The same column twice in three windows does.
        assert_eq!(run(&rule, &[a, b, a]), vec![(3, "fired", 1)]);
    }

    #[test]
    fn grouping_hysteresis_and_cooldown() {
        let rule = RuleConfig::new("r", RuleKind::Drift);
        let q: &[(&str, f64)] = &[("a", 0.02), ("b", 0.03), ("c", 0.01)];
        let d3: &[(&str, f64)] = &[("a", 0.3), ("b", 0.5), ("c", 0.2)];
        // Just below the threshold but above resolve_ratio · threshold: not clear.
        let near: &[(&str, f64)] = &[("a", 0.09), ("b", 0.03), ("c", 0.01)];
        let t = run(&rule, &[q, d3, d3, near, q, q, d3, d3, q]);
        // Fires once with all three columns; `near` resets nothing but is not clear; two clear
        // windows resolve it; a new drift right after is inside the 1 h cooldown at window 7,
        // and window 8 fires again (2 of the last 3 after the resolve).
        assert_eq!(
            t,
            vec![
                (3, "fired", 3),
                (4, "updated", 3),
                (5, "updated", 3),
                (6, "resolved", 3),
                (8, "fired", 3),
                (9, "updated", 3),
            ]
        );
    }

    #[test]
    fn re_evaluating_the_same_window_is_a_no_op_and_ids_are_stable() {
        let rule = RuleConfig::new("r", RuleKind::Drift);
        let h = vec![
            w(3600, &[("a", "wasserstein", 0.5, 0.1)]),
            w(7200, &[("a", "wasserstein", 0.5, 0.1)]),
        ];
        let s = GroupState::default();
        let Some(Transition::Fired(i)) = step(&rule, &key(), &h, &BTreeMap::new(), &s, 0, false, 9)
        else {
            panic!("fires")
        };
        assert_eq!(i.id, "r:m:churn:v3:3600");
        let mut s2 = s.clone();
        apply(&mut s2, &Transition::Fired(i));
        assert_eq!(
            step(&rule, &key(), &h, &BTreeMap::new(), &s2, 0, false, 9),
            None
        );
    }

    #[test]
    fn windows_without_data_do_not_resolve() {
        let rule = RuleConfig::new("r", RuleKind::Drift);
        let d = w(3600, &[("a", "wasserstein", 0.5, 0.1)]);
        let mut h = vec![d.clone(), w(7200, &[("a", "wasserstein", 0.5, 0.1)])];
        let mut state = GroupState::default();
        let t = step(&rule, &key(), &h, &BTreeMap::new(), &state, 0, false, 0).unwrap();
        apply(&mut state, &t);
        for end in [10_800, 14_400, 18_000] {
            let mut empty = w(end, &[("a", "wasserstein", 0.0, 0.1)]);
            empty.columns[0].verdict = "insufficient_data".into();
            h.push(empty);
            let t = step(&rule, &key(), &h, &BTreeMap::new(), &state, 0, false, 0).unwrap();
            assert!(
                matches!(t, Transition::Updated(ref i) if i.clear_windows == 0),
                "{t:?}"
            );
            apply(&mut state, &t);
        }
    }

    #[test]
    fn no_data_rule() {
        let rule = {
            let mut r = RuleConfig::new("nd", RuleKind::NoData);
            r.for_windows = 3;
            r.of_windows = 3;
            r
        };
        let mut h = Vec::new();
        let mut state = GroupState::default();
        let mut fired_at = None;
        for i in 1..=4u32 {
            let mut win = w(i * 60, &[]);
            win.dataset_verdict = "insufficient_data".into();
            h.push(win);
            if let Some(t) = step(&rule, &key(), &h, &BTreeMap::new(), &state, 0, false, 0) {
                fired_at.get_or_insert(i);
                apply(&mut state, &t);
            }
        }
        assert_eq!(fired_at, Some(3));
    }

    fn health(end: u32, checks: &[(&str, &str, f64, f64)]) -> WindowResults {
        WindowResults {
            window_end: end,
            columns: checks
                .iter()
                .map(|(c, m, s, t)| ColumnScore {
                    column: c.to_string(),
                    method: m.to_string(),
                    score: *s,
                    threshold: *t,
                    verdict: if (*m == "max" && s > t) || (*m == "min" && s < t) {
                        "drift".into()
                    } else {
                        "ok".into()
                    },
                })
                .collect(),
            dataset_verdict: "ok".into(),
        }
    }

    #[test]
    fn health_rule_fires_on_breached_checks_and_resolves_with_hysteresis() {
        let rule = RuleConfig::new("h", RuleKind::Health);
        let ok = |e| {
            health(
                e,
                &[
                    ("latency_p95_ms", "max", 120.0, 250.0),
                    ("accuracy", "min", 0.9, 0.8),
                ],
            )
        };
        // 230 ms is within the limit but not within 0.8 × 250: not yet clear.
        let near = |e| {
            health(
                e,
                &[
                    ("latency_p95_ms", "max", 230.0, 250.0),
                    ("accuracy", "min", 0.9, 0.8),
                ],
            )
        };
        let bad = |e| {
            health(
                e,
                &[
                    ("latency_p95_ms", "max", 400.0, 250.0),
                    ("accuracy", "min", 0.7, 0.8),
                ],
            )
        };
        let j = judge_window(&rule, &bad(60), &BTreeMap::new());
        assert_eq!(j.fired.len(), 2);
        assert!(!j.clear);
        assert!(judge_window(&rule, &ok(60), &BTreeMap::new()).clear);
        assert!(!judge_window(&rule, &near(60), &BTreeMap::new()).clear);
        // Accuracy 0.82 is above 0.8 but its shortfall 0.18 > 0.8 × 0.2: not clear either.
        let acc = health(60, &[("accuracy", "min", 0.82, 0.8)]);
        assert!(!judge_window(&rule, &acc, &BTreeMap::new()).clear);

        let windows = [ok(60), bad(120), bad(180), near(240), ok(300), ok(360)];
        let mut h = Vec::new();
        let mut state = GroupState::default();
        let mut events = Vec::new();
        for win in windows {
            h.push(win);
            if let Some(t) = step(&rule, &key(), &h, &BTreeMap::new(), &state, 3600, false, 0) {
                match &t {
                    Transition::Fired(i) => {
                        // Worst first: accuracy's shortfall is 1.5× its allowance, latency 1.6×.
                        let cols: Vec<&str> = i.columns.iter().map(|c| c.column.as_str()).collect();
                        assert_eq!(cols, ["latency_p95_ms", "accuracy"]);
                        assert_eq!(i.kind, "health");
                        events.push(("fired", i.last_window_end));
                    }
                    Transition::Resolved(i) => events.push(("resolved", i.last_window_end)),
                    Transition::Updated(_) => {}
                }
                apply(&mut state, &t);
            }
        }
        assert_eq!(events, [("fired", 180), ("resolved", 360)]);
    }
}
