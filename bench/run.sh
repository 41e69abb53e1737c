#!/usr/bin/env bash
# bench/run.sh — offline throughput and memory benchmark of crossline-agent against peer tools,
# all measured in the same run on the same capture (see bench/README.md).
#
#   bench/run.sh                 full run on bench/out/bench.pcap (~10.5 M packets)
#   QUICK=1 bench/run.sh         first 1 M packets only (bench/out/slice1m.pcap), fast iteration
#   MANY=1 bench/run.sh          a capture of 500,000 connections open at once instead
#                                (bench/out/many-int.pcap, written by the bench_many_flows
#                                example, domestic so nothing is classified): the same table
#                                with a flow table that large; the targets are set on the
#                                benchmark capture, so its PASS / MISS lines do not apply
#   RUNS=5 bench/run.sh          counted runs per tool (default 3; the median is reported)
#   PEERS="tcpdump softflowd"    which peers to run (default: tcpdump softflowd ndpiReader,
#                                plus argus / pmacctd when installed)
#   SKIP_MEMORY=1                skip the flow-table and SYN-flood memory examples
#   SKIP_BUILD=1                 use the release binaries already built (no cargo run)
#   SKIP_NULL=1                  skip the informational one-worker row with --out /dev/null
#   SKIP_THREADS=1               skip the untimed runs that read the agent's CPU by thread
#   PGO=0                        measure the plain release build only (default: the agent is
#                                built with profile-guided optimisation by scripts/build-pgo.sh,
#                                and the plain build runs beside it as agent-1w-plain)
#
# Every tool runs pinned with taskset: the peers and the one-worker agent on CPU 1 only
# (capture thread, worker and writer share that CPU), the two-worker agent on CPUs 0 and 1.
# The runs go in rounds, every tool once per round, so a drift of the machine's speed moves
# all of them alike.
# Wall time and peak RSS come from /usr/bin/time. The capture is read again before every timed
# run so it sits in the page cache (a kernel with proactive reclaim pages out file pages nobody
# touched for a while). Exit status 0 even when a target is missed: the table says PASS / MISS.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
OUT="$HERE/out"
SHARED="${SHARED:-$ROOT/../shared}"
RUNS="${RUNS:-3}"
QUICK="${QUICK:-0}"
MANY="${MANY:-0}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target-bench}"
BIN="$CARGO_TARGET_DIR/release/crossline-agent"
EXAMPLES="$CARGO_TARGET_DIR/release/examples"
CONFIG="$HERE/agent-bench.toml"
mkdir -p "$OUT"

log() { printf '[bench] %s\n' "$*" >&2; }

# --- 1. tools -------------------------------------------------------------------------------
need_pkgs=()
command -v tcpdump >/dev/null || need_pkgs+=(tcpdump)
command -v softflowd >/dev/null || need_pkgs+=(softflowd)
command -v ndpiReader >/dev/null || need_pkgs+=(libndpi-bin)
command -v editcap >/dev/null || need_pkgs+=(wireshark-common)
command -v capinfos >/dev/null || need_pkgs+=(wireshark-common)
command -v tcprewrite >/dev/null || need_pkgs+=(tcpreplay)
[ -x /usr/bin/time ] || need_pkgs+=(time)
command -v taskset >/dev/null || need_pkgs+=(util-linux)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  log "installing missing packages: ${need_pkgs[*]}"
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_pkgs[@]}" >&2
  else
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_pkgs[@]}" >&2
  fi
fi

# --- 2. build (release) ----------------------------------------------------------------------
PLAIN_BIN="$BIN"
PGO_BIN="$CARGO_TARGET_DIR/pgo/optimised/release/crossline-agent"
BUILD_KIND="plain release build (PGO=0)"
if [ "${SKIP_BUILD:-0}" = 1 ] && [ -x "$BIN" ] \
   && { [ "${SKIP_MEMORY:-0}" = 1 ] || [ -x "$EXAMPLES/bench_flood" ]; } \
   && { [ "$MANY" != 1 ] || [ -x "$EXAMPLES/bench_many_flows" ]; }; then
  log "SKIP_BUILD=1: using the release binaries already in $CARGO_TARGET_DIR"
  if [ "${PGO:-1}" = 1 ]; then
    if [ -x "$PGO_BIN" ]; then
      BIN="$PGO_BIN"
      BUILD_KIND="profile-guided build (scripts/build-pgo.sh), already built"
    else
      BUILD_KIND="plain release build (SKIP_BUILD=1 and no profile-guided build in $PGO_BIN)"
    fi
  fi
else
  if [ "${SKIP_BUILD:-0}" = 1 ]; then
    log "SKIP_BUILD=1, but $BIN or an example this run needs is not built in $CARGO_TARGET_DIR: building them (the profile-guided build as well, several minutes)"
  fi
  log "building release binaries into $CARGO_TARGET_DIR"
  (cd "$ROOT" && cargo build --release -p crossline-agent --bin crossline-agent \
     --example bench_flows --example bench_flood --example bench_micro \
     --example bench_many_flows >&2)
  if [ "${PGO:-1}" = 1 ]; then
    log "building the agent with profile-guided optimisation (scripts/build-pgo.sh)"
    rc=0
    built=$("$ROOT/scripts/build-pgo.sh" --target-dir "$CARGO_TARGET_DIR" | tail -n1) || rc=$?
    if [ "$rc" = 0 ] && [ -x "$built" ]; then
      BIN="$built"
      BUILD_KIND="profile-guided build (scripts/build-pgo.sh)"
    elif [ "$rc" = 3 ]; then
      BUILD_KIND="plain release build (no llvm-profdata for a profile-guided one)"
      log "no llvm-profdata: measuring the plain release build"
    else
      log "scripts/build-pgo.sh failed (exit $rc)"
      exit 1
    fi
  fi
fi
log "agent: $BUILD_KIND: $BIN"

# --- 3. input --------------------------------------------------------------------------------
FULL="$OUT/bench.pcap"
if [ "$MANY" = 1 ]; then
  FULL="$OUT/many-int.pcap"
  if [ ! -s "$FULL" ]; then
    log "writing $FULL (500,000 connections open at once) with bench_many_flows"
    "$EXAMPLES/bench_many_flows" "$FULL" 500000 4 internal
  fi
  log "MANY=1: the targets are set on the benchmark capture; PASS / MISS below do not apply"
elif [ ! -s "$FULL" ]; then
  if [ ! -x "$SHARED/bench/make-bench-pcap.sh" ]; then
    log "no $FULL and no capture builder at $SHARED/bench/make-bench-pcap.sh:"
    log "set SHARED=DIR to the benchmark corpus folder, or put a large capture at $FULL"
    exit 2
  fi
  log "building $FULL with make-bench-pcap.sh (a few minutes)"
  "$SHARED/bench/make-bench-pcap.sh" "$FULL"
fi
PCAP="$FULL"
if [ "$QUICK" = 1 ] && [ "$MANY" != 1 ]; then
  PCAP="$OUT/slice1m.pcap"
  if [ ! -s "$PCAP" ]; then
    log "cutting the first 1,000,000 packets into $PCAP"
    editcap -r "$FULL" "$PCAP" 1-1000000
  fi
fi
INFO="$PCAP.info"
if [ ! -s "$INFO" ] || [ "$INFO" -ot "$PCAP" ]; then
  log "capinfos $PCAP"
  capinfos -T -r -c -d "$PCAP" | awk -F'\t' '{print $2 "\t" $3}' >"$INFO"
fi
PKTS="$(cut -f1 "$INFO")"
DATA_BYTES="$(cut -f2 "$INFO")"
log "input: $PCAP, $PKTS packets, $DATA_BYTES data bytes"

log "warming the page cache"
cat "$PCAP" >/dev/null

# --- 4. timed runs ---------------------------------------------------------------------------
RES="$OUT/results.tsv"
: >"$RES"
# once NAME CPUS CMD... : one counted run; appends "NAME wall maxrss_kb user_s sys_s" to RES.
# Runs go in rounds (every tool once, then again, RUNS times) instead of all of one tool's runs
# in a row: this machine's speed drifts by 10-20 % within minutes, and a drift then moves every
# tool's median alike instead of the ratios between them.
once() {
  local name="$1" cpus="$2"; shift 2
  local t="$OUT/time.$name.$round"
  # The previous run's output (FRESH) is removed before the clock starts: truncating it
  # would charge this run for freeing the last one's page cache (hundreds of MB).
  if [ -n "${FRESH:-}" ]; then rm -f "$FRESH"; fi
  # The capture back in the page cache: a kernel with proactive reclaim (DAMON's, on some
  # virtual machines) pages out what nobody touched for about a minute, and a run that reads
  # part of the capture from disk waits for it (seen as idle time: wall above user + sys).
  cat "$PCAP" >/dev/null
  # Dirty pages of earlier runs' output (hundreds of MB) are written back now, not while the
  # next run is timed.
  sync
  if ! /usr/bin/time -f '%e %M %U %S' -o "$t" taskset -c "$cpus" "$@" >"$OUT/stdout.$name" 2>"$OUT/stderr.$name"; then
    log "$name run $round exited non-zero (see $OUT/stderr.$name)"
  fi
  printf '%s\t%s\n' "$name" "$(tail -n1 "$t" | tr ' ' '\t')" >>"$RES"
  log "$name run $round: $(tail -n1 "$t") (wall s, max RSS kB, user s, sys s)"
}

if [ -z "${PEERS:-}" ]; then
  PEERS="tcpdump softflowd ndpiReader"
  if command -v argus >/dev/null; then PEERS="$PEERS argus"; fi
  if command -v pmacctd >/dev/null; then PEERS="$PEERS pmacctd"; fi
fi
cd "$(dirname "$PCAP")"
P="$(basename "$PCAP")"
if [[ " $PEERS " == *" pmacctd "* ]]; then
  cat >"$OUT/pmacctd.conf" <<EOF
daemonize: false
pcap_savefile: $P
pcap_savefile_wait: false
aggregate: src_host, dst_host, src_port, dst_port, proto
plugins: print
print_output: csv
print_output_file: /dev/null
print_refresh_time: 86400
plugin_pipe_size: 1073741824
plugin_buffer_size: 10485760
EOF
fi
for round in $(seq 1 "$RUNS"); do
  for peer in $PEERS; do
    case "$peer" in
      tcpdump) once tcpdump 1 tcpdump -nr "$P" -w /dev/null ;;
      ndpiReader) once ndpiReader 1 ndpiReader -i "$P" -q -n 1 ;;
      softflowd)
        rm -f /tmp/sfd.ctl /tmp/sfd.pid
        once softflowd 1 timeout 300 softflowd -r "$P" -n 127.0.0.1:9 -v 9 -6 -m 2000000 \
          -c /tmp/sfd.ctl -p /tmp/sfd.pid ;;
      argus) once argus 1 argus -X -r "$P" -w /dev/null ;;
      pmacctd) once pmacctd 1 pmacctd -f "$OUT/pmacctd.conf" ;;
      *) if [ "$round" = 1 ]; then log "unknown peer $peer, skipped"; fi ;;
    esac
  done
  FRESH="$OUT/events-1w.json" once agent-1w 1 "$BIN" analyze --config "$CONFIG" --workers 1 --out "$OUT/events-1w.json" "$P"
  # The plain release build beside the profile-guided one: what the profile is worth, and
  # proof that both write the same events.
  if [ "$BIN" != "$PLAIN_BIN" ]; then
    FRESH="$OUT/events-1w-plain.json" once agent-1w-plain 1 "$PLAIN_BIN" analyze --config "$CONFIG" --workers 1 --out "$OUT/events-1w-plain.json" "$P"
  fi
  # The same with the events thrown away: what writing them to a file costs (informational; the
  # targets are judged on the rows that write them).
  if [ "${SKIP_NULL:-0}" != 1 ]; then
    once agent-1w-null 1 "$BIN" analyze --config "$CONFIG" --workers 1 --out /dev/null "$P"
  fi
  FRESH="$OUT/events-2w.json" once agent-2w 0,1 "$BIN" analyze --config "$CONFIG" --workers 2 --out "$OUT/events-2w.json" "$P"
done
cd "$ROOT"

# --- 4b. where the CPU goes, by thread ----------------------------------------------------------
# One more run of each agent row, not timed, with /metrics up: the agent's own per-thread CPU
# time (crossline_agent_thread_cpu_seconds_total, read from the kernel) once the run is over.
# Each writes over the timed runs' events file of its row (removed first, as for a timed run:
# the same events, and the pages just freed are taken again; a file of a new name is written
# into memory this VM must back anew, which doubled the writer's time in a first try).
THREADS="$OUT/threads.txt"
: >"$THREADS"
if [ "${SKIP_THREADS:-0}" != 1 ]; then
  for w in 1 2; do
    cpus=1
    [ "$w" = 2 ] && cpus=0,1
    port=$((19580 + w))
    rm -f "$OUT/events-${w}w.json"
    cat "$PCAP" >/dev/null
    sync
    (cd "$(dirname "$PCAP")" && taskset -c "$cpus" "$BIN" analyze --config "$CONFIG" --workers "$w" \
      --out "$OUT/events-${w}w.json" --metrics-listen "127.0.0.1:$port" --linger 5s \
      "$(basename "$PCAP")" 2>/dev/null) &
    apid=$!
    python3 - "$port" "$w" "$PKTS" >>"$THREADS" <<'PY' || log "per-thread CPU of agent-${w}w not read"
import sys, time, urllib.request
port, w, pkts = sys.argv[1], sys.argv[2], int(sys.argv[3])
def metrics():
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            return r.read().decode()
    except OSError:
        return ""
deadline = time.time() + 600
text = ""
while time.time() < deadline:
    text = metrics()
    seen = [l for l in text.splitlines() if l.startswith("crossline_agent_packets_total ")]
    if seen and float(seen[0].split()[-1]) >= pkts:
        break
    time.sleep(0.2)
time.sleep(1)  # the run's last threads end just after the last packet is counted
text = metrics() or text
cpu = {}
for l in text.splitlines():
    if l.startswith("crossline_agent_thread_cpu_seconds_total{"):
        role = l.split('thread="', 1)[1].split('"', 1)[0]
        cpu[role] = float(l.rsplit(" ", 1)[1])
if not cpu:
    sys.exit(1)
total = sum(cpu.values())
parts = ", ".join(f"{r} {s:.2f} s ({s / total:.0%})" for r, s in sorted(cpu.items(), key=lambda x: -x[1]) if s >= 0.005)
print(f"agent-{w}w CPU by thread (one more run, not timed): {parts}; total {total:.2f} s")
PY
    wait "$apid" || true
  done
fi

# --- 5. memory examples ----------------------------------------------------------------------
MEM="$OUT/memory.txt"
: >"$MEM"
if [ "${SKIP_MEMORY:-0}" != 1 ]; then
  log "flow table at 1,000,000 concurrent flows (bench_flows)"
  taskset -c 1 "$EXAMPLES/bench_flows" 1000000 | tee -a "$MEM" >&2
  FLOOD_N=10000000
  [ "$QUICK" = 1 ] && FLOOD_N=1000000
  log "SYN flood of $FLOOD_N distinct flows against a 100,000-flow cap (bench_flood)"
  taskset -c 1 "$EXAMPLES/bench_flood" "$FLOOD_N" 100000 | tee -a "$MEM" >&2
fi

# --- 6. table --------------------------------------------------------------------------------
if [ "$BIN" = "$PLAIN_BIN" ]; then rm -f "$OUT/events-1w-plain.json"; fi
python3 - "$RES" "$PKTS" "$DATA_BYTES" "$OUT/events-1w.json" "$OUT/events-2w.json" "$MEM" "$PCAP" \
  "$BUILD_KIND" "$OUT/events-1w-plain.json" <<'PY'
import json, os, statistics, sys
res, pkts, data, ev1, ev2, mem, pcap, build, ev_plain = sys.argv[1:10]
pkts, data = int(pkts), int(data)
runs = {}
for line in open(res):
    f = line.rstrip("\n").split("\t")
    name = f[0]
    cpu = float(f[3]) + float(f[4]) if len(f) >= 5 else float("nan")
    runs.setdefault(name, []).append((float(f[1]), int(f[2]), cpu))
rows = {}
for name, rs in runs.items():
    walls = sorted(w for w, _, _ in rs)
    med = statistics.median(walls)
    cpu = statistics.median(c for _, _, c in rs)
    rows[name] = dict(min=walls[0], med=med, max=walls[-1], mpps=pkts / med / 1e6,
                      gbps=data * 8 / med / 1e9, rss=max(r for _, r, _ in rs) / 1024,
                      cpu=cpu, cpu_mpps=pkts / cpu / 1e6 if cpu > 0 else float("nan"))
td = rows.get("tcpdump")
a1 = rows.get("agent-1w")
print()
print(f"input: {pcap}  packets {pkts:,}  data bytes {data:,}  runs per tool: {len(next(iter(runs.values())))}")
print(f"agent rows: {build}")
print()
hdr = ("tool", "wall s min/med/max", "Mpps", "Gbit/s", "peak RSS MiB", "x tcpdump", "agent-1w / tool",
       "CPU s (user+sys) med", "Mpps per CPU s", "CPU: agent-1w / tool")
print("| " + " | ".join(hdr) + " |")
print("|" + "|".join("---" for _ in hdr) + "|")
for name, r in rows.items():
    vs_td = f"{r['mpps'] / td['mpps']:.3f}" if td else "-"
    vs_a1 = f"{a1['mpps'] / r['mpps']:.2f}" if a1 else "-"
    cpu_a1 = f"{a1['cpu_mpps'] / r['cpu_mpps']:.2f}" if a1 else "-"
    print(f"| {name} | {r['min']:.2f} / {r['med']:.2f} / {r['max']:.2f} | {r['mpps']:.3f} | "
          f"{r['gbps']:.2f} | {r['rss']:.1f} | {vs_td} | {vs_a1} | {r['cpu']:.2f} | "
          f"{r['cpu_mpps']:.3f} | {cpu_a1} |")
a1n = rows.get("agent-1w-null")
if a1 and a1n:
    print(f"writing the events to a file: agent-1w takes {a1['med'] / a1n['med']:.3f} x the time "
          f"of agent-1w-null (events to /dev/null), {a1['cpu'] / a1n['cpu']:.3f} x its CPU time")
# The runs went in rounds: the ratio of two tools within each round, and the median of those,
# is what a drift of the machine's speed between rounds does not move.
def paired(fast, slow):
    rf, rs = runs.get(fast), runs.get(slow)
    if not rf or not rs or len(rf) != len(rs):
        return None
    return [s[0] / f[0] for f, s in zip(rf, rs)]
for fast, slow, text in (("agent-1w", "tcpdump", "agent-1w x tcpdump"),
                         ("agent-2w", "agent-1w", "agent-2w x agent-1w"),
                         ("agent-1w", "agent-1w-plain", "agent-1w x agent-1w-plain")):
    p = paired(fast, slow)
    if p:
        print(f"paired by round: {text} {statistics.median(p):.3f} (rounds: "
              + ", ".join(f"{x:.3f}" for x in p) + ")")
print()

def final_stats(path):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 65536))
            last = f.read().splitlines()[-1]
        ev = json.loads(last)
        # crossline's counters: `crossline.stats` (EVE layout); top-level `stats` before it.
        return ev.get("crossline", ev).get("stats", ev)
    except Exception as e:  # report, don't hide
        return {"error": str(e)}

for label, path in (("agent-1w", ev1), ("agent-2w", ev2)):
    s = final_stats(path)
    if "error" in s:
        print(f"{label}: cannot read final stats from {path}: {s['error']}")
        continue
    print(f"{label}: packets {s.get('packets')}, flows {s.get('flows')}, "
          f"events {s.get('flow_events')}, evictions {s.get('evictions')}, "
          f"drops {s.get('drops')}, verdicts {s.get('verdicts')}")
# The output must not depend on the number of workers, nor on the build.
def identical(a, b):
    with open(a, "rb") as f1, open(b, "rb") as f2:
        same = all(x == y for x, y in zip(iter(lambda: f1.read(1 << 20), b""), iter(lambda: f2.read(1 << 20), b"")))
    return same and os.path.getsize(a) == os.path.getsize(b)
pairs = [("agent-1w and agent-2w", ev1, ev2)]
if os.path.exists(ev_plain):
    pairs.append(("agent-1w and agent-1w-plain", ev1, ev_plain))
for text, a, b in pairs:
    try:
        print(f"{text} outputs byte-identical: {'yes' if identical(a, b) else 'NO'}")
    except OSError as e:
        print(f"cannot compare the {text} outputs: {e}")
print()
checks = []
if td and a1:
    checks.append(("agent 1 worker >= 0.5 x tcpdump pps (wall)", a1["mpps"] / td["mpps"], 0.5))
    checks.append(("  same, by CPU time (load-independent view)", a1["cpu_mpps"] / td["cpu_mpps"], 0.5))
a2 = rows.get("agent-2w")
if a1 and a2:
    checks.append(("agent 2 workers >= 1.6 x agent 1 worker", a2["mpps"] / a1["mpps"], 1.6))
if a1:
    checks.append(("agent peak RSS <= 300 MiB (1 worker)", 300 / a1["rss"], 1.0))
if a2:
    checks.append(("agent peak RSS <= 300 MiB (2 workers)", 300 / a2["rss"], 1.0))
for text, got, want in checks:
    print(f"{'PASS' if got >= want else 'MISS'}  {text}: {got:.3f} (need >= {want})")
try:
    t = open(os.path.join(os.path.dirname(mem), "threads.txt")).read().strip()
    if t:
        print()
        print(t)
except OSError:
    pass
try:
    m = open(mem).read().strip()
    if m:
        print()
        print(m)
except OSError:
    pass
PY
