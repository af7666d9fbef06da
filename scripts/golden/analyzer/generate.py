#!/usr/bin/env python3
"""Generate golden cases for vigil-analyzer from Evidently, SciPy, Fairlearn and scikit-learn.

Usage (from the repository root):
    python3 -m venv /tmp/venv-golden
    /tmp/venv-golden/bin/pip install -r scripts/golden/analyzer/requirements.txt
    /tmp/venv-golden/bin/python scripts/golden/analyzer/generate.py

Writes JSON under analyzer/tests/golden/. Samples are stored either as raw value lists
or, for large ones, as (value, count) pairs plus counts of missing / infinite values; every
statistic involved is order-free, so both describe the same data.
"""
import json
import math
import os
import warnings

import numpy as np
import pandas as pd
from scipy import stats
from scipy.stats import kstwo
from scipy.special import smirnov

from evidently.legacy.calculations.stattests.registry import get_stattest
from evidently.legacy.calculations.stattests.ks_stattest import _ks_stat_test
from evidently.legacy.calculations.stattests.chisquare_stattest import _chi_stat_test
from evidently.legacy.calculations.stattests.z_stattest import _z_stat_test
from evidently.legacy.calculations.stattests.wasserstein_distance_norm import _wasserstein_distance_norm
from evidently.legacy.calculations.stattests.jensenshannon import _jensenshannon
from evidently.legacy.calculations.stattests.psi import _psi
from evidently.legacy.calculations.stattests.kl_div import _kl_div
from evidently.legacy.calculations.stattests.hellinger_distance import _hellinger_distance
from evidently.legacy.core import ColumnType
from evidently.legacy.report import Report
from evidently.legacy.metric_preset import DataDriftPreset
from evidently.legacy.pipeline.column_mapping import ColumnMapping

warnings.filterwarnings("ignore")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
OUT = os.path.join(ROOT, "analyzer", "tests", "golden")

METHODS = {
    "ks": _ks_stat_test,
    "chisquare": _chi_stat_test,
    "z": _z_stat_test,
    "wasserstein": _wasserstein_distance_norm,
    "jensenshannon": _jensenshannon,
    "psi": _psi,
    "kl": _kl_div,
    "hellinger": _hellinger_distance,
}
NUMERICAL_ONLY = {"ks", "wasserstein"}
# chisquare and z are registered for categorical columns only, but Evidently's default
# selection uses them on numerical columns with few values, so they are checked there too.
DISPLAY = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "PSI": "psi",
    "Kullback-Leibler divergence": "kl",
    "Hellinger distance": "hellinger",
}


def fnum(x):
    """JSON-safe float."""
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def encode_numeric(series: pd.Series, compact: bool):
    arr = series.to_numpy(dtype=float)
    missing = int(np.isnan(arr).sum())
    posinf = int(np.isposinf(arr).sum())
    neginf = int(np.isneginf(arr).sum())
    finite = arr[np.isfinite(arr)]
    out = {
        "integer_typed": bool(pd.api.types.is_integer_dtype(series.dtype)),
        "missing": missing,
        "posinf": posinf,
        "neginf": neginf,
    }
    if compact:
        vals, counts = np.unique(finite, return_counts=True)
        out["pairs"] = [[float(v), int(c)] for v, c in zip(vals, counts)]
    else:
        out["values"] = [float(v) for v in finite]
    return out


def encode_categorical(series: pd.Series):
    return {
        "values": [None if (v is None or (isinstance(v, float) and math.isnan(v))) else str(v) for v in series]
    }


def clean(s: pd.Series) -> pd.Series:
    # exactly what evidently.legacy.calculations.data_drift.get_one_column_drift does
    return s.replace([-np.inf, np.inf], np.nan).dropna()


def method_case(name, kind, ref, cur, compact=False, methods=None):
    ctype = ColumnType.Numerical if kind == "numerical" else ColumnType.Categorical
    r, c = clean(ref), clean(cur)
    default = get_stattest(r, c, ctype, None)
    d_score, d_drift = METHODS[DISPLAY[default.display_name]](r.copy(), c.copy(), ctype, default.default_threshold)
    expected = {}
    for m, fn in METHODS.items():
        if methods is not None and m not in methods:
            continue
        if kind == "categorical" and m in NUMERICAL_ONLY:
            continue
        thr = 0.05 if m in ("ks", "chisquare", "z") else 0.1
        score, drift = fn(r.copy(), c.copy(), ctype, thr)
        expected[m] = {"score": fnum(score), "drift": bool(drift)}
    enc = (lambda s: encode_numeric(s, compact)) if kind == "numerical" else encode_categorical
    return {
        "name": name,
        "kind": kind,
        "reference": enc(ref),
        "current": enc(cur),
        "default": {
            "method": DISPLAY[default.display_name],
            "score": fnum(d_score),
            "drift": bool(d_drift),
            "threshold": default.default_threshold,
        },
        "methods": expected,
    }


def drift_cases(rng):
    cases = []
    N = pd.Series
    # --- small reference (<= 1000 rows) ---
    cases.append(method_case("small_normal", "numerical", N(rng.normal(0, 1, 200)), N(rng.normal(0.3, 1.2, 150))))
    cases.append(method_case("small_same_distribution", "numerical", N(rng.normal(5, 2, 300)), N(rng.normal(5, 2, 300))))
    cases.append(method_case("small_integer_ties", "numerical", N(rng.integers(0, 30, 300)), N(rng.integers(2, 33, 250))))
    ref = rng.normal(0, 1, 120)
    ref[[3, 10, 50]] = np.nan
    ref[[7]] = np.inf
    ref[[8]] = -np.inf
    cur = rng.normal(0.8, 1, 90)
    cur[[1, 2]] = np.nan
    cases.append(method_case("small_nan_and_inf", "numerical", N(ref), N(cur)))
    cases.append(method_case("constant_same", "numerical", N(np.full(50, 5.0)), N(np.full(40, 5.0))))
    cases.append(method_case("constant_shifted", "numerical", N(np.full(50, 5.0)), N(np.full(40, 6.0))))
    cases.append(method_case("three_values", "numerical", N(rng.choice([1.0, 2.0, 3.0], 400, p=[0.5, 0.3, 0.2])),
                             N(rng.choice([1.0, 2.0, 3.0], 300, p=[0.4, 0.3, 0.3]))))
    cases.append(method_case("five_values", "numerical", N(rng.integers(0, 5, 500)), N(rng.integers(0, 5, 500))))
    cases.append(method_case("binary_values", "numerical", N(rng.integers(0, 2, 600)), N(rng.binomial(1, 0.6, 400))))
    cases.append(method_case("six_values_ks", "numerical", N(rng.integers(0, 6, 80)), N(rng.integers(0, 6, 70))))
    cases.append(method_case("exactly_1000_rows", "numerical", N(np.round(rng.exponential(2, 1000), 3)),
                             N(np.round(rng.exponential(2.2, 700), 3))))
    cases.append(method_case("tiny_samples", "numerical", N([1.0, 2.0, 3.0, 4.0, 5.0]), N([6.0, 7.0, 8.0, 9.0, 10.0])))
    cases.append(method_case("disjoint_large_gap", "numerical", N(rng.normal(0, 1, 300)), N(rng.normal(100, 1, 300))))
    cases.append(method_case("new_values_in_current", "numerical", N(np.round(rng.uniform(0, 10, 400), 2)),
                             N(np.round(rng.uniform(5, 15, 300), 2))))
    # --- large reference (> 1000 rows) ---
    cases.append(method_case("large_normal", "numerical", N(np.round(rng.normal(0, 1, 3000), 3)),
                             N(np.round(rng.normal(0.1, 1.1, 2500), 3)), compact=True))
    cases.append(method_case("large_same", "numerical", N(np.round(rng.normal(0, 1, 5000), 2)),
                             N(np.round(rng.normal(0, 1, 5000), 2)), compact=True))
    cases.append(method_case("large_four_values", "numerical", N(rng.choice([0.5, 1.5, 2.5, 9.0], 2000)),
                             N(rng.choice([0.5, 1.5, 2.5, 9.0], 1500, p=[0.1, 0.2, 0.3, 0.4])), compact=True))
    cases.append(method_case("large_1001_rows", "numerical", N(np.round(rng.gamma(2, 2, 1001), 2)),
                             N(np.round(rng.gamma(2, 2.3, 800), 2)), compact=True))
    cases.append(method_case("large_integer_21_values_width_clamp", "numerical", N(rng.integers(0, 21, 400_000)),
                             N(rng.integers(0, 21, 200_000)), compact=True))
    cases.append(method_case("large_twenty_values_per_value_bins", "numerical", N(rng.integers(0, 20, 4000)),
                             N(rng.integers(3, 23, 3000)), compact=True))
    ref = np.round(rng.lognormal(0, 1, 2000), 3)
    ref[:20] = np.nan
    cur = np.round(rng.lognormal(0.2, 1, 2000), 3)
    cur[:5] = np.inf
    cases.append(method_case("large_lognormal_nan_inf", "numerical", N(ref), N(cur), compact=True))
    cases.append(method_case("ks_asymptotic", "numerical", N(np.round(rng.normal(0, 1, 12000), 2)),
                             N(np.round(rng.normal(0.02, 1, 11000), 2)), compact=True, methods={"ks"}))
    cases.append(method_case("ks_asymptotic_small_other", "numerical", N(np.round(rng.normal(0, 1, 120), 2)),
                             N(np.round(rng.normal(0.3, 1, 20000), 2)), compact=True, methods={"ks"}))
    cases.append(method_case("ks_exact_10000", "numerical", N(rng.integers(0, 400, 10000)),
                             N(rng.integers(0, 402, 9999)), compact=True, methods={"ks"}))
    # --- categorical ---
    C = lambda xs: pd.Series(list(xs), dtype=object)
    cases.append(method_case("cat_three", "categorical", C(rng.choice(["a", "b", "c"], 300)),
                             C(rng.choice(["a", "b", "c"], 200, p=[0.5, 0.25, 0.25]))))
    ref = list(rng.choice(["red", "green"], 250))
    ref[:7] = [None] * 7
    cases.append(method_case("cat_two_with_missing", "categorical", C(ref), C(rng.choice(["red", "green"], 150, p=[0.7, 0.3]))))
    cases.append(method_case("cat_unseen_category", "categorical", C(rng.choice(["a", "b", "c"], 400)),
                             C(rng.choice(["a", "b", "c", "d"], 300))))
    cases.append(method_case("cat_category_gone", "categorical", C(rng.choice(["a", "b", "c", "d"], 400)),
                             C(rng.choice(["a", "b"], 300))))
    cases.append(method_case("cat_single_same", "categorical", C(["x"] * 30), C(["x"] * 20)))
    cases.append(method_case("cat_single_different", "categorical", C(["x"] * 30), C(["y"] * 20)))
    cases.append(method_case("cat_large", "categorical", C(rng.choice(list("abcdef"), 5000)),
                             C(rng.choice(list("abcdefg"), 4000, p=[0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1]))))
    cases.append(method_case("cat_large_same", "categorical", C(rng.choice(list("pqrs"), 3000)),
                             C(rng.choice(list("pqrs"), 3000))))
    return cases


def dataset_case(name, ref: pd.DataFrame, cur: pd.DataFrame, numerical, categorical):
    mapping = ColumnMapping(numerical_features=numerical, categorical_features=categorical, target=None, prediction=None)
    rep = Report(metrics=[DataDriftPreset()])
    rep.run(reference_data=ref, current_data=cur, column_mapping=mapping)
    d = rep.as_dict()
    table = next(m for m in d["metrics"] if m["metric"] == "DataDriftTable")["result"]
    cols = []
    for col, res in table["drift_by_columns"].items():
        cols.append({
            "column": col,
            "type": "numerical" if res["column_type"] == "num" else "categorical",
            "method": DISPLAY[res["stattest_name"]],
            "score": fnum(res["drift_score"]),
            "threshold": res["stattest_threshold"],
            "drift": bool(res["drift_detected"]),
        })

    def enc_frame(df):
        out = {}
        for col in df.columns:
            if col in numerical:
                out[col] = encode_numeric(df[col], compact=False)
            else:
                out[col] = encode_categorical(df[col])
        return out

    return {
        "name": name,
        "numerical": numerical,
        "categorical": categorical,
        "reference": enc_frame(ref),
        "current": enc_frame(cur),
        "expected": {
            "dataset_drift": bool(table["dataset_drift"]),
            "drift_share": table["share_of_drifted_columns"],
            "columns": cols,
        },
    }


def dataset_cases(rng):
    out = []
    for name, n_ref, n_cur in [("dataset_small", 400, 300), ("dataset_large", 1500, 1200)]:
        def frame(n, shift):
            x = np.round(rng.normal(shift, 1, n), 3)
            x[rng.random(n) < 0.05] = np.nan
            return pd.DataFrame({
                "num_cont": x,
                "num_int": rng.integers(0, 50 + int(shift * 10), n),
                "num_few": rng.choice([1.0, 2.0, 3.0], n),
                "num_binary": rng.integers(0, 2, n),
                "num_const": np.full(n, 7.0),
                "cat_city": pd.Series(rng.choice(["paris", "rome", "oslo"] + (["kyiv"] if shift else []), n), dtype=object),
                "cat_flag": pd.Series(rng.choice(["yes", "no"], n), dtype=object),
            })
        ref, cur = frame(n_ref, 0.0), frame(n_cur, 0.5)
        out.append(dataset_case(name, ref, cur, ["num_cont", "num_int", "num_few", "num_binary", "num_const"],
                                ["cat_city", "cat_flag"]))
    return out


def options_case(name, ref: pd.DataFrame, cur: pd.DataFrame, numerical, categorical, options):
    """A mixed frame judged with Evidently's per-column / per-type / global test and threshold
    options (legacy DataDriftPreset names, which are vigil's flag and [[monitors]] key names)."""
    mapping = ColumnMapping(numerical_features=numerical, categorical_features=categorical, target=None, prediction=None)
    rep = Report(metrics=[DataDriftPreset(**options)])
    rep.run(reference_data=ref, current_data=cur, column_mapping=mapping)
    d = rep.as_dict()
    table = next(m for m in d["metrics"] if m["metric"] == "DataDriftTable")["result"]
    cols = []
    for col, res in table["drift_by_columns"].items():
        cols.append({
            "column": col,
            "type": "numerical" if res["column_type"] == "num" else "categorical",
            "method": DISPLAY[res["stattest_name"]],
            "score": fnum(res["drift_score"]),
            "threshold": res["stattest_threshold"],
            "drift": bool(res["drift_detected"]),
        })
    # The 0.7 API (presets.DataDriftPreset: method, num_method, per_column_method, ...) maps onto
    # the same options; check that its per-column scores are these.
    from evidently import Dataset, DataDefinition, Report as NewReport
    from evidently.presets import DataDriftPreset as NewPreset
    new_names = {"stattest": "method", "cat_stattest": "cat_method", "num_stattest": "num_method",
                 "per_column_stattest": "per_column_method", "stattest_threshold": "threshold",
                 "cat_stattest_threshold": "cat_threshold", "num_stattest_threshold": "num_threshold",
                 "per_column_stattest_threshold": "per_column_threshold"}
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    snap = NewReport([NewPreset(**{new_names[k]: v for k, v in options.items()})]).run(
        Dataset.from_pandas(cur, data_definition=definition), Dataset.from_pandas(ref, data_definition=definition))
    new_scores = {}
    for m in snap.dict()["metrics"]:
        cfg = m.get("config", {})
        if cfg.get("type", "").endswith("ValueDrift"):
            new_scores[cfg["column"]] = m["value"]
    for c in cols:
        assert math.isclose(new_scores[c["column"]], float(c["score"]), rel_tol=1e-12, abs_tol=1e-300), \
            (name, c, new_scores.get(c["column"]))

    def enc_frame(df):
        return {col: encode_numeric(df[col], compact=False) if col in numerical else encode_categorical(df[col])
                for col in df.columns}

    return {
        "name": name,
        "numerical": numerical,
        "categorical": categorical,
        "options": options,
        "reference": enc_frame(ref),
        "current": enc_frame(cur),
        "expected": {
            "dataset_drift": bool(table["dataset_drift"]),
            "drift_share": table["share_of_drifted_columns"],
            "columns": cols,
        },
    }


def options_cases(rng):
    """Per-column, per-type and global tests and thresholds on mixed files (Evidently's
    precedence: per column > type > every column > default, for tests and thresholds apart)."""
    out = []

    def frame(n, shift):
        x = np.round(rng.normal(shift, 1, n), 3)
        x[rng.random(n) < 0.04] = np.nan
        return pd.DataFrame({
            "age": np.round(rng.normal(40 + 3 * shift, 9, n), 1),
            "income": np.round(rng.lognormal(10 + 0.2 * shift, 0.5, n), 2),
            "score": x,
            "tickets": rng.integers(0, 4 + int(shift * 2), n),
            "plan": pd.Series(rng.choice(["basic", "pro", "team"], n, p=[0.5 - 0.1 * shift, 0.3, 0.2 + 0.1 * shift]),
                              dtype=object),
            "region": pd.Series(rng.choice(["eu", "us", "apac", "latam"], n), dtype=object),
            "churned": pd.Series(rng.choice(["yes", "no"], n, p=[0.2 + 0.05 * shift, 0.8 - 0.05 * shift]),
                                 dtype=object),
        })

    numerical = ["age", "income", "score", "tickets"]
    categorical = ["plan", "region", "churned"]
    # large reference: every kind of option, none of the global ones
    ref, cur = frame(1500, 0.0), frame(1200, 1.0)
    out.append(options_case("per_column_num_cat", ref, cur, numerical, categorical, {
        "num_stattest": "psi",
        "num_stattest_threshold": 0.15,
        "cat_stattest": "chisquare",
        "cat_stattest_threshold": 0.01,
        "per_column_stattest": {"age": "ks", "region": "jensenshannon", "tickets": "hellinger"},
        "per_column_stattest_threshold": {"income": 0.05, "region": 0.02, "churned": 0.2},
    }))
    # small reference: a global test and threshold, overridden for categorical columns and for
    # single columns; tests left to the default choice where nothing names them
    ref, cur = frame(600, 0.0), frame(500, 0.5)
    out.append(options_case("global_with_overrides", ref, cur, numerical, categorical, {
        "stattest": "kl_div",
        "stattest_threshold": 0.12,
        "cat_stattest": "z",
        "per_column_stattest": {"score": "wasserstein", "plan": "psi"},
        "per_column_stattest_threshold": {"tickets": 0.3, "score": 0.05},
    }))
    # thresholds only: every test is the default choice (KS, chi-square, Z here)
    ref, cur = frame(400, 0.0), frame(300, 0.3)
    out.append(options_case("thresholds_only", ref, cur, numerical, categorical, {
        "num_stattest_threshold": 0.01,
        "per_column_stattest_threshold": {"age": 0.2, "plan": 0.3},
    }))
    return out


def ks_distribution_cases():
    kstwo_rows = []
    for n in [1, 2, 5, 20, 50, 100, 140, 141, 300, 1000, 5000, 20000, 50000, 100000, 100001, 250000, 1500000]:
        for x in [0.0005, 0.001, 0.003, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.45, 0.5, 0.6, 0.9, 0.99]:
            kstwo_rows.append([n, x, fnum(kstwo.sf(x, n))])
    smirnov_rows = []
    for n in [1, 2, 3, 10, 50, 141, 1000, 20000, 500000, 1000000, 2000000]:
        for x in [0.0001, 0.001, 0.01, 0.05, 0.1, 0.3, 0.5, 0.7, 0.95]:
            smirnov_rows.append([n, x, fnum(smirnov(n, x))])
    return {"kstwo_sf": kstwo_rows, "smirnov_sf": smirnov_rows}


def ks_2samp_cases(rng):
    rows = []
    for n1, n2 in [(1, 1), (3, 4), (5, 7), (10, 10), (30, 30), (100, 73), (250, 400), (999, 1000), (2000, 1999),
                   (5000, 5000), (200, 10001), (15000, 30000)]:
        for shift in [0.0, 0.1, 0.5]:
            a = rng.integers(0, 60, n1).astype(float)
            b = (rng.integers(0, 60, n2) + np.round(shift * 10)).astype(float)
            res = stats.ks_2samp(a, b)
            va, ca = np.unique(a, return_counts=True)
            vb, cb = np.unique(b, return_counts=True)
            rows.append({
                "reference": [[float(v), int(c)] for v, c in zip(va, ca)],
                "current": [[float(v), int(c)] for v, c in zip(vb, cb)],
                "statistic": float(res.statistic),
                "p_value": fnum(res.pvalue),
            })
    return rows


def fairness_cases(rng):
    from fairlearn.metrics import (MetricFrame, count, demographic_parity_difference, demographic_parity_ratio,
                                   equal_opportunity_difference, equal_opportunity_ratio,
                                   equalized_odds_difference, equalized_odds_ratio, false_positive_rate,
                                   selection_rate, true_positive_rate)
    cases = []
    specs = [
        ("three_groups", {"a": (400, 0.5, 0.8), "b": (300, 0.3, 0.6), "c": (25, 0.4, 0.7)}),
        ("two_groups_equal", {"f": (500, 0.4, 0.9), "m": (500, 0.4, 0.9)}),
        ("group_without_positives", {"x": (200, 0.5, 0.7), "y": (50, 0.0, 0.7), "z": (100, 0.6, 0.5)}),
    ]
    for name, groups in specs:
        sens, y, yp = [], [], []
        for g, (n, base, acc) in groups.items():
            yt = (rng.random(n) < base).astype(int)
            flip = rng.random(n) > acc
            pr = np.where(flip, 1 - yt, yt)
            sens += [g] * n
            y += list(yt)
            yp += list(pr)
        y, yp, sens = np.array(y), np.array(yp), np.array(sens, dtype=object)
        mf = MetricFrame(metrics={"count": count, "selection_rate": selection_rate, "tpr": true_positive_rate,
                                  "fpr": false_positive_rate},
                         y_true=y, y_pred=yp, sensitive_features=sens)
        by = mf.by_group
        groups_out = {}
        for g in by.index:
            k = int(((sens == g) & (yp == 1)).sum())
            n = int((sens == g).sum())
            ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
            groups_out[str(g)] = {
                "count": int(by.loc[g, "count"]),
                "selection_rate": float(by.loc[g, "selection_rate"]),
                "tpr": float(by.loc[g, "tpr"]),
                "fpr": float(by.loc[g, "fpr"]),
                "selection_rate_ci_low": float(ci.low),
                "selection_rate_ci_high": float(ci.high),
            }
        kw = dict(y_true=y, y_pred=yp, sensitive_features=sens)
        cases.append({
            "name": name,
            "sensitive": [str(s) for s in sens],
            "label": [int(v) for v in y],
            "prediction": [int(v) for v in yp],
            "expected": {
                "groups": groups_out,
                "demographic_parity_difference": fnum(demographic_parity_difference(**kw)),
                "demographic_parity_ratio": fnum(demographic_parity_ratio(**kw)),
                "equalized_odds_difference": fnum(equalized_odds_difference(**kw)),
                "equalized_odds_ratio": fnum(equalized_odds_ratio(**kw)),
                "equal_opportunity_difference": fnum(equal_opportunity_difference(**kw)),
                "equal_opportunity_ratio": fnum(equal_opportunity_ratio(**kw)),
            },
        })
    return cases


def performance_cases(rng):
    from sklearn import metrics as skm
    cases = []
    for name, n in [("classification_300", 300), ("classification_2000", 2000)]:
        y = (rng.random(n) < 0.35).astype(int)
        score = np.clip(0.35 + 0.3 * (y - 0.35) + rng.normal(0, 0.2, n), 0.001, 0.999)
        pred = (score >= 0.5).astype(int)
        # expected calibration error: 10 equal-width bins on [0, 1], right-closed except the first
        bins = np.linspace(0, 1, 11)
        idx = np.clip(np.searchsorted(bins, score, side="left") - 1, 0, 9)
        ece = 0.0
        for b in range(10):
            m = idx == b
            if m.any():
                ece += m.sum() / n * abs(y[m].mean() - score[m].mean())
        cases.append({
            "name": name,
            "label": [int(v) for v in y],
            "score": [float(v) for v in score],
            "expected": {
                "accuracy": skm.accuracy_score(y, pred),
                "precision": skm.precision_score(y, pred),
                "recall": skm.recall_score(y, pred),
                "f1": skm.f1_score(y, pred),
                "roc_auc": skm.roc_auc_score(y, score),
                "log_loss": skm.log_loss(y, score),
                "brier": skm.brier_score_loss(y, score),
                "ece": float(ece),
            },
        })
    yt = rng.normal(10, 3, 500)
    yp = yt + rng.normal(0, 1, 500)
    cases.append({
        "name": "regression_500",
        "label": [float(v) for v in yt],
        "prediction": [float(v) for v in yp],
        "expected": {
            "mae": skm.mean_absolute_error(yt, yp),
            "rmse": skm.root_mean_squared_error(yt, yp),
            "mape": skm.mean_absolute_percentage_error(yt, yp),
        },
    })
    lat = np.round(rng.lognormal(3, 0.5, 1001), 2)
    cases.append({
        "name": "latency_1001",
        "latency_ms": [float(v) for v in lat],
        "expected": {"p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)),
                     "p99": float(np.percentile(lat, 99))},
    })
    return cases


def write(name, obj):
    path = os.path.join(OUT, name)
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240611)
    write("drift_methods.json", drift_cases(rng))
    write("drift_datasets.json", dataset_cases(rng))
    write("ks_distribution.json", ks_distribution_cases())
    write("ks_2samp.json", ks_2samp_cases(rng))
    write("fairness.json", fairness_cases(rng))
    write("performance.json", performance_cases(rng))
    # own generator, so the cases above stay as they were
    write("drift_options.json", options_cases(np.random.default_rng(20261203)))


if __name__ == "__main__":
    main()
