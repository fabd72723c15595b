#!/usr/bin/env bash
# The test command (README): installs what the tests need, then runs every test.
#
# The tests need the Rust toolchain and Python 3 (with its venv module: on Debian's own
# python3 that is the python3-venv package). The integration tests of email run a real
# SMTP server, tests/smtp/server.py (aiosmtpd), with the packages pinned in
# tests/smtp/requirements.txt: this script keeps them in .venv (made if missing) and
# tells the tests its interpreter in NHACVIEC_TEST_PYTHON. Later issues add here what
# their tests need (Debian packages such as chromium), so that this one command works on
# a fresh machine.
# Arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=tests/smtp/requirements.txt
if [ ! -x .venv/bin/python ]; then
    python3 -m venv --clear .venv  # new, or broken (its python gone)
fi
# Quick and offline when every pin is already installed (pip then only checks).
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
export NHACVIEC_TEST_PYTHON="$PWD/.venv/bin/python"

# Many integration tests spend minutes waiting for a reminder's minute to come, not on the
# CPU: run them side by side rather than two at a time on a two-core machine.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-16}"

cargo test --locked "$@"
