#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer + AddressSanitizer) of every decoder tdsgate runs on
# bytes from outside: one executable, Sources/TDSFuzz, one target per decoder.
#   bash Tests/fuzz.sh                         every target for 15 s (what CI runs)
#   bash Tests/fuzz.sh --seconds 120 prelogin  chosen targets, longer
#   bash Tests/fuzz.sh --runs 2000000          each target for N executions (and at most --seconds)
#   --corpus DIR   keep each target's corpus in DIR/<target> (default: a temporary directory)
#   --release      an optimised build (several times the executions per second; a longer build)
#   --no-build     use the binary the last run built
#   --list         print the targets and exit
# Seeds come from Fixtures/ and Configs/ at run time (TDSFuzz writes them; nothing generated
# is committed). Fails on any crash, sanitizer report, timeout or broken invariant; the
# input is printed as hex and kept under .build-fuzz/artifacts/ (turn it into a regression
# test in Tests/TDSTests/FuzzRegressionTests.swift, then fix).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
SECONDS_PER_TARGET=15
RUNS=""
CORPUS=""
CONFIG=debug
BUILD=1
LIST=0
TARGETS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) SECONDS_PER_TARGET="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --corpus) CORPUS="$2"; shift 2 ;;
        --release) CONFIG=release; shift ;;
        --no-build) BUILD=0; shift ;;
        --list) LIST=1; shift ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) TARGETS+=("$1"); shift ;;
    esac
done

SCRATCH="$ROOT/.build-fuzz"
BIN="$SCRATCH/$CONFIG/TDSFuzz"
t0=$(date +%s)
if [ "$BUILD" = 1 ]; then
    echo "==> fuzz: building TDSFuzz ($CONFIG) with -sanitize=fuzzer,address (scratch path .build-fuzz)"
    nice -n 10 swift build -c "$CONFIG" --scratch-path "$SCRATCH" --product TDSFuzz \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -DTDSGATE_LIBFUZZER -Xswiftc -parse-as-library </dev/null
    echo "==> fuzz: build took $(( $(date +%s) - t0 ))s"
fi

work="$(mktemp -d /tmp/tdsgate-fuzz.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# ASan's leak check at exit would report what Swift keeps for the life of the process.
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:${ASAN_OPTIONS:-}"
TDSGATE_FUZZ_SEEDS="$work/seeds" TDSGATE_FUZZ_REPO="$ROOT" "$BIN"
if [ ${#TARGETS[@]} -eq 0 ]; then
    mapfile -t TARGETS < <(ls "$work/seeds")
fi
if [ "$LIST" = 1 ]; then printf '%s\n' "${TARGETS[@]}"; exit 0; fi

ARTIFACTS="$SCRATCH/artifacts"
mkdir -p "$ARTIFACTS"
failed=()
total_runs=0
printf '%-14s %10s %9s %7s %7s %7s  %s\n' target executions exec/s cov ft corpus result
for t in "${TARGETS[@]}"; do
    [ -d "$work/seeds/$t" ] || { echo "unknown target $t" >&2; exit 2; }
    corpus="${CORPUS:+$CORPUS/$t}"
    corpus="${corpus:-$work/corpus/$t}"
    mkdir -p "$corpus"
    log="$work/$t.log"
    args=(-max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -max_len=20000
          -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$t-")
    [ -n "$RUNS" ] && args+=(-runs="$RUNS")
    set +e
    TDSGATE_FUZZ_TARGET="$t" nice -n 10 "$BIN" "${args[@]}" "$corpus" "$work/seeds/$t" >"$log" 2>&1 </dev/null
    rc=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    files=$(ls "$corpus" | wc -l)
    total_runs=$(( total_runs + ${runs:-0} ))
    result=ok
    if [ "$rc" != 0 ] || grep -qE '^==[0-9]+==ERROR|deadly signal|ALARM: working on the last Unit|out-of-memory|invariant broken' "$log"; then
        result="FAILED (exit $rc)"
        failed+=("$t")
    fi
    printf '%-14s %10s %9s %7s %7s %7s  %s\n' "$t" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$files" "$result"
    if [ "$result" != ok ]; then
        grep -E 'invariant broken|ERROR: |SUMMARY|deadly signal|Fatal error|ALARM|Test unit written' "$log" | head -20 | sed 's/^/    /'
        for a in "$ARTIFACTS/$t-"*; do
            [ -f "$a" ] || continue
            echo "    input $(basename "$a") ($(stat -c %s "$a") bytes): $(head -c 4096 "$a" | od -An -tx1 -v | tr -d ' \n')"
        done
    fi
done
echo "==> fuzz: ${#TARGETS[@]} targets, $total_runs executions, $(( $(date +%s) - t0 ))s in all"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in ${failed[*]} (inputs in $ARTIFACTS)" >&2
    exit 1
fi
