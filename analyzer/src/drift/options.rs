//! Which test and threshold each column gets: Evidently's data drift options.
//!
//! Evidently (0.7.23, `DataDriftPreset` / `ValueDrift`, legacy `DataDriftTable`) takes a test for
//! every column (`stattest`, called `method` in the new API), one per column type (`num_stattest`,
//! `cat_stattest`) and one per named column (`per_column_stattest`), each with a threshold of its
//! own. `evidently/legacy/utils/data_drift_utils.py` resolves them independently for the test and
//! for the threshold:
//!
//! - test (`_calculate_stattest`): `per_column_stattest[column]` if the column is a key, else the
//!   type's test if set, else `stattest`, else none — and none means the default choice
//!   (`registry.get_stattest` → `_get_default_stattest`, [`super::default_test`]);
//! - threshold (`_calculate_threshold`): `per_column_stattest_threshold[column]`, else the type's
//!   threshold, else `stattest_threshold`, else the chosen test's default threshold.
//!
//! A requested test must be registered for the column's type (`get_registered_stattest` raises
//! `StatTestInvalidFeatureTypeError`), which is [`DriftTest::allows`]. Two things differ on
//! purpose: a per-column entry naming a column that is not analysed is an error here (Evidently
//! ignores it), and `auto` may be given at any level to ask for the default choice there.
//! Evidently's `text_stattest` has no counterpart: vigil judges text columns by their embeddings
//! (`--text-column`), and their descriptors are numerical columns.

use std::collections::BTreeMap;
use std::fmt;

use super::{ColumnKind, DriftTest};
use crate::error::AnalyzerError;

/// A test named by the user, or `auto` (Evidently's default choice for the column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stattest {
    Auto,
    Test(DriftTest),
}

impl Stattest {
    /// `auto` or a name [`DriftTest::from_name`] accepts.
    pub fn parse(name: &str) -> Result<Self, AnalyzerError> {
        let n = name.trim();
        if n.is_empty() || n.eq_ignore_ascii_case("auto") {
            return Ok(Stattest::Auto);
        }
        DriftTest::from_name(n).map(Stattest::Test)
    }

    /// `None` for `auto`.
    pub fn test(self) -> Option<DriftTest> {
        match self {
            Stattest::Auto => None,
            Stattest::Test(t) => Some(t),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Stattest::Auto => "auto",
            Stattest::Test(t) => t.name(),
        }
    }
}

/// Which option decided a column's test or threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `per_column_stattest[_threshold]`.
    PerColumn,
    /// `num_stattest[_threshold]` / `cat_stattest[_threshold]`.
    Type(ColumnKind),
    /// `stattest[_threshold]`.
    All,
    /// Nothing set: the default choice (test) or the test's default (threshold).
    Default,
}

impl Level {
    /// The option's name in Evidently and in `[[monitors]]` (`num_stattest`, …); `threshold`
    /// gives the threshold option's name instead.
    pub fn key(self, threshold: bool) -> &'static str {
        match (self, threshold) {
            (Level::PerColumn, false) => "per_column_stattest",
            (Level::PerColumn, true) => "per_column_stattest_threshold",
            (Level::Type(ColumnKind::Numerical), false) => "num_stattest",
            (Level::Type(ColumnKind::Numerical), true) => "num_stattest_threshold",
            (Level::Type(ColumnKind::Categorical), false) => "cat_stattest",
            (Level::Type(ColumnKind::Categorical), true) => "cat_stattest_threshold",
            (Level::All, false) => "stattest",
            (Level::All, true) => "stattest_threshold",
            (Level::Default, _) => "default",
        }
    }

    /// The option as a command-line flag (`--num-stattest`, …).
    pub fn flag(self, threshold: bool) -> String {
        format!("--{}", self.key(threshold).replace('_', "-"))
    }
}

/// What one column gets: the test (`None`: the default choice) and the threshold (`None`: the
/// test's default), with where each came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColumnStattest {
    pub test: Option<DriftTest>,
    pub test_from: Level,
    pub threshold: Option<f64>,
    pub threshold_from: Level,
}

/// A requested test that the column's type does not allow.
#[derive(Debug, Clone, PartialEq)]
pub struct Inapplicable {
    pub column: String,
    pub kind: ColumnKind,
    pub test: DriftTest,
    pub from: Level,
}

impl Inapplicable {
    /// The tests allowed for the column's type, comma-separated.
    pub fn allowed(&self) -> String {
        allowed_for(self.kind)
    }

    /// The message, naming the option by `name` (a config key or a flag).
    pub fn message(&self, option: &str) -> String {
        format!(
            "column `{}` is {}: method `{}` (from {option}) cannot be used on a {} column; \
             set a method for {} columns or for this column, or pick one of: {}",
            self.column,
            self.kind.as_str(),
            self.test.name(),
            self.kind.as_str(),
            self.kind.as_str(),
            self.allowed()
        )
    }
}

impl fmt::Display for Inapplicable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message(self.from.key(false)))
    }
}

fn allowed_for(kind: ColumnKind) -> String {
    DriftTest::ALL
        .iter()
        .filter(|t| t.allows(kind))
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Evidently's per-column drift options. `None` / empty: not set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StattestOptions {
    pub stattest: Option<Stattest>,
    pub stattest_threshold: Option<f64>,
    pub num_stattest: Option<Stattest>,
    pub num_stattest_threshold: Option<f64>,
    pub cat_stattest: Option<Stattest>,
    pub cat_stattest_threshold: Option<f64>,
    pub per_column_stattest: BTreeMap<String, Stattest>,
    pub per_column_stattest_threshold: BTreeMap<String, f64>,
}

impl StattestOptions {
    /// One test (or `auto`) and threshold for every column: the old single `--method`.
    pub fn all(stattest: Option<Stattest>, threshold: Option<f64>) -> Self {
        StattestOptions {
            stattest,
            stattest_threshold: threshold,
            ..Default::default()
        }
    }

    /// Test and threshold for `column` of type `kind`, by Evidently's precedence (module doc).
    /// Applicability is not checked here; see [`StattestOptions::resolve_checked`].
    pub fn resolve(&self, column: &str, kind: ColumnKind) -> ColumnStattest {
        let (type_test, type_threshold) = match kind {
            ColumnKind::Numerical => (self.num_stattest, self.num_stattest_threshold),
            ColumnKind::Categorical => (self.cat_stattest, self.cat_stattest_threshold),
        };
        let (test, test_from) = if let Some(t) = self.per_column_stattest.get(column) {
            (t.test(), Level::PerColumn)
        } else if let Some(t) = type_test {
            (t.test(), Level::Type(kind))
        } else if let Some(t) = self.stattest {
            (t.test(), Level::All)
        } else {
            (None, Level::Default)
        };
        let (threshold, threshold_from) =
            if let Some(t) = self.per_column_stattest_threshold.get(column) {
                (Some(*t), Level::PerColumn)
            } else if let Some(t) = type_threshold {
                (Some(t), Level::Type(kind))
            } else if let Some(t) = self.stattest_threshold {
                (Some(t), Level::All)
            } else {
                (None, Level::Default)
            };
        // `auto` at any level is the default choice, reported as coming from that level
        ColumnStattest {
            test,
            test_from,
            threshold,
            threshold_from,
        }
    }

    /// [`StattestOptions::resolve`], failing when the chosen test is not registered for `kind`.
    pub fn resolve_checked(
        &self,
        column: &str,
        kind: ColumnKind,
    ) -> Result<ColumnStattest, Inapplicable> {
        let r = self.resolve(column, kind);
        match r.test {
            Some(test) if !test.allows(kind) => Err(Inapplicable {
                column: column.to_string(),
                kind,
                test,
                from: r.test_from,
            }),
            _ => Ok(r),
        }
    }

    /// Checks what can be checked without the columns' types: thresholds are finite and
    /// non-negative, `num_stattest` allows numerical and `cat_stattest` categorical columns.
    /// Errors name the option by `name(level, threshold)` (a config key or a flag).
    pub fn check(&self, name: impl Fn(Level, bool) -> String) -> Result<(), String> {
        let threshold = |level: Level, what: String, t: f64| -> Result<(), String> {
            if t.is_finite() && t >= 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "{}{what}: {t} is not a threshold; give a finite non-negative number",
                    name(level, true)
                ))
            }
        };
        for (level, t) in [
            (Level::All, self.stattest_threshold),
            (
                Level::Type(ColumnKind::Numerical),
                self.num_stattest_threshold,
            ),
            (
                Level::Type(ColumnKind::Categorical),
                self.cat_stattest_threshold,
            ),
        ] {
            if let Some(t) = t {
                threshold(level, String::new(), t)?;
            }
        }
        for (col, t) in &self.per_column_stattest_threshold {
            threshold(Level::PerColumn, format!(" for `{col}`"), *t)?;
        }
        for (kind, t) in [
            (ColumnKind::Numerical, self.num_stattest),
            (ColumnKind::Categorical, self.cat_stattest),
        ] {
            if let Some(Stattest::Test(t)) = t {
                if !t.allows(kind) {
                    return Err(format!(
                        "{} `{}` cannot be used on {} columns; pick one of: {}",
                        name(Level::Type(kind), false),
                        t.name(),
                        kind.as_str(),
                        allowed_for(kind)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Fails when a per-column test or threshold names a column not in `columns` (the analysed
    /// ones), listing them; `name(level)` names the option.
    pub fn check_columns<'a>(
        &self,
        columns: impl IntoIterator<Item = &'a str>,
        name: impl Fn(Level, bool) -> String,
    ) -> Result<(), String> {
        let columns: std::collections::BTreeSet<&str> = columns.into_iter().collect();
        let unknown = |keys: Vec<&String>, threshold: bool| -> Result<(), String> {
            if let Some(k) = keys.into_iter().find(|k| !columns.contains(k.as_str())) {
                let mut listed: Vec<&str> = columns.iter().copied().take(30).collect();
                if columns.len() > listed.len() {
                    listed.push("…");
                }
                return Err(format!(
                    "{} names column `{k}`, which is not analysed; analysed columns: {}",
                    name(Level::PerColumn, threshold),
                    if listed.is_empty() {
                        "none".to_string()
                    } else {
                        listed.join(", ")
                    }
                ));
            }
            Ok(())
        };
        unknown(self.per_column_stattest.keys().collect(), false)?;
        unknown(self.per_column_stattest_threshold.keys().collect(), true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ColumnKind::{Categorical, Numerical};

    fn t(name: &str) -> Stattest {
        Stattest::parse(name).unwrap()
    }

    #[test]
    fn nothing_set_is_the_default_choice() {
        let r = StattestOptions::default().resolve("x", Numerical);
        assert_eq!(r.test, None);
        assert_eq!(r.threshold, None);
        assert_eq!(
            (r.test_from, r.threshold_from),
            (Level::Default, Level::Default)
        );
    }

    #[test]
    fn per_column_beats_type_beats_all() {
        let o = StattestOptions {
            stattest: Some(t("psi")),
            stattest_threshold: Some(0.3),
            num_stattest: Some(t("ks")),
            num_stattest_threshold: Some(0.01),
            cat_stattest: Some(t("jensenshannon")),
            per_column_stattest: [("age".to_string(), t("wasserstein"))].into(),
            per_column_stattest_threshold: [("city".to_string(), 0.2)].into(),
            ..Default::default()
        };
        // per-column test; threshold still from the type (resolved independently)
        let age = o.resolve("age", Numerical);
        assert_eq!(age.test, Some(DriftTest::WassersteinNormed));
        assert_eq!(age.test_from, Level::PerColumn);
        assert_eq!(
            (age.threshold, age.threshold_from),
            (Some(0.01), Level::Type(Numerical))
        );
        // type test and threshold
        let inc = o.resolve("income", Numerical);
        assert_eq!(
            (inc.test, inc.test_from),
            (Some(DriftTest::KolmogorovSmirnov), Level::Type(Numerical))
        );
        // categorical: cat test, per-column threshold
        let city = o.resolve("city", Categorical);
        assert_eq!(city.test, Some(DriftTest::JensenShannon));
        assert_eq!(
            (city.threshold, city.threshold_from),
            (Some(0.2), Level::PerColumn)
        );
        // no cat threshold: the global one
        let plan = o.resolve("plan", Categorical);
        assert_eq!(
            (plan.threshold, plan.threshold_from),
            (Some(0.3), Level::All)
        );
        // global only
        let o = StattestOptions::all(Some(t("hellinger")), None);
        let r = o.resolve("x", Categorical);
        assert_eq!(
            (r.test, r.test_from),
            (Some(DriftTest::Hellinger), Level::All)
        );
        assert_eq!(r.threshold, None);
    }

    #[test]
    fn auto_at_a_level_asks_for_the_default_there() {
        let o = StattestOptions {
            stattest: Some(t("psi")),
            cat_stattest: Some(Stattest::Auto),
            per_column_stattest: [("n".to_string(), Stattest::Auto)].into(),
            ..Default::default()
        };
        assert_eq!(o.resolve("c", Categorical).test, None);
        assert_eq!(o.resolve("n", Numerical).test, None);
        assert_eq!(o.resolve("m", Numerical).test, Some(DriftTest::Psi));
    }

    #[test]
    fn inapplicable_tests_name_column_method_and_option() {
        let o = StattestOptions::all(Some(t("ks")), None);
        assert!(o.resolve_checked("x", Numerical).is_ok());
        let e = o.resolve_checked("plan", Categorical).unwrap_err();
        assert_eq!(e.test, DriftTest::KolmogorovSmirnov);
        let msg = e.to_string();
        assert!(
            msg.contains("`plan`") && msg.contains("`ks`") && msg.contains("from stattest"),
            "{msg}"
        );
        assert!(msg.contains("chisquare"), "{msg}");
        // a categorical override makes the global numerical-only test fine
        let mixed = StattestOptions {
            cat_stattest: Some(t("chisquare")),
            ..o.clone()
        };
        assert!(mixed.resolve_checked("plan", Categorical).is_ok());
        let per = StattestOptions {
            per_column_stattest: [("age".to_string(), t("chisquare"))].into(),
            ..Default::default()
        };
        let e = per.resolve_checked("age", Numerical).unwrap_err();
        assert!(e
            .message(&e.from.flag(false))
            .contains("from --per-column-stattest"));
    }

    #[test]
    fn checks_thresholds_type_tests_and_column_names() {
        let key = |l: Level, thr: bool| l.key(thr).to_string();
        let bad = StattestOptions {
            num_stattest: Some(t("z")),
            ..Default::default()
        };
        let e = bad.check(key).unwrap_err();
        assert!(e.contains("num_stattest") && e.contains("`z`"), "{e}");
        let bad = StattestOptions {
            cat_stattest: Some(t("wasserstein")),
            ..Default::default()
        };
        assert!(bad.check(key).unwrap_err().contains("cat_stattest"));
        let bad = StattestOptions {
            per_column_stattest_threshold: [("a".to_string(), -1.0)].into(),
            ..Default::default()
        };
        let e = bad.check(key).unwrap_err();
        assert!(e.contains("per_column_stattest_threshold for `a`"), "{e}");
        let bad = StattestOptions::all(None, Some(f64::NAN));
        assert!(bad.check(key).is_err());
        let ok = StattestOptions {
            num_stattest: Some(t("ks")),
            cat_stattest: Some(t("chi2")),
            per_column_stattest: [("a".to_string(), t("psi"))].into(),
            per_column_stattest_threshold: [("b".to_string(), 0.2)].into(),
            ..Default::default()
        };
        ok.check(key).unwrap();
        ok.check_columns(["a", "b", "c"], key).unwrap();
        let e = ok.check_columns(["a", "c"], key).unwrap_err();
        assert!(
            e.contains("per_column_stattest_threshold") && e.contains("`b`") && e.contains("a, c"),
            "{e}"
        );
        let e = ok.check_columns(["b"], |l, thr| l.flag(thr)).unwrap_err();
        assert!(e.contains("--per-column-stattest names column `a`"), "{e}");
    }

    #[test]
    fn parse_names() {
        assert_eq!(t("auto"), Stattest::Auto);
        assert_eq!(t("KL_DIV"), Stattest::Test(DriftTest::KlDivergence));
        assert!(Stattest::parse("magic").is_err());
    }
}
