#!/usr/bin/env bash
# Supply-chain and feature guardrails (issue 12), run by scripts/test.sh:
#
# - `cargo deny check licenses bans sources` against deny.toml (advisories need the RustSec
#   database from GitHub, which CI cannot reach);
# - every feature of every library crate compiles on its own
#   (`cargo hack check --each-feature --no-dev-deps`);
# - the declared MSRV (`rust-version` in Cargo.toml) builds the library crates, when that
#   toolchain is installed; otherwise the script says it was not checked (it never downloads a
#   toolchain: CI machines may be offline).
#
# Installs cargo-deny and cargo-hack from crates.io when missing (a few minutes, once per
# machine).
set -euo pipefail
cd "$(dirname "$0")/.."

install_if_missing() {
  local tool=$1 crate=$2
  if ! cargo "$tool" --version >/dev/null 2>&1; then
    echo "== installing $crate"
    cargo install --quiet --locked "$crate"
  fi
}

install_if_missing deny cargo-deny
install_if_missing hack cargo-hack

cargo deny --log-level error check licenses bans sources
# --no-dev-deps edits the manifests while it runs and restores them when it ends.
cargo hack check --quiet --each-feature --no-dev-deps \
  -p portcullis-core -p portcullis-session -p portcullis-jwt -p portcullis-hybrid \
  -p portcullis-redis -p portcullis-postgres -p portcullis-testkit -p portcullis

msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
if rustup run "$msrv" cargo --version >/dev/null 2>&1; then
  echo "== MSRV $msrv"
  cargo +"$msrv" check --quiet \
    -p portcullis-core -p portcullis-session -p portcullis-jwt -p portcullis-hybrid \
    -p portcullis-redis -p portcullis-postgres -p portcullis-testkit -p portcullis
else
  echo "== MSRV $msrv: toolchain not installed, NOT checked (rustup toolchain install $msrv)"
fi
