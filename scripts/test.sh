#!/usr/bin/env bash
# Run every crossline test: formatting, lints, unit, property, corpus, live-capture and
# end-to-end suites. Installs the Debian packages the tests start for real when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-deps.sh test
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo build (binaries for the end-to-end suites)" >&2
cargo build --workspace --bins
echo "== cargo test" >&2
# The full output (corpus agreement tables, latency figures, screenshot paths) is kept.
mkdir -p target
cargo test --workspace -- --nocapture 2>&1 | tee target/test-output.log
