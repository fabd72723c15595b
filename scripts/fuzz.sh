#!/usr/bin/env bash
# Each fuzz target (fuzz/fuzz_targets/) for a while on its committed corpus: CI runs it with
# the default, 60 s a target. On the stable toolchain, which is all a fresh machine has:
# cargo-fuzz needs nightly only for a sanitizer, so this builds with `--sanitizer none` (the
# coverage instrumentation and libFuzzer itself are stable). Long runs, with
# AddressSanitizer, on nightly: ARCHITECTURE.md, Fuzzing.
#
#   NHACVIEC_FUZZ_SECONDS  seconds per target (60)
#   NHACVIEC_FUZZ_JOBS     targets at once (2: one per core of the CI machine)
#   NHACVIEC_FUZZ_TARGETS  which (all four)
#
# New inputs the fuzzer finds go to a scratch folder, not into fuzz/corpus/, so the tree
# stays as committed; a crash leaves its input in fuzz/artifacts/TARGET/ and fails the run
# with the target's report.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz="$PWD/fuzz"

seconds="${NHACVIEC_FUZZ_SECONDS:-60}"
jobs="${NHACVIEC_FUZZ_JOBS:-2}"
targets="${NHACVIEC_FUZZ_TARGETS:-config schedule router message}"

if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi
# libFuzzer is C++, built by libfuzzer-sys.
command -v g++ >/dev/null || { apt-get update -qq && apt-get install -y -qq g++; }

# One build for all targets; --target-dir keeps it apart from a nightly ASan build here.
cargo fuzz build --sanitizer none --target-dir "$fuzz/target/stable"
# cargo-fuzz has no --locked: the build must not have changed the committed lock file.
if git rev-parse --git-dir >/dev/null 2>&1 && ! git diff --quiet -- fuzz/Cargo.lock; then
    echo "fuzz/Cargo.lock changed in the build: commit the update" >&2
    exit 1
fi
bin="$fuzz/target/stable/$(rustc -vV | sed -n 's/^host: //p')/release"

scratch="$(mktemp -d)"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$scratch"' EXIT

run() {
    local t="$1"
    mkdir -p "$scratch/$t" "$fuzz/artifacts/$t"
    # The first folder takes what the run finds; the committed corpus is read only.
    if "$bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$fuzz/artifacts/$t/" \
        "$scratch/$t" "$fuzz/corpus/$t" >"$scratch/$t.log" 2>&1; then
        local runs
        runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$scratch/$t.log" | grep -o '[0-9]*$' || true)"
        echo "fuzz $t: ${runs:-?} executions in ${seconds} s, nothing found"
    else
        echo "fuzz $t: FAILED (input in fuzz/artifacts/$t/)"
        # The seed replays the run; the end has the report.
        grep -m1 'INFO: Seed:' "$scratch/$t.log" || true
        tail -n 60 "$scratch/$t.log"
        return 1
    fi
}

failed=0
for t in $targets; do
    run "$t" &
    pids+=($!)
    if [ "${#pids[@]}" -ge "$jobs" ]; then
        wait "${pids[0]}" || failed=1
        pids=("${pids[@]:1}")
    fi
done
for p in "${pids[@]}"; do
    wait "$p" || failed=1
done
exit "$failed"
