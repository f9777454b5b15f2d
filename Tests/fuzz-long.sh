#!/usr/bin/env bash
# The long fuzz run: an optimised sanitized build, every target (or those named) for an
# hour each, or for N executions each with --runs N, keeping the corpora in
# .build-fuzz/corpus so a later run starts where this one stopped. Same failure rules and report as Tests/fuzz.sh (which CI runs for 15 s
# per target).
#   bash Tests/fuzz-long.sh                       1 h per target
#   bash Tests/fuzz-long.sh --runs 1000000        1,000,000 executions per target (at most 3 h each)
#   bash Tests/fuzz-long.sh --seconds 600 rpc     one target, 10 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=""
runs=0
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --runs) args+=(--runs "$2"); runs=1; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
# With --runs the time is only a safety bound.
if [ -z "$seconds" ]; then seconds=$([ "$runs" = 1 ] && echo 10800 || echo 3600); fi
mkdir -p .build-fuzz/corpus
exec bash Tests/fuzz.sh --release --seconds "$seconds" --corpus .build-fuzz/corpus "${args[@]}"
