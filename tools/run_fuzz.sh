#!/usr/bin/env bash
# Runs each libFuzzer target for a bounded time and prints one summary line a
# target: executions, executions per second, corpus size, and any finding.
# Usage: tools/run_fuzz.sh BUILD_DIR SECONDS TARGET...   (run by `make fuzz`)
# Each target starts from tests/fuzz/corpus/<target>/ and grows a working
# corpus in BUILD_DIR/corpus/<target>/; a crashing or hanging input is written
# to BUILD_DIR/findings/ (copy it into tests/fuzz/corpus/<target>/ once fixed,
# so the doctest suite replays it).
set -uo pipefail
build=$1 seconds=$2
shift 2
status=0
printf '%-16s %12s %10s %8s  %s\n' target executions "exec/s" corpus result
for t in "$@"; do
  mkdir -p "$build/corpus/$t" "$build/findings"
  log="$build/fuzz_$t.log"
  "$build/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/findings/$t-" "$build/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  runs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  speed=$(grep -m1 'stat::average_exec_per_sec' "$log" | awk '{print $2}')
  files=$(ls "$build/corpus/$t" | wc -l)
  if [[ $rc -eq 0 ]]; then result="no finding"; else result="FINDING (exit $rc): see $log"; status=1; fi
  printf '%-16s %12s %10s %8s  %s\n' "$t" "${runs:-?}" "${speed:-?}" "$files" "$result"
done
exit $status
