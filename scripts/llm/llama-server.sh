#!/usr/bin/env bash
# A real OpenAI-compatible upstream for the /v1 tests: llama.cpp through llama-cpp-python's
# server (`python -m llama_cpp.server`, from PyPI), serving a tiny random-weights GGUF written by
# scripts/llm/tiny_gguf.py. Nothing is downloaded from a model hub.
#
#   llama-server.sh install                  # venv + build llama.cpp (~10 min on 2 cores, once)
#   llama-server.sh model                    # print the tiny GGUF's path (writes it if missing)
#   llama-server.sh start PORT [ALIAS]       # serve ALIAS (default tiny-llama) on 127.0.0.1:PORT
#   llama-server.sh stop [PORT]              # stop the server on PORT (every one without PORT)
#   llama-server.sh status PORT
#
# Virtualenv: $VIGIL_CACHE_DIR/llama-venv (llama-cpp-python has no Linux wheels on PyPI: pip
# builds llama.cpp from source with cmake + a C/C++ compiler; cmake and ninja come from PyPI).
# Model: $VIGIL_CACHE_DIR/llm-models/tiny-llama-<hash of tiny_gguf.py>.gguf (~0.5 MB, written
# in a second). Per-port state (pid, log):
# $VIGIL_SERVICES_DIR/llama-PORT/. Environment:
#   VIGIL_LLAMA_EMBEDDING=0   do not serve /v1/embeddings (default 1: --embedding true; chat and
#                             completions work the same with it, the tiny model mean-pools)
#   VIGIL_LLAMA_ARGS="..."    extra arguments for llama_cpp.server
#   VIGIL_LLAMA_START_TIMEOUT seconds `start` waits for GET /v1/models (default 300: a busy 2-core
#                             CI machine takes a while to import FastAPI and load the model)
# The server runs one request at a time; it is started with --interrupt_requests false (by
# default llama_cpp.server ENDS a running stream, with [DONE] and no finish_reason, as soon as
# another request arrives) and --chat_format chatml (the tiny model has no chat template).
source "$(dirname "$0")/../services/common.sh"
log() { echo "[llm] $*" >&2; }

LLAMA_CPP_PYTHON_VERSION="${VIGIL_LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
# gguf-py as vendored by that llama-cpp-python release (vendor/llama.cpp/gguf-py/pyproject.toml).
GGUF_VERSION="${VIGIL_GGUF_VERSION:-0.19.0}"
VENV="$VIGIL_CACHE_DIR/llama-venv"
PY="$VENV/bin/python"
HERE="$(cd "$(dirname "$0")" && pwd)"
# Named after tiny_gguf.py's hash: editing the generator gives a new file, never a stale one.
MODEL="$VIGIL_CACHE_DIR/llm-models/tiny-llama-$(sha256sum "$HERE/tiny_gguf.py" | cut -c1-12).gguf"
MARKER="$VENV/.vigil-installed-$LLAMA_CPP_PYTHON_VERSION"

# llama-cpp-python[server]'s runtime and server requirements, installed before the build so the
# build itself can run without isolation (no second download of cmake/ninja/scikit-build-core).
# Exact versions that were built and checked together (numpy only bounded: its newest releases
# need Python >= 3.11).
RUNTIME_REQS=("typing-extensions==4.16.0" "numpy>=1.20,<3" "diskcache==5.6.3" "jinja2==3.1.6"
  "uvicorn==0.55.0" "fastapi==0.165.0" "starlette==1.10.0" "pydantic==2.14.4"
  "pydantic-settings==2.16.3" "sse-starlette==3.7.1" "starlette-context==0.3.6" "PyYAML==6.0.4"
  "gguf==$GGUF_VERSION")
BUILD_REQS=("scikit-build-core==1.1.2" "cmake==4.4.5" "ninja==1.13.2")

# A small, portable CPU build: no -march=native (the cache may move between CI machines),
# no OpenMP, no multimodal (mtmd) library, no llama.cpp tests/tools/examples/server.
CMAKE_ARGS_DEFAULT="-DGGML_NATIVE=OFF -DGGML_OPENMP=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF \
-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF"

install() {
  if [[ -f "$MARKER" ]] && "$PY" -c 'import llama_cpp.server' >/dev/null 2>&1; then return 0; fi
  command -v cc >/dev/null 2>&1 && command -v c++ >/dev/null 2>&1 || {
    export DEBIAN_FRONTEND=noninteractive
    log "no C/C++ compiler: installing build-essential with apt-get"
    retry 3 apt-get update -qq
    retry 3 apt-get install -y -qq build-essential >/dev/null
  }
  if [[ ! -x "$VENV/bin/pip" ]]; then
    python3 -m venv "$VENV" || { log "python3 -m venv failed; install python3-venv (apt-get install -y python3-venv)"; return 1; }
  fi
  log "installing llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION into $VENV (compiles llama.cpp: ~10 minutes on 2 cores, once)"
  retry 3 "$VENV/bin/pip" install -q --disable-pip-version-check "${BUILD_REQS[@]}" "${RUNTIME_REQS[@]}"
  local build_log="$VENV/build.log" started=$SECONDS
  if ! CMAKE_ARGS="${CMAKE_ARGS:-$CMAKE_ARGS_DEFAULT}" \
      CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
      "$VENV/bin/pip" install -v --disable-pip-version-check --no-build-isolation --no-deps \
      "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" >"$build_log" 2>&1; then
    log "building llama-cpp-python failed; last lines of $build_log:"
    tail -n 40 "$build_log" >&2
    return 1
  fi
  "$PY" -c 'import llama_cpp.server' || { log "llama_cpp.server does not import after the build"; return 1; }
  touch "$MARKER"
  log "llama-cpp-python $LLAMA_CPP_PYTHON_VERSION built in $((SECONDS - started)) s"
}

model() {
  if [[ ! -s "$MODEL" ]]; then
    install
    mkdir -p "$(dirname "$MODEL")"
    "$PY" "$HERE/tiny_gguf.py" "$MODEL.tmp" 2>/dev/null || { log "tiny_gguf.py failed"; return 1; }
    mv "$MODEL.tmp" "$MODEL"
  fi
  echo "$MODEL"
}

START_TIMEOUT="${VIGIL_LLAMA_START_TIMEOUT:-300}"

models_json() { curl -fsS --max-time 10 "http://127.0.0.1:$1/v1/models" 2>/dev/null; }
ready() { models_json "$1" >/dev/null; }
# serves PORT ALIAS: the server on PORT lists model ALIAS.
serves() { local j; j=$(models_json "$1") && grep -Fq "\"id\":\"$2\"" <<<"$(tr -d ' ' <<<"$j")"; }

start() {
  local port=${1:?usage: llama-server.sh start PORT [ALIAS]} alias=${2:-tiny-llama}
  local dir="$VIGIL_SERVICES_DIR/llama-$port"
  mkdir -p "$dir"
  if ready "$port"; then
    if serves "$port" "$alias"; then log "llama_cpp.server already running on :$port"; return 0; fi
    log "ERROR: port $port answers GET /v1/models without model $alias: $(models_json "$port" | head -c 300)"
    log "stop that server (bash scripts/llm/llama-server.sh stop $port) or pick another port"
    return 1
  fi
  stop_pidfile "$dir/server.pid" "stale llama_cpp.server :$port"   # alive but not answering
  install
  model >/dev/null
  local embedding=false
  [[ "${VIGIL_LLAMA_EMBEDDING:-1}" == 1 ]] && embedding=true
  # shellcheck disable=SC2086 # VIGIL_LLAMA_ARGS is a list of words on purpose
  PYTHONUNBUFFERED=1 nohup "$PY" -m llama_cpp.server --model "$MODEL" --model_alias "$alias" \
    --host 127.0.0.1 --port "$port" --n_ctx 2048 --n_threads 1 --n_threads_batch 1 --chat_format chatml \
    --interrupt_requests false --embedding "$embedding" --seed 0 ${VIGIL_LLAMA_ARGS:-} \
    >"$dir/server.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/server.pid"
  local started=$SECONDS why=""
  until serves "$port" "$alias"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      local rc=0; wait "$pid" 2>/dev/null || rc=$?
      why="exited with status $rc"; break
    fi
    if ((SECONDS - started >= START_TIMEOUT)); then why="not ready after $START_TIMEOUT s (VIGIL_LLAMA_START_TIMEOUT)"; break; fi
    sleep 0.5
  done
  if [[ -n "$why" ]]; then
    log "ERROR: llama_cpp.server on :$port $why; last lines of $dir/server.log:"
    tail -n 30 "$dir/server.log" >&2
    stop_pidfile "$dir/server.pid" "llama_cpp.server :$port"
    return 1
  fi
  log "llama_cpp.server ready on 127.0.0.1:$port (model $alias, $((SECONDS - started)) s)"
}

stop() {
  local port=${1:-}
  if [[ -n "$port" ]]; then
    stop_pidfile "$VIGIL_SERVICES_DIR/llama-$port/server.pid" "llama_cpp.server :$port"
    return 0
  fi
  local pidfile
  for pidfile in "$VIGIL_SERVICES_DIR"/llama-*/server.pid; do
    [[ -e "$pidfile" ]] || continue
    stop_pidfile "$pidfile" "llama_cpp.server $(basename "$(dirname "$pidfile")")"
  done
}

case "${1:-}" in
  install) install ;;
  model) model ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  restart) shift; stop "${1:?}"; start "$@" ;;
  status)
    if ready "${2:?usage: llama-server.sh status PORT}"; then echo "llama_cpp.server up on :$2"; else echo "llama_cpp.server down on :$2"; exit 1; fi ;;
  *) echo "usage: $0 install|model|start PORT [ALIAS]|stop [PORT]|restart PORT [ALIAS]|status PORT" >&2; exit 2 ;;
esac
