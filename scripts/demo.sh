#!/usr/bin/env bash
# crossline's main job on the bundled example: validate the example registry and gateway
# config, then analyse the example capture against it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-deps.sh build
cargo build --release --bins
./target/release/crossline-agent check --config examples/agent.toml
if [ -f examples/demo.pcap ]; then
    ./target/release/crossline-agent analyze --config examples/agent.toml \
        --out target/demo-events.jsonl examples/demo.pcap
    echo "events written to target/demo-events.jsonl" >&2
fi
