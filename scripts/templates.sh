#!/usr/bin/env bash
# Builds and tests each template of examples/templates the way a user would: copied to a
# directory outside this workspace, depending on `portcullis` by version, with a
# `[patch.crates-io]` that points it at this checkout (and this workspace's Cargo.lock, so the
# versions are the ones CI tested). The three share one target directory, target/templates,
# so a warm run only compiles the templates themselves.
#
# Usage: scripts/templates.sh [session|jwt|hybrid]...   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
export CARGO_TARGET_DIR="${TEMPLATES_TARGET_DIR:-$checkout/target/templates}"
work=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-templates.XXXXXX")
trap 'rm -rf "$work"' EXIT

templates=("$@")
if [ ${#templates[@]} -eq 0 ]; then templates=(session jwt hybrid); fi

for name in "${templates[@]}"; do
  src=examples/templates/$name
  [ -f "$src/Cargo.toml" ] || { echo "no template $src" >&2; exit 1; }
  dest=$work/$name
  cp -R "$src" "$dest"
  rm -rf "$dest/target"
  cp Cargo.lock "$dest/Cargo.lock"
  cat >>"$dest/Cargo.toml" <<TOML

[patch.crates-io]
portcullis = { path = "$checkout/crates/portcullis" }
TOML
  echo "== template $name ($(cat "$src"/src/*.rs | wc -l) lines of Rust in src/)"
  (cd "$dest" && cargo fmt --check && cargo clippy --quiet --all-targets -- -D warnings && cargo test --quiet)
done
