#!/usr/bin/env bash
# Rebuild the tshark oracles of captures: <capture>.conv.csv, .sni.csv, .dns.csv (format in
# README.md). Usage:
#   tests/corpus/regen-oracles.sh [-o OUTDIR] [CAPTURE...]
# Without captures: every *.pcap / *.pcapng of this folder, written into its oracle/ folder.
# Needs tshark and python3. The committed oracles were made with TShark 4.0.17.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/oracle"
if [ "${1:-}" = "-o" ]; then
    out="$2"
    shift 2
fi
command -v tshark >/dev/null || { echo "regen-oracles.sh: tshark not found (apt-get install tshark)" >&2; exit 69; }
if [ "$#" -eq 0 ]; then
    set -- "$here"/*.pcap "$here"/*.pcapng
fi
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# 0x1e separates the values of a field that occurs several times in a frame (tunnels,
# several answers).
tshark_fields() {
    local pcap="$1" filter="$2"
    shift 2
    local args=()
    if [ -n "$filter" ]; then args+=(-Y "$filter"); fi
    for f in "$@"; do args+=(-e "$f"); done
    tshark -n -o tcp.desegment_tcp_streams:TRUE -r "$pcap" \
        -T fields -E separator=/t -E occurrence=a -E aggregator=$'\x1e' "${args[@]}" 2>/dev/null || true
}
n=0
for pcap in "$@"; do
    [ -f "$pcap" ] || continue
    name="$(basename "$pcap")"
    tshark -n -o tcp.desegment_tcp_streams:TRUE -r "$pcap" -q -z conv,tcp -z conv,udp \
        > "$work/conv.txt" 2>/dev/null || true
    tshark_fields "$pcap" "" frame.time_epoch frame.time_relative frame.len \
        tcp.stream tcp.srcport tcp.dstport udp.stream udp.srcport udp.dstport \
        ip.src ip.dst ipv6.src ipv6.dst > "$work/frames.tsv"
    tshark_fields "$pcap" 'tls.handshake.type == 1 && tls.handshake.extensions_server_name' \
        frame.time_epoch _ws.col.Source _ws.col.Destination tcp.srcport tcp.dstport \
        udp.srcport udp.dstport tls.handshake.extensions_server_name > "$work/sni.tsv"
    tshark_fields "$pcap" 'dns.flags.response == 1 && dns.count.answers > 0' \
        frame.time_epoch dns.count.answers dns.qry.name dns.resp.name dns.resp.type \
        dns.a dns.aaaa dns.cname > "$work/dns.tsv"
    python3 "$here/oracle_csv.py" "$work" "$out/$name"
    n=$((n + 1))
done
echo "regen-oracles.sh: $n capture(s) -> $out" >&2
