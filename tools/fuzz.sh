#!/usr/bin/env bash
# Runs the protocol parsers' fuzz targets (backend/protocols/fuzz) with libFuzzer for SECONDS
# each (default 180), on stable Rust: the coverage instrumentation cargo-fuzz would add is
# passed as stable codegen flags (SanitizerCoverage via `-C passes=sancov-module`), without
# AddressSanitizer (which needs nightly; the parsers are `forbid(unsafe_code)`, so memory
# errors are not what is hunted: panics, overflows, hangs and unbounded growth are, and
# debug assertions and overflow checks stay on).
#
#   tools/fuzz.sh [SECONDS] [TARGET ...]
#
# Seeds: backend/protocols/tests/fixtures/<proto>/*; corpora grow under
# $FUZZ_DIR (default /var/tmp/pxtop-fuzz). Prints each target's executions and any crash.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-180}
shift || true
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(http1 http2 redis pgsql mysql cql dns)
fi
work=${FUZZ_DIR:-/var/tmp/pxtop-fuzz}
mkdir -p "$work"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# NB: an explicit --target keeps RUSTFLAGS off build scripts and proc macros (as cargo-fuzz
# does): instrumented build scripts would not link without libFuzzer.
host=$(rustc -vV | sed -n 's/^host: //p')
(cd backend/protocols/fuzz && cargo build --release --bins --target "$host" --target-dir "$work/target" -q)
bin="$work/target/$host/release"
status=0
for t in "${targets[@]}"; do
  corpus="$work/corpus/$t"
  mkdir -p "$corpus"
  if [[ -d backend/protocols/tests/fixtures/$t ]]; then
    find "backend/protocols/tests/fixtures/$t" -type f -size -64k -exec cp -n {} "$corpus/" \;
  fi
  log="$work/$t.log"
  if "$bin/$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$work/$t-" "$corpus" >"$log" 2>&1; then
    execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
    cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -o 'cov: [0-9]*' || true)
    echo "fuzz $t: ${secs}s, ${execs} execs, ${cov}, no crash"
  else
    echo "fuzz $t: CRASH, see $log and $work/$t-*" >&2
    tail -30 "$log" >&2
    status=1
  fi
done
exit $status
