#!/usr/bin/env bash
# The test command (README): installs what the tests need, then runs every test.
#
# Today the tests need only the Rust toolchain. Later issues add here what their tests
# need (a Python venv with an SMTP server, Debian packages such as chromium), so that this
# one command works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --locked "$@"
