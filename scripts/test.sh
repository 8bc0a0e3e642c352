#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and end-to-end tests against real
# nats-server, PostgreSQL and MariaDB processes that the test harness starts
# on free loopback ports with temporary data directories.
# MDHUB_SLOW=1 grows the fuzz and property runs (100,000 fuzz cases per
# property instead of 2,000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# End-to-end tests run the mdhub binary as a separate process (kill -9
# tests). It is built with the test-only `failpoints` feature, as `cargo
# test` builds the hub for the tests crate: a failpoint does nothing unless
# MDHUB_FAILPOINTS arms it, which only the degraded-hub test does.
cargo build --workspace --bins --features mdhub-hub/failpoints
cargo test --workspace
# The hub's own tests again with derived state in memory instead of redb
# (`[store] kind`): both stores must derive the same. Of the end-to-end
# tests, those about derived state run on both too (the whole suite passes
# on either: MDHUB_STORE=memory cargo test --workspace).
MDHUB_STORE=memory cargo test -p mdhub-hub
MDHUB_STORE=memory cargo test -p mdhub-tests --test derived_store --test pipeline
