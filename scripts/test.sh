#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine.
#
# - Installs redis-server from Debian's packages when it is missing.
# - Uses REDIS_URL when given; otherwise starts a private redis-server on a free loopback port.
# - Uses DATABASE_URL's server when given, else starts a private PostgreSQL on a free loopback
#   port (installing the server package when missing); creates a throwaway database for the run
#   (scripts/postgres-env.sh).
# - Starts a local Redis Cluster for the cluster tests (scripts/redis-cluster.sh) unless
#   REDIS_CLUSTER_URLS is given.
# - Runs fmt, clippy, the tests, the docs, the supply-chain and feature guardrails, a real
#   browser against the example apps and a short fuzz run: what CI checks. Each step prints how
#   long it took.
set -euo pipefail
cd "$(dirname "$0")/.."

# step NAME COMMAND...: runs COMMAND and prints its duration (CI has 90 minutes for all of it).
step() {
  local name=$1 start=$SECONDS
  shift
  echo "== $name"
  "$@"
  echo "== $name: done in $((SECONDS - start)) s"
}

# A fresh machine downloads every crate first; a registry hiccup gets two more tries.
fetch_crates() {
  for attempt in 1 2 3; do
    if cargo fetch --locked; then return 0; fi
    echo "cargo fetch failed (attempt $attempt); retrying" >&2
    sleep 5
  done
  return 1
}

run_tests() {
  mkdir -p target
  # pipefail: a failing cargo test fails the pipeline (and the script), tee or not.
  cargo test --workspace --all-features --no-fail-fast 2>&1 | tee target/test-output.log
}

# shellcheck source=scripts/redis-env.sh
source scripts/redis-env.sh
redis_env_setup
# shellcheck source=scripts/postgres-env.sh
source scripts/postgres-env.sh
trap 'postgres_env_teardown; redis_env_teardown' EXIT
postgres_env_setup

echo "== redis: ${REDIS_URL} ; cluster: ${REDIS_CLUSTER_URLS:-none} ; postgres database: ${PG_ENV_DATABASE}"

step "fetch crates" fetch_crates
step "cargo fmt" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets --all-features -- -D warnings
step "cargo test" run_tests
step "cargo doc" env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --quiet
# The templates of examples/templates, built and tested outside the workspace as a user would.
step "templates" scripts/templates.sh
# cargo-deny (licenses, bans, sources) and every feature of every library crate on its own.
step "guardrails" scripts/guardrails.sh
# A real browser against the example apps (Chromium installed when missing), then every fuzz
# target for FUZZ_SECONDS (default 20) each; see docs/SECURITY.md.
step "browser tests" scripts/browser-test.sh
step "fuzz smoke" scripts/fuzz-smoke.sh
