#!/usr/bin/env python3
"""Drive OpenAI-compatible endpoints with the official `openai` Python SDK (2.x).

The Rust integration tests run this with the python that `bash scripts/llm/setup.sh` prints, so
vigil's /v1 routes are checked against the real client, not against our reading of the spec.
Only `openai` is needed besides the standard library.

Subcommands (every one prints exactly ONE JSON object on stdout):

  compare      --direct URL --via URL --model-direct M1 --model-via M2
               [--user U] [--api-key K] [--include-usage] [--messages-json JSON]
               [--max-tokens N (16)] [--temperature T (0) | --no-temperature] [--seed S]
      chat.completions.create, non-streaming and streaming, against both base URLs. Either of
      --direct/--via may be left out (that side is then absent from the output).
  completions  same options as compare, with --prompt TEXT instead of --messages-json:
      the legacy completions.create, same JSON shape.
  models       --base URL                   -> {"ids": [...], "data": [...]}
  embeddings   --base URL --model M --input TEXT [--input TEXT ...] [--encoding-format float|base64]
      -> {"dims", "count", "usage", "model", "encoding_format_sent", "wire_embedding_type", ...}
  stream-and-drop --base URL --model M --after N [--kind chat|completions] [--linger S]
      reads N chunks of a streaming request, then closes the stream (the HTTP connection goes
      away mid-stream), optionally stays alive S seconds, and reports what it read.

Shape of compare/completions output:

  {"direct": {"nonstream": SIDE, "stream": SIDE}, "via": {...}, "request": {...}}
  SIDE = {"content", "finish_reason", "usage", "model", "id", "headers",
          "chunk_count", "content_chunk_count", ...}

For "nonstream", chunk_count and content_chunk_count are null. For "stream", chunk_count is the
number of objects the SDK yielded (the usage-only chunk included), content_chunk_count those
that carried non-empty text, usage the first non-null `usage` seen (null when none came).
"headers" are the HTTP response headers (lower-case names), e.g. x-vigil-event-id.

All base URLs are the SDK's base_url, i.e. they end in /v1. The SDK is built with
max_retries=0 so one call is one HTTP request.

Errors: exit code 2, stderr's first line is "<SDK exception class>: <message>" (then, for HTTP
errors, a line "status=<code> body=<json>"). Bad command lines also exit 2 (argparse).
"""

import argparse
import json
import sys
import time
import traceback

try:
    import openai
except ImportError:  # pragma: no cover - a set-up problem, reported like any other error
    sys.stderr.write("ImportError: the `openai` package is missing; run `bash scripts/llm/setup.sh` "
                     "and use the python it prints\n")
    sys.exit(2)

DEFAULT_MESSAGES = [{"role": "user", "content": "Say hello."}]
DEFAULT_PROMPT = "Once upon a time"


def make_client(base_url, api_key, timeout):
    return openai.OpenAI(base_url=base_url, api_key=api_key or "none", max_retries=0, timeout=timeout)


def dump(obj):
    if obj is None:
        return None
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json", exclude_none=False)
    return obj


def headers_of(http_response):
    return {k.lower(): v for k, v in http_response.headers.items()}


def request_params(args, kind, model):
    params = {"model": model}
    if kind == "chat":
        params["messages"] = args.messages
    else:
        params["prompt"] = args.prompt
    if args.max_tokens is not None:
        params["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        params["temperature"] = args.temperature
    if args.seed is not None:
        params["seed"] = args.seed
    if args.user is not None:
        params["user"] = args.user
    return params


def text_of_choice(kind, choice, streaming):
    if kind == "chat":
        if streaming:
            return choice.delta.content if choice.delta is not None else None
        return choice.message.content
    return choice.text


def resource(client, kind):
    return client.chat.completions if kind == "chat" else client.completions


def run_nonstream(client, kind, params):
    raw = resource(client, kind).with_raw_response.create(**params)
    resp = raw.parse()
    choice = resp.choices[0] if resp.choices else None
    out = {
        "content": text_of_choice(kind, choice, False) if choice is not None else None,
        "finish_reason": choice.finish_reason if choice is not None else None,
        "usage": dump(resp.usage),
        "model": resp.model,
        "id": resp.id,
        "object": resp.object,
        "choice_count": len(resp.choices),
        "status": raw.status_code,
        "headers": headers_of(raw.http_response),
        "chunk_count": None,
        "content_chunk_count": None,
    }
    if kind == "chat" and choice is not None:
        out["role"] = choice.message.role
    return out


def run_stream(client, kind, params, include_usage):
    params = dict(params, stream=True)
    if include_usage:
        params["stream_options"] = {"include_usage": True}
    parts = []
    chunk_count = 0
    content_chunk_count = 0
    finish_reason = None
    usage = None
    usage_chunk_count = 0
    usage_chunk_choice_counts = []
    empty_choice_chunks = 0
    role = None
    models = []
    ids = []
    objects = []
    with resource(client, kind).with_streaming_response.create(**params) as raw:
        headers = headers_of(raw.http_response)
        status = raw.status_code
        stream = raw.parse()
        for chunk in stream:
            chunk_count += 1
            if chunk.model not in models:
                models.append(chunk.model)
            if chunk.id not in ids:
                ids.append(chunk.id)
            if chunk.object not in objects:
                objects.append(chunk.object)
            if getattr(chunk, "usage", None) is not None:
                usage_chunk_count += 1
                usage_chunk_choice_counts.append(len(chunk.choices))
                if usage is None:
                    usage = dump(chunk.usage)
            if not chunk.choices:
                empty_choice_chunks += 1
                continue
            choice = chunk.choices[0]
            text = text_of_choice(kind, choice, True)
            if text:
                parts.append(text)
                content_chunk_count += 1
            if kind == "chat" and choice.delta is not None and choice.delta.role and role is None:
                role = choice.delta.role
            if choice.finish_reason is not None:
                finish_reason = choice.finish_reason
    out = {
        "content": "".join(parts),
        "finish_reason": finish_reason,
        "usage": usage,
        "model": models[0] if len(models) == 1 else models,
        "id": ids[0] if len(ids) == 1 else ids,
        "object": objects[0] if len(objects) == 1 else objects,
        "status": status,
        "headers": headers,
        "chunk_count": chunk_count,
        "content_chunk_count": content_chunk_count,
        "usage_chunk_count": usage_chunk_count,
        "usage_chunk_choice_counts": usage_chunk_choice_counts,
        "empty_choice_chunk_count": empty_choice_chunks,
    }
    if kind == "chat":
        out["role"] = role
    return out


def cmd_compare(args, kind):
    if not args.direct and not args.via:
        raise SystemExit("compare: give --direct and/or --via")
    result = {"request": {"kind": kind, "include_usage": args.include_usage}}
    for side, base, model in (("direct", args.direct, args.model_direct), ("via", args.via, args.model_via)):
        if not base:
            continue
        if not model:
            raise SystemExit(f"compare: --model-{side} is required with --{side}")
        client = make_client(base, args.api_key, args.timeout)
        try:
            params = request_params(args, kind, model)
            result[side] = {
                "nonstream": run_nonstream(client, kind, params),
                "stream": run_stream(client, kind, params, args.include_usage),
            }
        finally:
            client.close()
    return result


def cmd_models(args):
    client = make_client(args.base, args.api_key, args.timeout)
    try:
        page = client.models.list()
        data = [dump(m) for m in page.data]
    finally:
        client.close()
    return {"ids": [m["id"] for m in data], "data": data}


def cmd_embeddings(args):
    client = make_client(args.base, args.api_key, args.timeout)
    try:
        params = {"model": args.model, "input": args.input[0] if len(args.input) == 1 else args.input}
        if args.encoding_format:
            params["encoding_format"] = args.encoding_format
        if args.user is not None:
            params["user"] = args.user
        raw = client.embeddings.with_raw_response.create(**params)
        resp = raw.parse()
        wire = raw.http_response.json()
    finally:
        client.close()
    wire_types = sorted({type(d.get("embedding")).__name__ for d in wire.get("data", [])})
    dims = [len(d.embedding) for d in resp.data]
    return {
        "dims": dims[0] if len(set(dims)) == 1 else dims,
        "count": len(resp.data),
        "indexes": [d.index for d in resp.data],
        "usage": dump(resp.usage),
        "model": resp.model,
        "object": resp.object,
        # The SDK asks for base64 unless told otherwise, and accepts floats back.
        "encoding_format_sent": args.encoding_format or "base64 (SDK default)",
        "wire_embedding_type": wire_types[0] if len(wire_types) == 1 else wire_types,
        "first_values": resp.data[0].embedding[:4] if resp.data else [],
        "status": raw.status_code,
        "headers": headers_of(raw.http_response),
    }


def cmd_stream_and_drop(args):
    client = make_client(args.base, args.api_key, args.timeout)
    kind = args.kind
    params = {"model": args.model, "stream": True, "max_tokens": args.max_tokens}
    if args.temperature is not None:
        params["temperature"] = args.temperature
    if kind == "chat":
        params["messages"] = args.messages
    else:
        params["prompt"] = args.prompt
    if args.user is not None:
        params["user"] = args.user
    parts = []
    read = 0
    finished = False
    started = time.monotonic()
    try:
        stream = resource(client, kind).create(**params)
        headers = headers_of(stream.response)
        for chunk in stream:
            read += 1
            if chunk.choices:
                text = text_of_choice(kind, chunk.choices[0], True)
                if text:
                    parts.append(text)
                if chunk.choices[0].finish_reason is not None:
                    finished = True
            if read >= args.after:
                break
        # Closes the httpx response before the body is complete: the connection is dropped,
        # not returned to the pool, so the server sees the client go away mid-stream.
        stream.close()
        closed_after = time.monotonic() - started
        if args.linger > 0:
            time.sleep(args.linger)
    finally:
        client.close()
    return {
        "chunks_read": read,
        "content": "".join(parts),
        "finished_before_drop": finished,
        "closed_after_s": round(closed_after, 3),
        "headers": headers,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--api-key", default=None, help='API key (default "none")')
        p.add_argument("--timeout", type=float, default=60.0, help="per-request timeout, seconds")
        p.add_argument("--user", default=None)

    for name in ("compare", "completions"):
        p = sub.add_parser(name)
        common(p)
        p.add_argument("--direct")
        p.add_argument("--via")
        p.add_argument("--model-direct")
        p.add_argument("--model-via")
        p.add_argument("--include-usage", action="store_true")
        p.add_argument("--max-tokens", type=int, default=16)
        p.add_argument("--temperature", type=float, default=0.0,
                       help="default 0: greedy, so direct and via must produce the same text")
        p.add_argument("--no-temperature", dest="temperature", action="store_const", const=None,
                       help="send no temperature (the server's default sampling)")
        p.add_argument("--seed", type=int, default=None)
        if name == "compare":
            p.add_argument("--messages-json", default=None)
        else:
            p.add_argument("--prompt", default=DEFAULT_PROMPT)

    p = sub.add_parser("models")
    common(p)
    p.add_argument("--base", required=True)

    p = sub.add_parser("embeddings")
    common(p)
    p.add_argument("--base", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--input", action="append", required=True)
    p.add_argument("--encoding-format", choices=("float", "base64"), default=None)

    p = sub.add_parser("stream-and-drop")
    common(p)
    p.add_argument("--base", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--after", type=int, required=True, help="chunks to read before closing")
    p.add_argument("--kind", choices=("chat", "completions"), default="chat")
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--messages-json", default=None)
    p.add_argument("--prompt", default=DEFAULT_PROMPT)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--linger", type=float, default=0.0, help="seconds to stay alive after closing")

    args = ap.parse_args(argv)
    if hasattr(args, "messages_json"):
        args.messages = json.loads(args.messages_json) if args.messages_json else DEFAULT_MESSAGES
    if not hasattr(args, "prompt"):
        args.prompt = DEFAULT_PROMPT

    try:
        if args.cmd == "compare":
            out = cmd_compare(args, "chat")
        elif args.cmd == "completions":
            out = cmd_compare(args, "completions")
        elif args.cmd == "models":
            out = cmd_models(args)
        elif args.cmd == "embeddings":
            out = cmd_embeddings(args)
        else:
            out = cmd_stream_and_drop(args)
    except SystemExit as e:
        if isinstance(e.code, str):
            sys.stderr.write(e.code + "\n")
            return 2
        raise
    except Exception as e:  # noqa: BLE001 - every failure is reported the same way
        message = str(e).replace("\n", " ")
        sys.stderr.write(f"{type(e).__name__}: {message}\n")
        if isinstance(e, openai.APIStatusError):
            body = e.body if e.body is not None else e.response.text
            sys.stderr.write(f"status={e.status_code} body={json.dumps(body)}\n")
        elif not isinstance(e, openai.OpenAIError):
            traceback.print_exc()
        return 2
    json.dump(out, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
