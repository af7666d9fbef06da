#!/usr/bin/env python3
"""Evidently's side of `vigil drift --text-column` (docs/benchmarks.md, "Text drift (issue #16)").

Encodes a text column of two CSV files with sentence-transformers all-MiniLM-L6-v2 on the CPU
(the local model directory, no network), then runs Evidently 0.7.23's embedding drift — a legacy
Report with `EmbeddingsDriftMetric` and `RatioDriftMethod()` (its defaults: per-component
normed Wasserstein ≥ 0.1, drifted when the share of drifted components > 0.2), as
scripts/golden/analyzer/embedding_drift.py calls it — and prints the drift value, the verdict
and the wall and CPU time (time.process_time: all threads) split into load, encode and drift.

    VENV/bin/python scripts/bench/evidently_text_drift.py REF.csv CUR.csv \
        [--column prompt] [--model ~/.cache/vigil/models/all-MiniLM-L6-v2] [--batch-size 32] \
        [--threads N]

VENV: evidently from scripts/golden/analyzer/requirements.txt plus `torch` and
`sentence-transformers` from PyPI.
"""
import argparse
import json
import os
import sys
import time
import warnings

T_START = time.perf_counter()
C_START = time.process_time()  # CPU time of the process, all threads
warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pandas as pd  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("reference")
    p.add_argument("current")
    p.add_argument("--column", default="prompt")
    p.add_argument("--model", default=os.path.expanduser("~/.cache/vigil/models/all-MiniLM-L6-v2"))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer
    from evidently.legacy.metrics import EmbeddingsDriftMetric
    from evidently.legacy.metrics.data_drift.embedding_drift_methods import RatioDriftMethod
    from evidently.legacy.pipeline.column_mapping import ColumnMapping
    from evidently.legacy.report import Report
    import evidently

    if a.threads:
        torch.set_num_threads(a.threads)
    ref_texts = pd.read_csv(a.reference, keep_default_na=False)[a.column].astype(str).tolist()
    cur_texts = pd.read_csv(a.current, keep_default_na=False)[a.column].astype(str).tolist()
    model = SentenceTransformer(a.model, device="cpu")
    t_loaded, c_loaded = time.perf_counter(), time.process_time()

    ref = model.encode(ref_texts, batch_size=a.batch_size, convert_to_numpy=True,
                       normalize_embeddings=True)
    cur = model.encode(cur_texts, batch_size=a.batch_size, convert_to_numpy=True,
                       normalize_embeddings=True)
    t_encoded, c_encoded = time.perf_counter(), time.process_time()

    cols = [f"{a.column}_{i}" for i in range(ref.shape[1])]
    ref_df = pd.DataFrame(ref, columns=cols)
    cur_df = pd.DataFrame(cur, columns=cols)
    mapping = ColumnMapping(embeddings={a.column: cols}, numerical_features=[])
    report = Report(metrics=[EmbeddingsDriftMetric(a.column, drift_method=RatioDriftMethod())])
    report.run(reference_data=ref_df, current_data=cur_df, column_mapping=mapping)
    r = report.as_dict()["metrics"][0]["result"]
    t_drift, c_drift = time.perf_counter(), time.process_time()

    print(json.dumps({
        "tool": f"evidently {evidently.__version__} + sentence-transformers "
                f"{sys.modules['sentence_transformers'].__version__} (torch {torch.__version__}, "
                f"{torch.get_num_threads()} threads)",
        "method": r["method_name"],
        "value": float(r["drift_score"]),
        "drifted": bool(r["drift_detected"]),
        "reference_rows": len(ref_texts),
        "current_rows": len(cur_texts),
        "seconds": {
            "imports_and_model_load": round(t_loaded - T_START, 3),
            "encode": round(t_encoded - t_loaded, 3),
            "drift": round(t_drift - t_encoded, 3),
            "total": round(t_drift - T_START, 3),
        },
        "cpu_seconds": {
            "imports_and_model_load": round(c_loaded - C_START, 3),
            "encode": round(c_encoded - c_loaded, 3),
            "drift": round(c_drift - c_encoded, 3),
            "total": round(c_drift - C_START, 3),
        },
        "texts_per_second_encode": round((len(ref_texts) + len(cur_texts)) / (t_encoded - t_loaded), 1),
    }, indent=1))


if __name__ == "__main__":
    main()
