#!/usr/bin/env bash
# The test command (README): installs what the tests need, then runs every test.
#
# The tests need the Rust toolchain and Python 3 (with its venv module: on Debian's own
# python3 that is the python3-venv package). The integration tests of email run a real
# SMTP server, tests/smtp/server.py (aiosmtpd), with the packages pinned in
# tests/smtp/requirements.txt: this script keeps them in .venv (made if missing) and
# tells the tests its interpreter in NHACVIEC_TEST_PYTHON. The browser test needs Debian's
# chromium and a font, installed below when missing, and Playwright, pinned in
# tests/browser/requirements.txt, in the same .venv, as is the calendar tests' parser
# (tests/ics/requirements.txt). What a test needs is added here, so
# that this one command works on a fresh machine.
# Arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# The browser test (tests/it/browser.rs) drives Debian's Chromium, headless, through
# Playwright (tests/browser/requirements.txt, below); the pages' Vietnamese needs a font
# with its letters (DejaVu). Installed from Debian's packages only when missing, so that a
# rerun is quick and offline; that needs root (CI runs as root) or sudo.
debs=()
[ -x /usr/bin/chromium ] || debs+=(chromium)
dpkg-query -W -f='${Status}' fonts-dejavu-core 2>/dev/null | grep -q 'ok installed' || debs+=(fonts-dejavu-core)
# The disk fault tests (tests/it/disk.rs, as root) make an ext4 image and run the daemon as
# another user.
command -v mkfs.ext4 >/dev/null || debs+=(e2fsprogs)
command -v setpriv >/dev/null || debs+=(util-linux)
if [ ${#debs[@]} -gt 0 ]; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${debs[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv --clear .venv  # new, or broken (its python gone)
fi
# Quick and offline when every pin is already installed (pip then only checks).
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -r tests/smtp/requirements.txt -r tests/browser/requirements.txt -r tests/ics/requirements.txt
export NHACVIEC_TEST_PYTHON="$PWD/.venv/bin/python"

# The library, the binary and the integration tests (there are no doc tests), four test
# threads unless RUST_TEST_THREADS says otherwise (most integration tests wait on a daemon
# or a server, not on a core: on 2 cores four threads took 31-35 s where two took 49-55,
# before the Zalo tests; 39-49 s now),
# then one closing line with the totals and the wall time the tests took after the build.
# No test waits for a real minute: every daemon a test starts has its clock set
# (NHACVIEC_CLOCK).
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --lib --bins --tests --no-run "$@" 2>&1 | tee "$log" || status=$?
if [ "$status" -eq 0 ]; then
    started=$(date +%s%3N)
    cargo test --locked --lib --bins --tests "$@" 2>&1 | tee "$log" || status=$?
    took=$(( ($(date +%s%3N) - started + 500) / 1000 ))
fi
passed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s += $1} END {print s + 0}')
ignored=$(grep -Eo '[0-9]+ ignored;' "$log" | awk '{s += $1} END {print s + 0}')
echo "$passed passed, $failed failed, $ignored ignored in ${took:-0} s after the build"
exit "$status"
