#!/usr/bin/env bash
# Write the enterprise self-check report for a capture and take a screenshot and a PDF of it
# with headless Chromium, to look at the layout or attach to a review.
#
#   scripts/screenshot-report.sh [--lang zh|en] [--config AGENT.toml] [--out DIR] PCAP...
#
# Defaults: --lang zh, --config examples/agent.toml, --out target/report. Writes
# DIR/report.html, DIR/report.png (1280 px wide, full first 2400 px) and DIR/report.pdf (A4).
# Needs a built agent (debug is fine: `cargo build -p crossline-agent`) and Chromium
# (`apt-get install -y chromium`; fonts-noto-cjk for Chinese glyphs).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

LANG_ARG=zh
CONFIG=$ROOT/examples/agent.toml
OUT=$ROOT/target/report
PCAPS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --lang) LANG_ARG=$2; shift 2 ;;
        --config) CONFIG=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) PCAPS+=("$1"); shift ;;
    esac
done
[ ${#PCAPS[@]} -gt 0 ] || { echo "usage: $0 [--lang zh|en] [--config AGENT.toml] [--out DIR] PCAP..." >&2; exit 2; }

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
AGENT=""
for p in release debug; do
    if [ -x "$TARGET_DIR/$p/crossline-agent" ]; then AGENT=$TARGET_DIR/$p/crossline-agent; break; fi
done
[ -n "$AGENT" ] || { echo "crossline-agent not built: run cargo build -p crossline-agent" >&2; exit 1; }

BROWSER=""
for b in chromium chromium-browser google-chrome; do
    if command -v "$b" >/dev/null; then BROWSER=$(command -v "$b"); break; fi
done
[ -n "$BROWSER" ] || { echo "chromium not found: apt-get install -y chromium" >&2; exit 1; }

mkdir -p "$OUT"
"$AGENT" analyze --config "$CONFIG" --out "$OUT/events.jsonl" \
    --report "$OUT/report.html" --lang "$LANG_ARG" "${PCAPS[@]}"

PROFILE=$(mktemp -d)
trap 'rm -rf "$PROFILE"' EXIT
FLAGS=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
       --disable-background-networking --disable-component-update --disable-sync
       --disable-dev-shm-usage --hide-scrollbars --user-data-dir="$PROFILE")
"$BROWSER" "${FLAGS[@]}" --screenshot="$OUT/report.png" --window-size=1280,2400 \
    "file://$OUT/report.html" 2>/dev/null
"$BROWSER" "${FLAGS[@]}" --print-to-pdf="$OUT/report.pdf" --no-pdf-header-footer \
    "file://$OUT/report.html" 2>/dev/null
echo "report:     $OUT/report.html"
echo "screenshot: $OUT/report.png"
echo "pdf:        $OUT/report.pdf"
