#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine.
#
# - Installs redis-server from Debian's packages when it is missing.
# - Uses REDIS_URL when given; otherwise starts a private redis-server on a free loopback port.
# - Starts a local Redis Cluster for the cluster tests (scripts/redis-cluster.sh) unless
#   REDIS_CLUSTER_URLS is given.
# - Runs fmt, clippy, the tests and the doc build: what CI checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/redis-env.sh
source scripts/redis-env.sh
redis_env_setup
trap redis_env_teardown EXIT

echo "== redis: ${REDIS_URL} ; cluster: ${REDIS_CLUSTER_URLS:-none}"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
mkdir -p target
cargo test --workspace --all-features --no-fail-fast 2>&1 | tee target/test-output.log
# A real browser against the example apps (Chromium installed when missing), then every fuzz
# target for FUZZ_SECONDS (default 20) each; see docs/SECURITY.md.
scripts/browser-test.sh
scripts/fuzz-smoke.sh
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --quiet
