//! Turning analysis results into a call a person can act on, with the reasons spelled out.
//!
//! The order of the checks is the point: a broken split (SRM) invalidates everything, so it is
//! checked first; an experiment stopped before its planned sample inflates false positives, so
//! no winner is called before it; a harmed guardrail outweighs a better primary metric.

use serde::{Deserialize, Serialize};

use super::frequentist::{Alternative, FrequentistConfig, FrequentistResult};
use super::moments::ArmStats;
use super::srm::SrmCheck;
use super::{DifferenceType, StatsError};

/// What to do with the treatment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The primary metric improved significantly and no guardrail was harmed.
    Ship,
    /// The primary metric got significantly worse, or a guardrail was harmed.
    Rollback,
    /// Not enough data yet: wait for the planned sample.
    KeepRunning,
    /// The data cannot support a call (SRM, no detectable effect at the planned sample,
    /// degenerate data).
    Inconclusive,
}

/// A verdict and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub reasons: Vec<String>,
}

/// A guardrail metric tested one-sided in its harmful direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardrailInput {
    pub name: String,
    /// One-sided test whose alternative is "the treatment is worse".
    pub result: FrequentistResult,
}

impl GuardrailInput {
    /// Runs the one-sided test for a guardrail: `higher_is_worse` for latency, error rate or
    /// cost (alternative: treatment greater), false for revenue-like guardrails.
    pub fn evaluate(
        name: impl Into<String>,
        control: &ArmStats,
        treatment: &ArmStats,
        higher_is_worse: bool,
        alpha: f64,
    ) -> Result<Self, StatsError> {
        let config = FrequentistConfig {
            alpha,
            test_value: 0.0,
            difference: DifferenceType::Relative,
            alternative: if higher_is_worse {
                Alternative::Greater
            } else {
                Alternative::Less
            },
        };
        Ok(Self {
            name: name.into(),
            result: super::frequentist::analyze(control, treatment, &config)?,
        })
    }
}

/// Everything [`decide`] looks at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionInput {
    /// Two-sided (fixed-horizon or sequential) result on the primary metric.
    pub primary: FrequentistResult,
    /// Whether a higher primary metric is better.
    pub primary_higher_is_better: bool,
    pub guardrails: Vec<GuardrailInput>,
    pub srm: SrmCheck,
    /// Units in the smallest arm so far.
    pub smallest_arm_units: u64,
    /// Units per arm the experiment was planned for (from the power calculation).
    pub min_units_per_arm: u64,
    /// Significance level for primary and guardrails.
    pub alpha: f64,
}

/// Decides Ship / Rollback / KeepRunning / Inconclusive; see the module docs for the order.
pub fn decide(input: &DecisionInput) -> Decision {
    let mut reasons = Vec::new();
    if input.srm.mismatch {
        reasons.push(format!(
            "sample ratio mismatch (p = {:.2e}): the split does not match the configured weights; \
             fix assignment or exposure logging before trusting any metric",
            input.srm.p_value
        ));
        return Decision {
            verdict: Verdict::Inconclusive,
            reasons,
        };
    }
    if input.smallest_arm_units < input.min_units_per_arm {
        reasons.push(format!(
            "only {} of the planned {} units per arm so far",
            input.smallest_arm_units, input.min_units_per_arm
        ));
        return Decision {
            verdict: Verdict::KeepRunning,
            reasons,
        };
    }
    let harmed: Vec<&GuardrailInput> = input
        .guardrails
        .iter()
        .filter(|g| g.result.is_significant(input.alpha))
        .collect();
    if !harmed.is_empty() {
        for g in harmed {
            reasons.push(format!(
                "guardrail {} got worse: lift {:+.2}% (one-sided p = {:.3})",
                g.name,
                100.0 * g.result.expected,
                g.result.p_value
            ));
        }
        return Decision {
            verdict: Verdict::Rollback,
            reasons,
        };
    }
    let p = &input.primary;
    if let Some(reason) = p.not_estimable {
        reasons.push(format!(
            "primary metric not estimable: {}",
            reason.gbstats_message()
        ));
        return Decision {
            verdict: Verdict::Inconclusive,
            reasons,
        };
    }
    if !p.is_significant(input.alpha) {
        reasons.push(format!(
            "no significant change in the primary metric at the planned sample: lift {:+.2}% \
             (CI {:+.2}% .. {:+.2}%, p = {:.3})",
            100.0 * p.expected,
            100.0 * p.ci[0],
            100.0 * p.ci[1],
            p.p_value
        ));
        return Decision {
            verdict: Verdict::Inconclusive,
            reasons,
        };
    }
    let better = (p.expected > 0.0) == input.primary_higher_is_better;
    reasons.push(format!(
        "primary metric {}: lift {:+.2}% (CI {:+.2}% .. {:+.2}%, p = {:.2e})",
        if better { "improved" } else { "got worse" },
        100.0 * p.expected,
        100.0 * p.ci[0],
        100.0 * p.ci[1],
        p.p_value
    ));
    Decision {
        verdict: if better {
            Verdict::Ship
        } else {
            Verdict::Rollback
        },
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::moments::ProportionMoments;
    use crate::stats::srm::{check_srm, SRM_P_THRESHOLD};

    fn conv(n: u64, successes: f64) -> ArmStats {
        ArmStats::Proportion(ProportionMoments { n, successes })
    }

    fn input(
        control: ArmStats,
        treatment: ArmStats,
        guardrails: Vec<GuardrailInput>,
    ) -> DecisionInput {
        let users = [control.units(), treatment.units()];
        DecisionInput {
            primary: crate::stats::frequentist::analyze(
                &control,
                &treatment,
                &FrequentistConfig::default(),
            )
            .expect("valid"),
            primary_higher_is_better: true,
            guardrails,
            srm: check_srm(&users, &[0.5, 0.5], SRM_P_THRESHOLD).expect("valid"),
            smallest_arm_units: users[0].min(users[1]),
            min_units_per_arm: 10_000,
            alpha: 0.05,
        }
    }

    #[test]
    fn clear_win_ships() {
        // 10.0 % → 11.0 % on 20,000 users per arm: z ≈ 3.3.
        let d = decide(&input(conv(20_000, 2_000.0), conv(20_000, 2_200.0), vec![]));
        assert_eq!(d.verdict, Verdict::Ship, "{d:?}");
    }

    #[test]
    fn clear_loss_rolls_back() {
        let d = decide(&input(conv(20_000, 2_200.0), conv(20_000, 2_000.0), vec![]));
        assert_eq!(d.verdict, Verdict::Rollback, "{d:?}");
    }

    #[test]
    fn srm_blocks_a_winner() {
        // 20,000 vs 18,000 with 50/50 weights: χ² ≈ 105, p ≈ 1e-24.
        let d = decide(&input(conv(20_000, 2_000.0), conv(18_000, 2_200.0), vec![]));
        assert_eq!(d.verdict, Verdict::Inconclusive, "{d:?}");
        assert!(d.reasons[0].contains("sample ratio mismatch"));
    }

    #[test]
    fn too_early_keeps_running() {
        let d = decide(&input(conv(5_000, 500.0), conv(5_000, 600.0), vec![]));
        assert_eq!(d.verdict, Verdict::KeepRunning, "{d:?}");
    }

    #[test]
    fn harmed_guardrail_rolls_back_a_winner() {
        // Error rate 1.0 % → 1.5 %, higher is worse: one-sided p ≈ 1.2e-4.
        let g = GuardrailInput::evaluate(
            "error_rate",
            &conv(20_000, 200.0),
            &conv(20_000, 300.0),
            true,
            0.05,
        )
        .expect("valid");
        assert!(g.result.p_value < 1e-3, "{}", g.result.p_value);
        let d = decide(&input(
            conv(20_000, 2_000.0),
            conv(20_000, 2_200.0),
            vec![g],
        ));
        assert_eq!(d.verdict, Verdict::Rollback, "{d:?}");
        assert!(d.reasons[0].contains("error_rate"));
    }

    #[test]
    fn improved_guardrail_is_not_harm() {
        // Error rate went down: the one-sided "worse" test is far from significant.
        let g = GuardrailInput::evaluate(
            "error_rate",
            &conv(20_000, 300.0),
            &conv(20_000, 200.0),
            true,
            0.05,
        )
        .expect("valid");
        assert!(g.result.p_value > 0.99);
        let d = decide(&input(
            conv(20_000, 2_000.0),
            conv(20_000, 2_200.0),
            vec![g],
        ));
        assert_eq!(d.verdict, Verdict::Ship, "{d:?}");
    }

    #[test]
    fn no_effect_at_planned_sample_is_inconclusive() {
        let d = decide(&input(conv(20_000, 2_000.0), conv(20_000, 2_010.0), vec![]));
        assert_eq!(d.verdict, Verdict::Inconclusive, "{d:?}");
    }
}
