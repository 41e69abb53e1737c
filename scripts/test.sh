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
echo "== cargo doc (a broken or private link in the documentation is an error)" >&2
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
echo "== cargo deny check licenses bans (deny.toml, offline)" >&2
# cargo-deny from PATH, else from the tool cache target/tools (keep it between CI runs),
# else built into that cache once: about 11 minutes on 2 busy cores, hence the cache.
DENY_VERSION=0.20.2
TOOLS="${CROSSLINE_TOOLS:-$PWD/target/tools}"
export PATH="$TOOLS/bin:$PATH"
if ! cargo deny --version 2>/dev/null | grep -q "$DENY_VERSION"; then
    echo "cargo-deny $DENY_VERSION not found: building it into $TOOLS (once)" >&2
    nice -n 10 cargo install --locked --root "$TOOLS" --version "$DENY_VERSION" cargo-deny
fi
# cargo-deny reads the metadata of every platform's dependencies (windows-sys, ...), which a
# build on Linux never downloads: fetch them first (crates.io), then check offline.
cargo fetch --locked >&2
cargo deny --offline check licenses bans
# The MSRV build and the fuzz type-check each compile every dependency again (10-16 minutes
# on 2 cores): opt-in, so a CI run stays well inside its time budget.
if [ "${CROSSLINE_SLOW_CHECKS:-}" = 1 ]; then
    echo "== MSRV: cargo check with the rust-version of Cargo.toml" >&2
    MSRV="$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)"
    if rustup toolchain list | grep -q "^$MSRV" || rustup toolchain install "$MSRV" --profile minimal; then
        # Own target directory: another compiler would rebuild the main one's artefacts.
        CARGO_TARGET_DIR=target/msrv cargo "+$MSRV" check --workspace --all-targets --locked
    elif [ "${CI:-}" = "true" ]; then
        echo "toolchain $MSRV (rust-version) cannot be installed (CI=true)" >&2
        exit 1
    else
        echo "SKIPPED: MSRV check (toolchain $MSRV cannot be installed here)" >&2
    fi
    echo "== fuzz targets type-check (agent/fuzz, its own workspace)" >&2
    cargo check --manifest-path agent/fuzz/Cargo.toml --bins --target-dir target/fuzz
fi
echo "== cargo build (binaries for the end-to-end suites)" >&2
cargo build --workspace --bins
echo "== cargo test" >&2
# The full output (corpus agreement tables, latency figures, screenshot paths) is kept.
mkdir -p target
cargo test --workspace --no-fail-fast -- --nocapture 2>&1 | tee target/test-output.log
