#!/usr/bin/env bash
# The soak test: a year of faults against the real daemon (tests/it/soak.rs says what it
# does and checks). Run after scripts/test.sh (its .venv holds the SMTP server's packages).
#
#   NHACVIEC_SOAK_DAYS   simulated days (365)           NHACVIEC_SOAK_SPEED  clock speed (5000)
#   NHACVIEC_SOAK_FAULTS % of answers that are faults (15) NHACVIEC_SOAK_KILLS  SIGKILLs
#   NHACVIEC_SOAK_SEED   replays a run (printed at its start)
#
# A year at 5 000 x takes 105 minutes; CI runs 10 days (3 minutes). The speed is bounded by
# the faults: a stalled receiver holds a channel's lane for the daemon's 1 s timeout, which
# is 83 minutes of this clock, and a message that meets only faults for 48 hours of it is
# given up: at 20 000 x the 48 hours are 9 real seconds, and a few stalls in a row used them
# up (the soak then reports messages failed without a refusal for good).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { echo "run scripts/test.sh first (it makes .venv)" >&2; exit 2; }
export NHACVIEC_TEST_PYTHON="$PWD/.venv/bin/python"
export NHACVIEC_SOAK_DAYS="${NHACVIEC_SOAK_DAYS:-365}"
export NHACVIEC_SOAK_SPEED="${NHACVIEC_SOAK_SPEED:-5000}"
cargo test --locked --test it soak -- --ignored --nocapture --test-threads 1
