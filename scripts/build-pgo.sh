#!/usr/bin/env bash
# Build crossline-agent with profile-guided optimisation (PGO): an instrumented build runs the
# repository's own captures (examples/demo.pcap, tests/corpus/*.pcap) through `analyze` with one
# and with two workers, and the release build then uses the recorded profile to lay out and
# inline its hot code. On the benchmark capture the result took about 0.91 of the plain
# release build's time with one worker and 0.97 with two when this was written, and 0.93-0.96
# with one worker since the event writer's short copies are inlined by hand (which the profile
# had done already); it writes byte-identical events (bench/README.md). The training captures
# are not the benchmark's.
#
#   scripts/build-pgo.sh                        build; the last line on stdout is the binary
#   scripts/build-pgo.sh --target-dir DIR       build under DIR (default: target)
#   scripts/build-pgo.sh --train-only BIN       only run the training workload with BIN
#                                               (the test suite checks it with the debug build)
#
# Needs llvm-profdata of the same LLVM major version as rustc: `rustup component add
# llvm-tools` provides it (this script tries that), or a Debian llvm-N package when N matches.
# Exit status 3 when there is none: build without PGO then (`cargo build --release`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

target_dir=${CARGO_TARGET_DIR:-target}
train_only=""
while [ $# -gt 0 ]; do
    case "$1" in
        --target-dir) target_dir=$2; shift 2 ;;
        --train-only) train_only=$2; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "build-pgo.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf 'build-pgo: %s\n' "$*" >&2; }

# The training workload: every capture the repository holds, with one worker (the capture
# thread's own worker) and with two (batches handed to a worker thread, the ordered writer
# merging two streams). Any failure fails the build: a profile of a run that stopped early
# would train the wrong paths.
train() {
    local bin=$1 captures=() w log
    captures=(examples/demo.pcap tests/corpus/*.pcap)
    [ -f "${captures[0]}" ] || { say "no training captures in $ROOT/examples"; return 1; }
    log=$(mktemp)
    for w in 1 2; do
        if ! "$bin" analyze --config scripts/pgo-train.toml --workers "$w" --out /dev/null \
            -qq "${captures[@]}" 2>"$log"; then
            cat "$log" >&2
            rm -f "$log"
            say "training run with $w worker(s) failed: $bin analyze --config scripts/pgo-train.toml --workers $w (${#captures[@]} captures)"
            return 1
        fi
    done
    rm -f "$log"
    say "trained on ${#captures[@]} captures with 1 and 2 workers"
}

if [ -n "$train_only" ]; then
    train "$train_only"
    exit 0
fi

# llvm-profdata whose LLVM major version is rustc's.
llvm_major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
host=$(rustc -vV | sed -n 's/^host: //p')
sysroot_tool="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
find_profdata() {
    local c v
    for c in "$sysroot_tool" "llvm-profdata-$llvm_major" llvm-profdata; do
        command -v "$c" >/dev/null 2>&1 || continue
        v=$("$c" --version 2>/dev/null | sed -n 's/.*LLVM version \([0-9]*\).*/\1/p' | head -n1)
        if [ "$v" = "$llvm_major" ]; then
            echo "$c"
            return 0
        fi
    done
    return 1
}
if ! profdata=$(find_profdata) && command -v rustup >/dev/null; then
    say "installing rustup's llvm-tools component (llvm-profdata for LLVM $llvm_major)"
    rustup component add llvm-tools >&2 || true
fi
profdata=$(find_profdata) || {
    say "no llvm-profdata for LLVM $llvm_major (rustc's): run 'rustup component add llvm-tools'"
    say "or install llvm-$llvm_major; without it build the plain release: cargo build --release"
    exit 3
}

gen_dir="$target_dir/pgo/instrumented"
use_dir="$target_dir/pgo/optimised"
# Absolute: rustc writes and reads the profiles from inside each crate's build directory.
mkdir -p "$target_dir/pgo"
pgo=$(cd "$target_dir/pgo" && pwd)
raw="$pgo/raw"
merged="$pgo/crossline-agent.profdata"

say "1/3 instrumented build ($gen_dir)"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$raw" CARGO_TARGET_DIR="$gen_dir" \
    cargo build --release --locked -p crossline-agent --bin crossline-agent >&2
# Build scripts ran instrumented too: only the training runs may count.
rm -rf "$raw"
say "2/3 training runs"
train "$gen_dir/release/crossline-agent"
"$profdata" merge -o "$merged" "$raw"/*.profraw
say "3/3 optimised build with $merged ($use_dir)"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$merged" CARGO_TARGET_DIR="$use_dir" \
    cargo build --release --locked -p crossline-agent --bin crossline-agent >&2
echo "$use_dir/release/crossline-agent"
