#!/usr/bin/env python3
"""Export the scikit-learn intent heads of the PyPI package `rag-intent-classifier` to safetensors.

The package declares no licence: run this at set-up time only (scripts/models/fetch.sh does) and
never commit its files or anything derived from its weights.

Writes into OUT_DIR:
  logistic_regression.safetensors  weight [157,384] f32, bias [157] f32  (production head:
                                    multinomial LogisticRegression -> softmax(x W^T + b))
  linear_svc.safetensors           weight [157,384] f32, bias [157] f32  (candidate head:
                                    LinearSVC one-vs-rest -> decision scores, argmax)
  labels.json                      {"labels": [157 intent names in row order]}
  sklearn_reference.json           only with GOLDEN_JSON: scikit-learn's own predictions (label
                                    names; predict_proba for LogisticRegression, decision_function
                                    for LinearSVC) on the golden embeddings, which the Rust tests
                                    compare candle's heads against. Stays in the cache (derived from
                                    the unlicensed heads), never under tests/golden/.

Usage: export_heads.py PACKAGE_DIR OUT_DIR [GOLDEN_JSON]   (PACKAGE_DIR = .../rag_intent_classifier;
       GOLDEN_JSON = shadow-runner/tests/golden/all-MiniLM-L6-v2.json)
"""
import json
import os
import sys
import warnings

import joblib
import numpy as np
from safetensors.numpy import save_file

warnings.filterwarnings("ignore", message=".*unpickle estimator.*")

HEADS = {"LogisticRegression": "logistic_regression", "LinearSVC": "linear_svc"}


def label_name(cls: str, label_map: dict) -> str:
    """The package's own resolution (infer.py `_resolve_label_name`): the map is id -> name for the
    CLINC150 intents but name -> id for the meta-intents (connect_to_human: '201', ...)."""
    value = label_map.get(cls)
    if isinstance(value, str) and not value.lstrip("-").isdigit():
        return value
    for key, val in label_map.items():
        if str(val) == cls and not str(key).isdigit():
            return str(key)
    return cls


def main() -> None:
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    pkg, out = sys.argv[1], sys.argv[2]
    golden = sys.argv[3] if len(sys.argv) == 4 else None
    reference = {}
    models = os.path.join(pkg, "models")
    label_map = joblib.load(os.path.join(models, "label_map.joblib"))
    classes = None
    for sk_name, out_name in HEADS.items():
        clf = joblib.load(os.path.join(models, f"{sk_name}.joblib"))
        if classes is None:
            classes = [str(c) for c in clf.classes_]
        elif classes != [str(c) for c in clf.classes_]:
            raise SystemExit(f"{sk_name}: class order differs from LogisticRegression's")
        weight = np.ascontiguousarray(clf.coef_.astype(np.float32))
        bias = np.ascontiguousarray(clf.intercept_.astype(np.float32))
        if weight.shape != (len(classes), 384) or bias.shape != (len(classes),):
            raise SystemExit(f"{sk_name}: unexpected shapes {weight.shape} {bias.shape}")
        path = os.path.join(out, f"{out_name}.safetensors")
        save_file({"weight": weight, "bias": bias}, path,
                  metadata={"source": f"rag-intent-classifier==1.0.7 {sk_name}"})
        print(f"  wrote {path} weight {list(weight.shape)} bias {list(bias.shape)}")
        reference[out_name] = clf
    labels = [label_name(c, label_map) for c in classes]
    if len(set(labels)) != len(labels) or any(lab.isdigit() for lab in labels):
        raise SystemExit(f"could not name every class: {labels}")
    if golden:
        with open(golden, encoding="utf-8") as f:
            cases = json.load(f)["cases"]
        x = np.array([c["embedding"] for c in cases], dtype=np.float64)
        doc = {"embeddings_from": os.path.basename(golden), "heads": {}}
        for out_name, clf in reference.items():
            scores = clf.predict_proba(x) if hasattr(clf, "predict_proba") else clf.decision_function(x)
            doc["heads"][out_name] = {
                "output": "probabilities" if hasattr(clf, "predict_proba") else "decision_scores",
                "cases": [{"text": c["text"], "label": label_name(str(p), label_map),
                           "scores": [float(v) for v in row]}
                          for c, p, row in zip(cases, clf.predict(x), scores)],
            }
        path = os.path.join(out, "sklearn_reference.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False)
        print(f"  wrote {path} ({len(cases)} golden sentences)")
    with open(os.path.join(out, "labels.json"), "w", encoding="utf-8") as f:
        json.dump({"labels": labels}, f, ensure_ascii=False, indent=0)
    print(f"  wrote {os.path.join(out, 'labels.json')} ({len(labels)} labels)")


if __name__ == "__main__":
    main()
