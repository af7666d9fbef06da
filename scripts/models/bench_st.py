#!/usr/bin/env python3
"""sentence-transformers (PyTorch, CPU) throughput on the same inputs as the Rust example
`cargo run --release -p vigil-shadow-runner --example throughput`.

    bash scripts/models/bench_st.sh [ROUNDS]      # creates the venv, then runs this file

Encodes the 256 sentences of shadow-runner/tests/golden/queries.txt (cycled, the same list and
order as the Rust benchmark) with all-MiniLM-L6-v2 from the model cache, at batch 1, 32 and 128,
and prints the best of ROUNDS rounds in sentences/s. Threads: RAYON_NUM_THREADS (the variable the
Rust side reads), else torch's default.
"""
import os
import sys
import time

import torch
from sentence_transformers import SentenceTransformer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def models_dir():
    cache = os.environ.get("VIGIL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "vigil")
    return os.path.join(cache, "models")


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    threads = os.environ.get("RAYON_NUM_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    with open(os.path.join(ROOT, "shadow-runner", "tests", "golden", "queries.txt"), encoding="utf-8") as f:
        queries = [l.strip() for l in f if l.strip() and not l.strip().startswith("#")]
    texts = [queries[i % len(queries)] for i in range(256)]
    model = SentenceTransformer(os.path.join(models_dir(), "all-MiniLM-L6-v2"), device="cpu")
    print(f"sentence-transformers {__import__('sentence_transformers').__version__}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, {len(texts)} sentences, best of {rounds}")
    for batch in (1, 32, 128):
        model.encode(texts[:batch], batch_size=batch)  # warm-up
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            out = model.encode(texts, batch_size=batch, normalize_embeddings=False)
            best = min(best, time.perf_counter() - start)
            assert out.shape == (len(texts), 384)
        print(f"batch {batch:>3}: {len(texts) / best:8.1f} sentences/s")


if __name__ == "__main__":
    main()
