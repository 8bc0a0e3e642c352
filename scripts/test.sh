#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and end-to-end tests against real
# nats-server, PostgreSQL and MariaDB processes that the test harness starts
# on free loopback ports with temporary data directories.
# Slow soak and scale runs are skipped unless MDHUB_SLOW=1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# End-to-end tests run the mdhub binary as a separate process (kill -9 tests).
cargo build --workspace --bins
cargo test --workspace
