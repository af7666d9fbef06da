#!/usr/bin/env python3
"""Golden data for vigil's A/B statistics (experimenter/src/stats) from GrowthBook's gbstats.

Usage (from the repository root):

    python3 -m venv /tmp/venv-gbstats
    /tmp/venv-gbstats/bin/pip install -r scripts/golden/experimenter/requirements.txt
    /tmp/venv-gbstats/bin/python scripts/golden/experimenter/generate.py

writes experimenter/tests/golden/stats.json, which experimenter/tests/stats_golden.rs compares
to within 1e-6 relative (1e-9 absolute near zero).

Inputs are per-arm sufficient statistics in the serde format of `vigil_experimenter::stats::
ArmStats`; each case is run through gbstats' own test classes (TwoSidedTTest, the one-sided
t-tests, SequentialTwoSidedTTest, EffectBayesianABTest) and check_srm, exactly as
gbstats.get_configured_test builds them. Multiple-testing corrections come from statsmodels
(gbstats 0.8.0 has none); power/MDE from a scipy closed form (gbstats 0.8.0 has no power module).
"""
import json
import math
import os
import sys
from importlib.metadata import version

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm
from statsmodels.stats.multitest import multipletests

from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig, GaussianPrior
from gbstats.frequentist.tests import (
    FrequentistConfig,
    OneSidedTreatmentGreaterTTest,
    OneSidedTreatmentLesserTTest,
    SequentialConfig,
    SequentialTwoSidedTTest,
    TwoSidedTTest,
)
from gbstats.models.statistics import (
    ProportionStatistic,
    RatioStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
)
from gbstats.utils import check_srm

OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "experimenter", "tests", "golden", "stats.json"
)
rng = np.random.default_rng(20240611)


def num(x):
    """JSON has no inf/nan: write them as strings the Rust test parses."""
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


# ---------- arms in vigil's serde format ----------
def mean_arm(values):
    v = np.asarray(values, dtype=float)
    return {"type": "mean", "n": int(v.size), "sum": float(v.sum()), "sum_squares": float((v * v).sum())}


def prop_arm(n, successes):
    return {"type": "proportion", "n": int(n), "successes": float(successes)}


def moments(values, kind):
    v = np.asarray(values, dtype=float)
    if kind == "proportion":
        return prop_arm(v.size, v.sum())
    return mean_arm(v)


def ratio_arm(m, d, m_kind="mean", d_kind="mean"):
    m = np.asarray(m, dtype=float)
    d = np.asarray(d, dtype=float)
    return {
        "type": "ratio",
        "n": int(m.size),
        "numerator": moments(m, m_kind),
        "denominator": moments(d, d_kind),
        "cross_sum": float((m * d).sum()),
    }


def cuped_arm(y, x, y_kind="mean", x_kind="mean"):
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    return {
        "type": "cuped",
        "n": int(y.size),
        "metric": moments(y, y_kind),
        "covariate": moments(x, x_kind),
        "cross_sum": float((y * x).sum()),
    }


# ---------- the same arms as gbstats statistics ----------
def base_stat(m):
    if m["type"] == "proportion":
        return ProportionStatistic(n=m["n"], sum=m["successes"])
    return SampleMeanStatistic(n=m["n"], sum=m["sum"], sum_squares=m["sum_squares"])


def gb_stat(arm):
    t = arm["type"]
    if t in ("mean", "proportion"):
        return base_stat(arm)
    if t == "ratio":
        return RatioStatistic(
            n=arm["n"],
            m_statistic=base_stat(arm["numerator"]),
            d_statistic=base_stat(arm["denominator"]),
            m_d_sum_of_products=arm["cross_sum"],
        )
    if t == "cuped":
        return RegressionAdjustedStatistic(
            n=arm["n"],
            post_statistic=base_stat(arm["metric"]),
            pre_statistic=base_stat(arm["covariate"]),
            post_pre_sum_of_products=arm["cross_sum"],
            theta=0,
        )
    raise ValueError(t)


def summary(stat):
    return {
        "n": num(stat.n),
        "mean": num(stat.mean),
        "unadjusted_mean": num(stat.unadjusted_mean),
        "variance": num(stat.variance),
        "theta": num(getattr(stat, "theta", float("nan"))),
    }


def freq(test):
    r = test.compute_result()
    return {
        "expected": num(r.expected),
        "ci": [num(r.ci[0]), num(r.ci[1])],
        "p_value": num(r.p_value),
        "stddev": num(r.uplift.stddev),
        "error": r.error_message,
        "control": summary(test.stat_a),
        "treatment": summary(test.stat_b),
    }


def bayes(test):
    r = test.compute_result()
    return {
        "chance_to_win": num(r.chance_to_win),
        "expected": num(r.expected),
        "ci": [num(r.ci[0]), num(r.ci[1])],
        "stddev": num(r.uplift.stddev),
        "risk": [num(r.risk[0]), num(r.risk[1])],
        "error": r.error_message,
        "control": summary(test.stat_a),
        "treatment": summary(test.stat_b),
    }


def run_case(name, arms, weights, alpha=0.05, difference="relative", tuning=5000.0, prior_stddev=0.3, note=""):
    comparisons = []
    for i in range(1, len(arms)):
        cfg = dict(alpha=alpha, difference_type=difference, traffic_proportion_b=weights[i])
        c = {"treatment": i}
        # Fresh gbstats statistics for every test: the tests set CUPED's theta in place.
        c["two_sided"] = freq(TwoSidedTTest(gb_stat(arms[0]), gb_stat(arms[i]), FrequentistConfig(**cfg)))
        c["greater"] = freq(OneSidedTreatmentGreaterTTest(gb_stat(arms[0]), gb_stat(arms[i]), FrequentistConfig(**cfg)))
        c["less"] = freq(OneSidedTreatmentLesserTTest(gb_stat(arms[0]), gb_stat(arms[i]), FrequentistConfig(**cfg)))
        c["sequential"] = freq(
            SequentialTwoSidedTTest(
                gb_stat(arms[0]), gb_stat(arms[i]), SequentialConfig(**cfg, sequential_tuning_parameter=tuning)
            )
        )
        for key, inverse, proper in (("bayesian", False, False), ("bayesian_inverse", True, False), ("bayesian_prior", False, True)):
            prior = GaussianPrior(mean=0.0, variance=prior_stddev**2, proper=proper)
            c[key] = bayes(
                EffectBayesianABTest(
                    gb_stat(arms[0]),
                    gb_stat(arms[i]),
                    EffectBayesianConfig(**cfg, inverse=inverse, prior_effect=prior, prior_type="relative"),
                )
            )
        comparisons.append(c)
    users = [a["n"] for a in arms]
    return {
        "name": name,
        "note": note,
        "arms": arms,
        "weights": weights,
        "alpha": alpha,
        "difference": difference,
        "tuning_parameter": tuning,
        "prior_variance": prior_stddev**2,
        "srm_p_value": num(check_srm(users, weights)),
        "comparisons": comparisons,
    }


def normal(n, mu, sd):
    return rng.normal(mu, sd, n)


def cases():
    out = []
    # --- means ---
    out.append(run_case("mean_small", [mean_arm(normal(20, 10, 3)), mean_arm(normal(22, 11, 3.5))], [0.5, 0.5]))
    out.append(run_case("mean_tiny_n2", [mean_arm([1.0, 3.0]), mean_arm([2.0, 7.0])], [0.5, 0.5]))
    out.append(
        run_case(
            "revenue_large_negative_lift",
            [mean_arm(rng.exponential(25.0, 1_000_000)), mean_arm(rng.exponential(24.8, 1_000_000))],
            [0.5, 0.5],
        )
    )
    out.append(
        run_case(
            "revenue_zero_inflated_alpha_10",
            [
                mean_arm(rng.exponential(40.0, 5000) * (rng.random(5000) < 0.1)),
                mean_arm(rng.exponential(44.0, 5100) * (rng.random(5100) < 0.1)),
            ],
            [0.5, 0.5],
            alpha=0.1,
        )
    )
    out.append(run_case("mean_zero_variance_treatment", [mean_arm(normal(50, 5, 1)), mean_arm([5.0] * 40)], [0.5, 0.5]))
    out.append(run_case("mean_zero_baseline", [mean_arm([0.0] * 30), mean_arm(normal(30, 1, 1))], [0.5, 0.5]))
    out.append(run_case("mean_single_unit_arm", [mean_arm([3.0]), mean_arm(normal(30, 3, 1))], [0.5, 0.5]))
    out.append(run_case("mean_empty_treatment", [mean_arm(normal(30, 3, 1)), mean_arm([])], [0.5, 0.5]))
    out.append(
        run_case(
            "profit_negative_baseline",
            [mean_arm(normal(3000, -2.0, 5)), mean_arm(normal(3000, -1.5, 5))],
            [0.5, 0.5],
            note="negative control mean: the relative lift keeps gbstats' sign convention",
        )
    )
    out.append(
        run_case(
            "mean_absolute_difference",
            [mean_arm(normal(800, 100, 20)), mean_arm(normal(820, 101, 22))],
            [0.5, 0.5],
            difference="absolute",
        )
    )
    out.append(
        run_case(
            "mean_huge_n_synthetic",
            [
                {"type": "mean", "n": 20_000_000, "sum": 20_000_000 * 5.0, "sum_squares": 20_000_000 * (4.0 + 25.0)},
                {"type": "mean", "n": 20_000_000, "sum": 20_000_000 * 5.003, "sum_squares": 20_000_000 * (4.1 + 5.003**2)},
            ],
            [0.5, 0.5],
            note="dof ~ 4e7: tests the Student t far from small samples",
        )
    )
    # --- proportions ---
    out.append(run_case("conversion_small", [prop_arm(50, 7), prop_arm(48, 12)], [0.5, 0.5]))
    out.append(run_case("conversion_large", [prop_arm(200_000, 10_000), prop_arm(200_500, 10_400)], [0.5, 0.5]))
    out.append(run_case("conversion_zero_baseline", [prop_arm(100, 0), prop_arm(100, 5)], [0.5, 0.5]))
    out.append(run_case("conversion_all_converted", [prop_arm(100, 40), prop_arm(100, 100)], [0.5, 0.5]))
    out.append(run_case("conversion_strong_negative", [prop_arm(10_000, 1_200), prop_arm(10_000, 900)], [0.5, 0.5], alpha=0.01))
    out.append(
        run_case(
            "conversion_three_arms_unequal_weights",
            [prop_arm(40_000, 4_000), prop_arm(20_300, 2_150), prop_arm(19_800, 1_930)],
            [0.5, 0.25, 0.25],
            tuning=1000.0,
        )
    )
    out.append(
        run_case(
            "conversion_srm_failure",
            [prop_arm(50_000, 5_000), prop_arm(47_000, 4_900)],
            [0.5, 0.5],
        )
    )
    out.append(
        run_case(
            "four_arms_means",
            [mean_arm(normal(500, 10, 4)) for _ in range(1)]
            + [mean_arm(normal(480 + 10 * k, 10 + k * 0.3, 4)) for k in range(3)],
            [0.4, 0.2, 0.2, 0.2],
        )
    )
    # --- ratio metrics ---
    for label, n, lift in (("ratio_clicks_per_session", 4000, 1.03), ("ratio_small", 25, 0.9)):
        arms = []
        for k in range(2):
            sessions = rng.poisson(3.0, n) + 1
            clicks = rng.binomial(sessions * 4, 0.1 * (lift if k else 1.0))
            arms.append(ratio_arm(clicks, sessions))
        out.append(run_case(label, arms, [0.5, 0.5]))
    arms = []
    for k in range(3):
        orders = rng.poisson(0.8, 3000)
        revenue = orders * rng.gamma(2.0, 20.0 + 2 * k, 3000)
        arms.append(ratio_arm(revenue, orders))
    out.append(run_case("ratio_revenue_per_order_three_arms", arms, [1 / 3, 1 / 3, 1 / 3]))
    arms = []
    for k in range(2):
        visited = (rng.random(2000) < 0.6).astype(float)
        bought = visited * (rng.random(2000) < 0.2 + 0.03 * k)
        arms.append(ratio_arm(bought, visited, "proportion", "proportion"))
    out.append(run_case("ratio_binomial_parts", arms, [0.5, 0.5]))
    out.append(
        run_case("ratio_zero_denominator", [ratio_arm([0.0] * 10, [0.0] * 10), ratio_arm([1.0] * 10, [2.0] * 10)], [0.5, 0.5])
    )
    # --- CUPED ---
    for label, n, rho, lift in (("cuped_revenue", 5000, 0.8, 0.5), ("cuped_small", 30, 0.5, 1.0), ("cuped_weak", 2000, 0.1, 0.2)):
        arms = []
        for k in range(2):
            pre = rng.normal(20, 5, n)
            post = 20 + rho * (pre - 20) + rng.normal(0, 5 * math.sqrt(1 - rho**2), n) + (lift if k else 0.0)
            arms.append(cuped_arm(post, pre))
        out.append(run_case(label, arms, [0.5, 0.5]))
    arms = []
    for k in range(3):
        pre = (rng.random(8000) < 0.3).astype(float)
        post = ((rng.random(8000) < 0.2 + 0.4 * pre + 0.01 * k)).astype(float)
        arms.append(cuped_arm(post, pre, "proportion", "proportion"))
    out.append(run_case("cuped_conversion_three_arms", arms, [0.5, 0.25, 0.25], note="theta is pooled per pair, not over all arms"))
    out.append(
        run_case(
            "cuped_constant_covariate",
            [cuped_arm(normal(100, 10, 2), [1.0] * 100), cuped_arm(normal(100, 11, 2), [1.0] * 100)],
            [0.5, 0.5],
            note="pooled covariate variance 0: theta 0, frequentist falls back to the plain metric",
        )
    )
    return out


def srm_cases():
    rows = [
        ([500, 500], [0.5, 0.5]),
        ([450, 550], [1, 1]),
        ([10_000, 10_400], [0.5, 0.5]),
        ([40_000, 20_300, 19_800], [0.5, 0.25, 0.25]),
        ([1000, 2000, 3000, 4000], [0.1, 0.2, 0.3, 0.4]),
        ([1000, 1200, 30], [0.5, 0.5, 0.0]),
        ([0, 0], [0.5, 0.5]),
        ([5, 1], [0.5, 0.5]),
        ([50_000, 47_000], [0.5, 0.5]),
        ([123_456, 61_000, 61_900, 60_100], [0.4, 0.2, 0.2, 0.2]),
    ]
    return [{"users": u, "weights": [float(w) for w in ws], "p_value": num(check_srm(u, ws))} for u, ws in rows]


def multiple_cases():
    vectors = [
        [0.04, 0.01, 0.02],
        [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216],
        [0.5],
        [0.03, 0.03, 0.03, 0.2],
        list(rng.uniform(0, 0.2, 30)),
        [1e-12, 0.9, 0.049, 0.0, 1.0],
    ]
    out = []
    for p in vectors:
        holm = multipletests(p, method="holm")[1]
        bh = multipletests(p, method="fdr_bh")[1]
        out.append({"p_values": [num(x) for x in p], "holm": [num(x) for x in holm], "bh": [num(x) for x in bh]})
    return out


def lift_sd(metric, na, nb, lift):
    if metric["type"] == "mean":
        ma, va = metric["mean"], metric["variance"]
        mb, vb = ma * (1 + lift), va
    else:
        ma = metric["rate"]
        va = ma * (1 - ma)
        mb = ma * (1 + lift)
        vb = mb * (1 - mb)
    return math.sqrt(vb / (ma**2 * nb) + va * mb**2 / (ma**4 * na))


def closed_form_power(s, lift):
    z = norm.ppf(1 - s["alpha"] / 2)
    e = abs(lift) / lift_sd(s["metric"], s["control_units"], s["treatment_units"], lift)
    return norm.cdf(e - z) + norm.cdf(-e - z)


def power_cases():
    scenarios = [
        {"metric": {"type": "proportion", "rate": 0.1}, "control_units": 20_000.0, "treatment_units": 20_000.0, "alpha": 0.05},
        {"metric": {"type": "proportion", "rate": 0.02}, "control_units": 150_000.0, "treatment_units": 50_000.0, "alpha": 0.05},
        {"metric": {"type": "mean", "mean": 25.0, "variance": 900.0}, "control_units": 10_000.0, "treatment_units": 10_000.0, "alpha": 0.1},
        {"metric": {"type": "mean", "mean": -4.0, "variance": 16.0}, "control_units": 500.0, "treatment_units": 700.0, "alpha": 0.01},
    ]
    out = []
    for s in scenarios:
        lifts = [-0.05, 0.0, 0.01, 0.03, 0.1]
        powers = [num(closed_form_power(s, l)) for l in lifts]
        mdes = {}
        for target in (0.5, 0.8, 0.9):
            hi = 1.0 if s["metric"]["type"] == "mean" else min(1.0, 1 / s["metric"]["rate"] - 1)
            mdes[str(target)] = num(brentq(lambda l: closed_form_power(s, l) - target, 1e-12, hi, xtol=1e-15, rtol=1e-15))
        out.append({"scenario": s, "lifts": lifts, "power": powers, "mde": mdes})
    return out


def main():
    data = {
        "generator": "scripts/golden/experimenter/generate.py",
        "versions": {p: version(p) for p in ("gbstats", "numpy", "scipy", "statsmodels", "pandas", "pydantic")},
        "cases": cases(),
        "srm": srm_cases(),
        "multiple": multiple_cases(),
        "power": power_cases(),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.relpath(OUT)}: {len(data['cases'])} cases, {os.path.getsize(OUT)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
