#!/usr/bin/env python3
"""Write a tiny random-weights llama GGUF that llama.cpp (llama-cpp-python's server) can load.

    python scripts/llm/tiny_gguf.py OUT.gguf [--seed 0] [--layers 2] [--embd 64] [--heads 4]

Needs `numpy` and `gguf` (the gguf-py release matching llama-cpp-python's vendored llama.cpp;
scripts/llm/llama-server.sh installs both into its virtualenv). Nothing is downloaded: the
weights are seeded random numbers, so the text it generates is gibberish, but it is
DETERMINISTIC for a given seed and temperature 0, which is what an OpenAI-compatibility test
needs (same request direct and through the gateway -> same content).

Model: architecture "llama", F32 weights, 2 layers, n_embd 64, 4 heads (GQA off), n_ff 128,
context 2048, mean pooling, about 0.5 MB. Tokenizer: SentencePiece-style ("llama") vocabulary of
468 pieces: <unk> <s> </s> <|im_start|> <|im_end|>, the 256 byte-fallback tokens <0x00>..<0xFF>
(so any input tokenizes), then "▁"-prefixed words, single letters, digits and punctuation.

The output projection rows of the special and byte tokens are zero and the other rows are
scaled so that their logits spread widely: greedy decoding, and sampling with the default
top-k, only ever emit printable word/letter pieces (valid UTF-8, never EOS), so a generation
runs until max_tokens (finish_reason "length") unless a `stop` string matches.
"""

import argparse
import sys

import numpy as np

try:
    import gguf
except ImportError:
    sys.exit("tiny_gguf.py needs the `gguf` package (pip install gguf)")

WORDS = (
    "the of and to in is you that it he was for on are as with his they at be this have from or "
    "one had by word but not what all were we when your can said there use an each which she do "
    "how their if will up other about out many then them these so some her would make like him "
    "into time has look two more write go see number no way could people my than first water "
    "been call who oil its now find long down day did get come made may part hello world vigil "
    "model gateway stream token shadow canary variant"
).split()


def build_vocab():
    T = gguf.TokenType
    tokens, scores, types = [], [], []

    def add(piece, score, ttype):
        tokens.append(piece)
        scores.append(float(score))
        types.append(int(ttype))

    add("<unk>", 0.0, T.UNKNOWN)
    add("<s>", 0.0, T.CONTROL)
    add("</s>", 0.0, T.CONTROL)
    add("<|im_start|>", 0.0, T.CONTROL)
    add("<|im_end|>", 0.0, T.CONTROL)
    for b in range(256):
        add(f"<0x{b:02X}>", 0.0, T.BYTE)
    first_normal = len(tokens)
    # SentencePiece merges by score: longer pieces first.
    for w in WORDS:
        add("\u2581" + w, -1.0 / len(w), T.NORMAL)
    add("\u2581", -10.0, T.NORMAL)
    for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-:;()":
        add(c, -20.0, T.NORMAL)
    for c in "abcdefghijklmnopqrstuvwxyz":
        add("\u2581" + c, -5.0, T.NORMAL)
    # keep pieces unique (a word may equal a single letter piece such as "▁a")
    seen, keep = set(), []
    for i, t in enumerate(tokens):
        if t not in seen:
            seen.add(t)
            keep.append(i)
    return [tokens[i] for i in keep], [scores[i] for i in keep], [types[i] for i in keep], first_normal


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--embd", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ff", type=int, default=128)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--name", default="vigil-tiny-llama")
    args = ap.parse_args()

    tokens, scores, types, first_normal = build_vocab()
    n_vocab, n_embd, n_head, n_ff = len(tokens), args.embd, args.heads, args.ff
    head_dim = n_embd // n_head
    rng = np.random.default_rng(args.seed)

    def rand(*shape, std=0.02):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    w = gguf.GGUFWriter(args.out, "llama")
    w.add_name(args.name)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_vocab_size(n_vocab)
    w.add_context_length(args.ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(args.layers)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(1e-5)
    # Mean pooling: /v1/embeddings (server started with --embedding true) then returns ONE
    # n_embd vector per input, as OpenAI does; without it llama.cpp's llama arch defaults to no
    # pooling and llama_cpp.server answers a list of per-token vectors per input.
    w.add_pooling_type(gguf.PoolingType.MEAN)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    # numpy shapes are (rows, cols) = ggml's ne reversed.
    w.add_tensor("token_embd.weight", rand(n_vocab, n_embd, std=1.0))
    for i in range(args.layers):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(p + "attn_q.weight", rand(n_head * head_dim, n_embd, std=0.2))
        w.add_tensor(p + "attn_k.weight", rand(n_head * head_dim, n_embd, std=0.2))
        w.add_tensor(p + "attn_v.weight", rand(n_head * head_dim, n_embd, std=0.2))
        w.add_tensor(p + "attn_output.weight", rand(n_embd, n_head * head_dim, std=0.2))
        w.add_tensor(p + "ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(p + "ffn_gate.weight", rand(n_ff, n_embd, std=0.2))
        w.add_tensor(p + "ffn_up.weight", rand(n_ff, n_embd, std=0.2))
        w.add_tensor(p + "ffn_down.weight", rand(n_embd, n_ff, std=0.2))
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    out = rand(n_vocab, n_embd, std=0.8)
    out[:first_normal] = 0.0  # never emit <unk>, <s>, </s>, chat markers or raw bytes
    w.add_tensor("output.weight", out)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {args.out}: llama, {args.layers} layers, n_embd {n_embd}, {n_head} heads, vocab {n_vocab}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
