#!/usr/bin/env bash
# A short, time-boxed run of every cargo-fuzz target (FUZZ_SECONDS each, default 20), one at a
# time, starting from the seeds in fuzz/corpus/<target>/. New inputs go to a scratch directory,
# so the committed corpora stay small. Any crash fails the script and leaves the input under
# fuzz/artifacts/<target>/.
#
# Needs cargo-fuzz (installed here when missing) and nightly features, which the stable
# toolchain enables with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-20}
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install --quiet --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1

scratch=$(mktemp -d /tmp/portcullis-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

cargo fuzz build -O
for target in $(cargo fuzz list); do
  mkdir -p "$scratch/$target"
  echo "== fuzz $target for ${seconds}s"
  # grep hides the progress lines but must not hide a failure: keep cargo fuzz's status.
  set +e
  cargo fuzz run -O "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
    | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|thread .* panicked|Failing input|[[:space:]]+fuzz/artifacts/)"
  status=${PIPESTATUS[0]}
  set -e
  if [ "$status" -ne 0 ]; then
    echo "fuzz target $target failed: see fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
