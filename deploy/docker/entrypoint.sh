#!/bin/sh
# Container entrypoint: turns S1SERVE_* environment variables into `s1serve serve` flags.
# Arguments given to the container come last, so they override anything set here
# (the CLI keeps the last value of a repeated flag) and can add any vLLM engine flag.
#
#   S1SERVE_HOST                 bind address            (default 0.0.0.0)
#   S1SERVE_PORT                 port                    (default 8000)
#   S1SERVE_MODEL                model id or path        (default: the embedded SmolLM2-135M-Instruct)
#   S1SERVE_SERVED_MODEL_NAME    name reported by /v1/models
#   S1SERVE_DRAIN_TIMEOUT        seconds to finish in-flight requests after SIGTERM
#   S1SERVE_THINKING_FORMAT      s1 | think
#   S1SERVE_EXTRA_ARGS           extra flags, split on whitespace (e.g. "--tensor-parallel-size 2")
#   S1SERVE_API_KEY              read by the server itself; never put on the command line
set -eu

set -- --host "${S1SERVE_HOST:-0.0.0.0}" --port "${S1SERVE_PORT:-8000}" \
    ${S1SERVE_MODEL:+--model "$S1SERVE_MODEL"} \
    ${S1SERVE_SERVED_MODEL_NAME:+--served-model-name "$S1SERVE_SERVED_MODEL_NAME"} \
    ${S1SERVE_DRAIN_TIMEOUT:+--drain-timeout "$S1SERVE_DRAIN_TIMEOUT"} \
    ${S1SERVE_THINKING_FORMAT:+--thinking-format "$S1SERVE_THINKING_FORMAT"} \
    ${S1SERVE_EXTRA_ARGS:-} \
    "$@"

exec s1serve serve "$@"
