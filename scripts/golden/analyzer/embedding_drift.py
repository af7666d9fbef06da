#!/usr/bin/env python3
"""Golden cases for vigil's embedding drift (analyzer/src/drift/embedding.rs) from Evidently.

Usage (from the repository root; the same venv as generate.py):
    python3 -m venv /tmp/venv-golden
    /tmp/venv-golden/bin/pip install -r scripts/golden/analyzer/requirements.txt
    /tmp/venv-golden/bin/python scripts/golden/analyzer/embedding_drift.py

Writes analyzer/tests/golden/embedding_drift.json:
- "rng": NumPy legacy RandomState streams (seeded choice with replacement, permutation,
  rand, pandas' sample without replacement) that Evidently's bootstrap, MMD bandwidth
  sample and train/test split draw from, so vigil can check its MT19937 port;
- "pca": scikit-learn PCA of one case (explained variance, a few transformed rows);
- "cases": reference/current embeddings as integers k meaning k / 10000 (the data is exactly
  those doubles on both sides: JSON floats would need a correctly rounding parser) and, per
  method and option set, Evidently's (value, drifted), called exactly as
  `EmbeddingsDriftMetric` calls them: `method(current_df, reference_df)`;
- "default": the method Evidently picks when none is given, through a real Report.

`model` with `pca_components` cannot be reproduced bit for bit: LAPACK's SVD rounding differs
from any port (it even differs between C- and Fortran-ordered inputs), and scikit-learn's SGD
on unscaled features is chaotic enough that one-ulp changes move the AUC by up to ±0.15 on
150-row samples. For those results the file also holds "perturbed": the range of Evidently's
own AUC over PERTURBED_RUNS runs whose PCA output was multiplied by (1 + 2e-16·N(0, 1)), and
the drift decision when all runs agree (null when they do not).
"""
import json
import os
import sys
import warnings

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

import evidently
import evidently.legacy.metrics.data_drift.embedding_drift_methods as edm
from evidently.legacy.metrics.data_drift.embedding_drift_methods import (
    DistanceDriftMethod,
    MMDDriftMethod,
    ModelDriftMethod,
    RatioDriftMethod,
)
from evidently.legacy.metrics import EmbeddingsDriftMetric
from evidently.legacy.pipeline.column_mapping import ColumnMapping
from evidently.legacy.report import Report

warnings.filterwarnings("ignore")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
OUT = os.path.join(ROOT, "analyzer", "tests", "golden", "embedding_drift.json")
SCALE = 10000
PERTURBED_RUNS = 50


def embeddings(rng, rotation, n, scales, shift, scale=1.0):
    """Rows of a low-rank-ish cloud: independent latent factors with distinct variances,
    rotated, so PCA eigenvalues are well separated."""
    z = rng.normal(size=(n, len(scales))) * np.asarray(scales) * scale
    x = (z + np.asarray(shift)) @ rotation
    return np.rint(x * SCALE).astype(np.int64)


def values(k):
    """The doubles an integer matrix stands for (k / SCALE, correctly rounded, as in Rust)."""
    return k / SCALE


def rotation(rng, d):
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def frame(x):
    return pd.DataFrame(x, columns=[f"e{i}" for i in range(x.shape[1])])


def call(method, ref, cur):
    # Evidently's ModelDriftMethod adds a column to its inputs: give every call fresh frames.
    value, drifted, name = method(frame(cur), frame(ref))
    return float(value), bool(drifted), name


def method_sets(pca=None):
    sets = []
    for dist in ["euclidean", "cosine", "cityblock", "chebyshev"]:
        sets.append(("distance", {"dist": dist}))
    sets.append(("distance", {"dist": "euclidean", "threshold": 0.05}))
    sets.append(("distance", {"dist": "euclidean", "bootstrap": True}))
    sets.append(("distance", {"dist": "cosine", "bootstrap": True, "quantile_probability": 0.9}))
    sets.append(("ratio", {}))
    sets.append(("ratio", {"component_stattest": "ks", "component_stattest_threshold": 0.05}))
    sets.append(("ratio", {"component_stattest": "psi", "threshold": 0.1}))
    sets.append(("mmd", {}))
    sets.append(("mmd", {"bootstrap": True}))
    sets.append(("model", {}))
    sets.append(("model", {"bootstrap": True}))
    if pca is not None:
        sets = [(m, {**p, "pca_components": pca}) for m, p in sets]
    return sets


CLASSES = {
    "distance": DistanceDriftMethod,
    "ratio": RatioDriftMethod,
    "mmd": MMDDriftMethod,
    "model": ModelDriftMethod,
}


def perturbed(method, ref, cur):
    """Evidently's own spread under one-ulp noise on the PCA output."""
    original = edm.get_pca_df
    vals, decisions = [], set()
    try:
        for seed in range(PERTURBED_RUNS):
            rng = np.random.default_rng(seed)

            def noisy(r, c, n):
                a, b = original(r, c, n)
                return (a * (1 + 2e-16 * rng.normal(size=a.shape)),
                        b * (1 + 2e-16 * rng.normal(size=b.shape)))

            edm.get_pca_df = noisy
            value, drifted, _ = call(method, ref, cur)
            vals.append(value)
            decisions.add(drifted)
    finally:
        edm.get_pca_df = original
    return {"runs": PERTURBED_RUNS, "min": min(vals), "max": max(vals),
            "drifted": decisions.pop() if len(decisions) == 1 else None}


def results(ref, cur, pca=None):
    out = []
    for method, params in method_sets(pca):
        value, drifted, name = call(CLASSES[method](**params), ref, cur)
        assert name == method
        row = {"method": method, "params": params, "value": value, "drifted": drifted}
        if method == "model" and pca is not None:
            row["perturbed"] = perturbed(CLASSES[method](**params), ref, cur)
        out.append(row)
    return out


def default_method(ref, cur):
    cols = [f"e{i}" for i in range(ref.shape[1])]
    mapping = ColumnMapping(embeddings={"emb": cols}, numerical_features=[])
    report = Report(metrics=[EmbeddingsDriftMetric("emb")])
    report.run(reference_data=frame(ref), current_data=frame(cur), column_mapping=mapping)
    r = report.as_dict()["metrics"][0]["result"]
    return {"method": r["method_name"], "value": float(r["drift_score"]), "drifted": bool(r["drift_detected"])}


def rng_streams():
    out = {"choice": [], "permutation": [], "rand": [], "sample": []}
    for seed, n, size in [(0, 150, 83), (1, 150, 66), (99, 1200, 960), (7, 5, 12)]:
        np.random.seed(seed)
        out["choice"].append({"seed": seed, "n": n, "size": size,
                              "values": [int(v) for v in np.random.choice(n, size)]})
    for seed, n in [(42, 270), (0, 1)]:
        out["permutation"].append({"seed": seed, "n": n,
                                   "values": [int(v) for v in np.random.RandomState(seed).permutation(n)]})
    for seed, size in [(0, 4), (3, 135)]:
        np.random.seed(seed)
        out["rand"].append({"seed": seed, "values": [float(v) for v in np.random.rand(size)]})
    for n in [1200, 1001]:
        idx = pd.DataFrame({"i": np.arange(n)}).sample(1000, random_state=0)["i"]
        out["sample"].append({"seed": 0, "n": n, "size": 1000, "values": [int(v) for v in idx]})
    return out


def pca_check(ref, cur, k):
    pca = PCA(n_components=k, random_state=0)
    r = pca.fit_transform(frame(ref))
    c = pca.transform(frame(cur))
    return {
        "n_components": k,
        "explained_variance": [float(v) for v in pca.explained_variance_],
        "reference_rows": [[float(v) for v in row] for row in r[:5]],
        "current_rows": [[float(v) for v in row] for row in c[:5]],
    }


def main():
    rng = np.random.default_rng(20260616)
    rot12 = rotation(rng, 12)
    scales12 = [3.0, 2.2, 1.6, 1.2, 0.9, 0.7, 0.55, 0.45, 0.35, 0.28, 0.22, 0.18]
    base12 = rng.normal(size=12) * 0.5
    ref = embeddings(rng, rot12, 150, scales12, base12)
    same = embeddings(rng, rot12, 120, scales12, base12)
    shift = base12.copy()
    shift[[0, 3, 5, 8]] += [1.2, 0.8, 0.6, 0.5]
    drifted = embeddings(rng, rot12, 120, scales12, shift, scale=1.1)

    rot8 = rotation(rng, 8)
    scales8 = [2.5, 1.8, 1.3, 0.9, 0.6, 0.4, 0.3, 0.2]
    base8 = rng.normal(size=8)
    big_ref = embeddings(rng, rot8, 1200, scales8, base8)
    shift8 = base8.copy()
    shift8[[1, 4]] += [0.25, 0.3]
    big_cur = embeddings(rng, rot8, 300, scales8, shift8)

    cases = []
    for name, rk, ck in [("same_150x12", ref, same), ("shifted_150x12", ref, drifted),
                         ("large_1200x8", big_ref, big_cur)]:
        r, c = values(rk), values(ck)
        res = results(r, c)
        pca = 4 if r.shape[1] == 12 else 3
        res += results(r, c, pca=pca)
        cases.append({
            "name": name,
            "reference": rk.tolist(),
            "current": ck.tolist(),
            "results": res,
            "default": default_method(r, c),
        })
        print(name, [(x["method"], round(x["value"], 4), x["drifted"]) for x in res], file=sys.stderr)

    golden = {
        "generator": "scripts/golden/analyzer/embedding_drift.py",
        "evidently": evidently.__version__,
        "scale": SCALE,
        "rng": rng_streams(),
        "pca": pca_check(values(ref), values(drifted), 4),
        "cases": cases,
    }
    with open(OUT, "w") as f:
        json.dump(golden, f, separators=(",", ":"))
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
