#!/usr/bin/env bash
# bench/live.sh — highest loss-free live capture rate of crossline-agent next to
# `tcpdump -w /dev/null`, on a veth pair whose capture end sits in a network namespace.
#
#   sudo bench/live.sh                       default generator, rates and input
#   GEN=trafgen bench/live.sh                generator: tcpreplay (default; --preload-pcap, the
#                                            capture slice held in memory) or trafgen (Debian
#                                            netsniff-ng, installed when missing; TX ring)
#   RATES="100000 200000 max" bench/live.sh  packets/s steps to try (ascending); "max" sends as
#                                            fast as the generator can (tcpreplay --topspeed,
#                                            trafgen without a rate)
#   MAX_LOOPS="5 20"                         at "max": step the packets sent (slice loops) too,
#                                            so a burst that fits the kernel buffers is not
#                                            taken for a sustained rate
#   LIVE_PACKETS=200000 bench/live.sh        packets replayed per step (from bench.pcap)
#   WORKERS=1                                agent workers (default 1, pinned like tcpdump)
#   LOOP=5                                   replay the slice this many times per step (default 5,
#                                            so a step outlasts the 64 MiB kernel buffers)
#   SNAPLEN=2048                             agent capture.snaplen (default: the agent's default)
#   TOOLS="agent"                            which tools to run (default "tcpdump agent")
#   PGO=0                                    the plain release build even when the
#                                            profile-guided one (bench/run.sh) is there
#   CPU_SHARE=10                             let each tool under test use only this percentage
#                                            of one CPU (a cgroup CPU quota over 10 ms periods;
#                                            100 ms below 10 %, the kernel wants 1 ms at least),
#                                            so that a generator that cannot outrun a whole
#                                            core still finds each tool's limit: both tools get
#                                            the same budget, and the ratio of their loss-free
#                                            rates is the ratio of what a packet costs each
#                                            (the kernel's receive work runs on the sender's CPU
#                                            and is not in the budget)
#   RX_CPU=1                                 the kernel's receive work for the capture interface
#                                            (RPS: the backlog, the packet taps that copy each
#                                            frame into the tools' rings) on the tool's own CPU,
#                                            as on a gateway where the receive interrupts and
#                                            the capture share cores. On a veth pair each frame
#                                            stays charged to the sender's socket buffer until
#                                            that CPU has taken it in (and one its backlog
#                                            refuses is refused to the sender, which sends it
#                                            again), so the sender slows down to what that CPU
#                                            takes in: tcpdump, which does next to nothing with
#                                            a packet, is then loss-free at every rate the sender
#                                            reaches, and that rate is about the most the kernel
#                                            delivers on that CPU
#   CPU_TAKEN=30                             with RX_CPU: a real-time task (SCHED_FIFO, on the
#                                            tool's CPU) busy this percentage of every 10 ms, so
#                                            that the tool and the kernel's receive work share
#                                            the rest of the CPU and both give out below the
#                                            generator's maximum
#
# The generator (pinned to CPU 0) sends the first LIVE_PACKETS packets of bench/out/bench.pcap
# (frames up to the veth MTU) into veth end `clb0` (root namespace); the tool under test
# captures on the peer `clb1` inside namespace `clbench`, pinned to CPU 1 (the agent's capture
# thread, worker and writer share it when WORKERS=1). A step is loss-free when the tool saw
# every packet that arrived at the interface and reports zero kernel / queue drops. Steps go
# up until the first loss. The rate of a step is the achieved one (tcpreplay's "Rated: ... pps"; trafgen:
# packets sent / its run time), not the requested one. When a tool is loss-free at the
# generator's maximum, its loss-free rate is "at least" that: the generator is the bound.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
OUT="$HERE/out"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target-bench}"
BIN="$CARGO_TARGET_DIR/release/crossline-agent"
# The profile-guided build bench/run.sh makes (scripts/build-pgo.sh), when it is there and
# PGO is not 0: the binary the packages ship.
if [ "${PGO:-1}" = 1 ] && [ -x "$CARGO_TARGET_DIR/pgo/optimised/release/crossline-agent" ]; then
  BIN="$CARGO_TARGET_DIR/pgo/optimised/release/crossline-agent"
fi
GEN="${GEN:-tcpreplay}"
RATES="${RATES:-100000 200000 400000 600000 800000 1000000 max}"
MAX_LOOPS="${MAX_LOOPS:-5 20}"
LIVE_PACKETS="${LIVE_PACKETS:-200000}"
WORKERS="${WORKERS:-1}"
LOOP="${LOOP:-5}"
TOOLS="${TOOLS:-tcpdump agent}"
CPU_SHARE="${CPU_SHARE:-}"
RX_CPU="${RX_CPU:-}"
CPU_TAKEN="${CPU_TAKEN:-}"
HOG=""
CG=""
NS=clbench
A=clb0
B=clb1
mkdir -p "$OUT"
log() { printf '[live] %s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || { echo "live.sh needs root (network namespace, veth, capture)" >&2; exit 2; }
command -v tcpreplay >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y tcpreplay >&2
if [ "$GEN" = trafgen ]; then
  command -v trafgen >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends netsniff-ng >&2
  command -v trafgen >/dev/null || { echo "GEN=trafgen: trafgen not installed" >&2; exit 2; }
fi
case "$GEN" in tcpreplay | trafgen) ;; *) echo "GEN must be tcpreplay or trafgen" >&2; exit 2 ;; esac
command -v tcpdump >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y tcpdump >&2
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release -p crossline-agent --bin crossline-agent >&2)
echo "live.sh: agent binary $BIN" >&2

# The slice, without frames above the veth MTU (9000 + Ethernet header): a generator cannot
# send them, and a step counts only what was sent.
PCAP="$OUT/live-$LIVE_PACKETS.pcap"
if [ ! -s "$PCAP" ]; then
  [ -s "$OUT/bench.pcap" ] || { echo "missing $OUT/bench.pcap: run bench/run.sh first" >&2; exit 2; }
  editcap -r "$OUT/bench.pcap" "$PCAP.tmp" "1-$LIVE_PACKETS"
  tcpdump -r "$PCAP.tmp" -w "$PCAP" 'len <= 9014' 2>/dev/null
  rm -f "$PCAP.tmp"
fi
SLICE_PKTS="$(capinfos -c -M "$PCAP" | sed -n 's/^Number of packets: *\([0-9]*\).*/\1/p')"
TGCFG="$OUT/live-$LIVE_PACKETS.trafgen.cfg"
if [ "$GEN" = trafgen ] && [ ! -s "$TGCFG" ]; then
  log "converting the slice into a trafgen packet configuration"
  netsniff-ng --in "$PCAP" --out "$TGCFG" --silent >/dev/null 2>&1
fi

# percentage NAME VALUE MAX: VALUE must be a whole percentage from 1 to MAX, or the run stops.
percentage() {
  case "$2" in *[!0-9]* | "" | 0) echo "$1 must be a whole percentage, 1-$3" >&2; exit 2 ;; esac
  [ "$2" -le "$3" ] || { echo "$1 must be a whole percentage, 1-$3" >&2; exit 2; }
}

cleanup() {
  [ -z "$HOG" ] || kill "$HOG" 2>/dev/null || true
  ip link del "$A" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  [ -z "$CG" ] || rmdir "$CG" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
# CPU_SHARE: a cgroup with a CPU quota that each tool under test joins before it starts
# (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us`).
if [ -n "$CPU_SHARE" ]; then
  percentage CPU_SHARE "$CPU_SHARE" 100
  # Periods of 10 ms; below 10 % the quota would be under the kernel's 1 ms minimum, so the
  # period is 100 ms then (the 64 MiB ring holds far more than 100 ms of packets).
  period=10000
  [ "$CPU_SHARE" -ge 10 ] || period=100000
  quota=$((CPU_SHARE * period / 100))
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    CG=/sys/fs/cgroup/clbench
    echo +cpu >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
    mkdir -p "$CG"
    echo "$quota $period" >"$CG/cpu.max"
  elif [ -d /sys/fs/cgroup/cpu ]; then
    CG=/sys/fs/cgroup/cpu/clbench
    mkdir -p "$CG"
    echo "$period" >"$CG/cpu.cfs_period_us"
    echo "$quota" >"$CG/cpu.cfs_quota_us"
  else
    echo "CPU_SHARE: no cgroup CPU controller found under /sys/fs/cgroup" >&2; exit 2
  fi
  log "each tool under test limited to $CPU_SHARE % of one CPU ($CG, periods of $((period / 1000)) ms)"
fi
# in_share CMD... &: become CMD (exec: `$!` is its PID, signals reach it) inside the
# CPU_SHARE cgroup, if any; only in the background. It joins before `ip netns exec`, which
# mounts a sysfs of its own without the cgroups.
in_share() {
  if [ -n "$CG" ]; then
    exec sh -c 'echo $$ >"$0/cgroup.procs" || exit 1; exec "$@"' "$CG" "$@"
  else
    exec "$@"
  fi
}
ip netns add "$NS"
ip link add "$A" type veth peer name "$B" netns "$NS"
# Jumbo MTU so the capture's larger frames (GSO captures) can be replayed; IPv6 off so no
# neighbour discovery / MLD packets add to the count.
sysctl -qw "net.ipv6.conf.$A.disable_ipv6=1" || true
ip netns exec "$NS" sysctl -qw "net.ipv6.conf.$B.disable_ipv6=1" || true
ip link set "$A" mtu 9000 up
ip -n "$NS" link set "$B" mtu 9000 up
ip -n "$NS" link set lo up

CFG="$OUT/agent-live.toml"
cat >"$CFG" <<EOF
# Generated by bench/live.sh.
gateway = "gw-live-bench"
domestic = ["0.0.0.0/1", "::/1", "fd00::/8"]
registry = "$ROOT/examples/registry.toml"
[capture]
interfaces = ["$B"]
workers = $WORKERS
${SNAPLEN:+snaplen = $SNAPLEN}
[detect]
pi_key = "6265e7c1f0a94b7d8e3a2c5b1d0f9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e"
EOF
CPUS=1
[ "$WORKERS" -gt 1 ] && CPUS=0,1
if [ -n "$RX_CPU" ]; then
  mask=2
  [ "$CPUS" = 1 ] || mask=3
  ip netns exec "$NS" sh -c "echo $mask >/sys/class/net/$B/queues/rx-0/rps_cpus"
  log "receive work of $B on CPU(s) $CPUS with the tool (RPS mask $mask)"
fi
if [ -n "$CPU_TAKEN" ]; then
  percentage CPU_TAKEN "$CPU_TAKEN" 90
  [ -n "$RX_CPU" ] || { echo "CPU_TAKEN needs RX_CPU=1" >&2; exit 2; }
  # Busy CPU_TAKEN % of every 10 ms, asleep the rest; above every tool and above the kernel's
  # deferred receive work (ksoftirqd), not above receive work done on interrupt exit.
  taskset -c "$CPUS" chrt -f 50 python3 -c '
import sys, time
busy = int(sys.argv[1]) / 100 * 0.010
while True:
    t = time.perf_counter()
    while time.perf_counter() - t < busy:
        pass
    time.sleep(0.010 - busy)
' "$CPU_TAKEN" &
  HOG=$!
  log "a real-time task takes $CPU_TAKEN % of CPU(s) $CPUS"
fi

# Frames the capture interface received (what a capture there can see at all).
rx_packets() { ip netns exec "$NS" cat "/sys/class/net/$B/statistics/rx_packets"; }

# replay RATE LOOPS -> prints "arrived achieved_pps" (RATE "max": as fast as the generator can).
# "arrived" counts the frames the capture interface received: a frame the generator sent that
# the veth did not deliver (it happens to a few frames of the slice with trafgen) is nobody's
# loss.
replay() {
  local rate="$1" loops="$2" out sent rated rx0 rx1
  rx0="$(rx_packets)"
  if [ "$GEN" = trafgen ]; then
    local t0 t1 args=()
    [ "$rate" = max ] || args=(-b "${rate}pps")
    t0="$(date +%s.%N)"
    out="$(taskset -c 0 trafgen -i "$TGCFG" -o "$A" -P 1 -J -Q -n "$((SLICE_PKTS * loops))" \
      "${args[@]}" 2>&1 || true)"
    t1="$(date +%s.%N)"
    sent="$(tr -d '\r' <<<"$out" | sed -n 's/^ *\([0-9]*\) packets outgoing.*/\1/p' | head -n1)"
    rated="$(python3 -c "import sys; print(f'{int(sys.argv[1] or 0) / max(float(sys.argv[3]) - float(sys.argv[2]), 1e-9):.2f}')" "${sent:-0}" "$t0" "$t1")"
  else
    local speed=(--pps="$rate")
    [ "$rate" = max ] && speed=(--topspeed)
    out="$(taskset -c 0 tcpreplay -i "$A" --preload-pcap --loop="$loops" "${speed[@]}" "$PCAP" 2>&1 || true)"
    sent="$(sed -n 's/.*Successful packets: *\([0-9]*\).*/\1/p' <<<"$out" | head -n1)"
    rated="$(sed -n 's/.*Rated: [0-9.]* Bps, [0-9.]* Mbps, \([0-9.]*\) pps.*/\1/p' <<<"$out" | head -n1)"
    local retried
    retried="$(sed -n 's/.*Retried packets (ENOBUFS): *\([0-9]*\).*/\1/p' <<<"$out" | head -n1)"
    [ "${retried:-0}" = 0 ] || log "tcpreplay sent $retried frames again (ENOBUFS: the receiving CPU's backlog was full)"
  fi
  rx1="$(rx_packets)"
  local arrived=$((rx1 - rx0))
  if [ "${sent:-0}" -ne "$arrived" ]; then
    log "$GEN sent ${sent:-0} frames, $arrived arrived at $B"
  fi
  echo "$arrived ${rated:-0}"
}

# await_line TEXT FILE TRIES: wait until FILE has a line with TEXT (at most TRIES x 0.1 s),
# then half a second more. A tool that never says it is ready stops the benchmark: packets
# sent before its capture is open would count as arrived and never seen.
await_line() {
  local i
  for i in $(seq 1 "$3"); do
    if grep -q "$1" "$2" 2>/dev/null; then
      sleep 0.5
      return 0
    fi
    sleep 0.1
  done
  log "no \"$1\" in $2 after $(($3 / 10)) s:"
  cat "$2" >&2
  return 1
}

# trial_tcpdump RATE LOOPS -> prints "sent rated seen dropped"
trial_tcpdump() {
  local err="$OUT/live-tcpdump.err"
  in_share ip netns exec "$NS" taskset -c "$CPUS" tcpdump -i "$B" -nn -B 65536 -w /dev/null 2>"$err" &
  local pid=$!
  # Ready once it says it listens (its 64 MiB ring is set up): under a small CPU_SHARE that
  # takes longer than a fixed wait.
  if ! await_line "listening on" "$err" 600; then
    kill -INT "$pid"; wait "$pid" || true
    echo notready
    return
  fi
  read -r sent rated < <(replay "$1" "$2")
  sleep 1
  kill -INT "$pid"; wait "$pid" || true
  local seen dropped
  seen="$(sed -n 's/^\([0-9]*\) packets captured.*/\1/p' "$err")"
  dropped="$(sed -n 's/^\([0-9]*\) packets dropped by kernel.*/\1/p' "$err")"
  echo "$sent $rated ${seen:-0} ${dropped:-0}"
}

# trial_agent RATE LOOPS -> prints "sent rated seen dropped"
trial_agent() {
  local err="$OUT/live-agent.err" ev="$OUT/live-events.json"
  rm -f "$ev"
  in_share ip netns exec "$NS" taskset -c "$CPUS" "$BIN" run --config "$CFG" --out "$ev" 2>"$err" &
  local pid=$!
  # Under CPU_SHARE the agent's start-up takes 100 / share times its usual CPU time: mostly
  # the kernel clearing the 64 MiB capture ring (about 0.2 s), so at 4 % more than 5 s.
  if ! await_line "capturing on" "$err" 600; then
    kill -TERM "$pid"; wait "$pid" || true
    echo notready
    return
  fi
  read -r sent rated < <(replay "$1" "$2")
  sleep 1.5
  kill -TERM "$pid"; wait "$pid" || true
  python3 - "$ev" "$sent" "$rated" <<'PY'
import json, sys
ev, sent, rated = sys.argv[1:4]
stats = {}
for line in open(ev):
    if '"event_type":"stats"' in line:
        ev = json.loads(line)
        # crossline's counters: `crossline.stats` (EVE layout); top-level `stats` before it.
        stats = ev.get("crossline", ev).get("stats", {})
drops = sum(v for k, v in stats.get("drops", {}).items()
            if k in ("kernel", "interface", "queue", "unread_at_stop"))
print(sent, rated, stats.get("packets", 0), drops)
PY
}

RES="$OUT/live.tsv"
: >"$RES"
for tool in $TOOLS; do
  best=0
  for rate in $RATES; do
    loops_list="$LOOP"
    [ "$rate" = max ] && loops_list="$MAX_LOOPS"
    ok=yes
    for loops in $loops_list; do
      read -r sent rated seen dropped < <("trial_$tool" "$rate" "$loops")
      if [ "$sent" = notready ]; then
        log "$tool never said it was capturing: stopped (see the log above)"
        exit 1
      fi
      ok=no
      if [ "$sent" -gt 0 ] && [ "$seen" -ge "$sent" ] && [ "$dropped" -eq 0 ]; then ok=yes; fi
      log "$tool: $GEN at $rate pps, $loops loops: achieved $rated pps, sent $sent, seen $seen, dropped $dropped, loss-free $ok"
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$rate" "$loops" "$rated" "$sent" "$seen" "$dropped" "$ok" >>"$RES"
      [ "$ok" = yes ] || break
      # The highest achieved rate of a loss-free step (a requested rate the generator could
      # not reach gives its achieved rate, which can be below an earlier step's).
      best="$(python3 -c "import sys; print(max(float(sys.argv[1]), float(sys.argv[2])))" "$best" "$rated")"
    done
    [ "$ok" = yes ] || break
  done
  printf '%s\tbest\t%s\n' "$tool" "$best" >>"$RES"
done

python3 - "$RES" "$GEN" "$CPU_SHARE" "$RX_CPU" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
gen = sys.argv[2]
share = sys.argv[3]
best = {r[0]: float(r[2]) for r in rows if r[1] == "best"}
steps = [r for r in rows if r[1] != "best"]
print()
print(f"generator: {gen}" + (f"; each tool limited to {share} % of one CPU" if share else "")
      + ("; receive work on the tool's CPU" if sys.argv[4] else ""))
print("| tool | requested pps | loops | achieved pps | arrived | seen | dropped | loss-free |")
print("|---|---|---|---|---|---|---|---|")
for r in steps:
    print("| " + " | ".join(r) + " |")
print()
for t, b in best.items():
    at_max = all(r[7] == "yes" for r in steps if r[0] == t) and any(
        r[1] == "max" for r in steps if r[0] == t)
    bound = " (loss-free at the generator's maximum: at least this)" if at_max else ""
    print(f"{t}: highest loss-free rate {b:,.0f} pps{bound}")
at_max = {t: all(r[7] == "yes" for r in steps if r[0] == t)
          and any(r[1] == "max" for r in steps if r[0] == t) for t in best}
if best.get("tcpdump"):
    ratio = best.get("agent", 0) / best["tcpdump"]
    a, t = at_max.get("agent"), at_max.get("tcpdump")
    if a and t:
        # Neither capture lost a packet at any rate the sender reached: the ratio only
        # compares the sender's own runs, not the captures.
        print(f"BOUND agent / tcpdump loss-free rate: {ratio:.3f} (need >= 0.9), not decided: "
              "both loss-free at every step up to the generator's maximum, the sender is the limit")
    elif t and ratio >= 0.9:
        # tcpdump's own limit is above what the sender reached: the true ratio is lower.
        print(f"BOUND agent / tcpdump loss-free rate: at most {ratio:.3f} (need >= 0.9), not decided: "
              "tcpdump was loss-free at the generator's maximum, its limit is higher")
    elif a and ratio < 0.9:
        print(f"BOUND agent / tcpdump loss-free rate: at least {ratio:.3f} (need >= 0.9), not decided: "
              "the agent was loss-free at the generator's maximum, its limit is higher")
    else:
        bound = " (at most)" if t else " (at least)" if a else ""
        print(f"{'PASS' if ratio >= 0.9 else 'MISS'}  agent / tcpdump loss-free rate: {ratio:.3f}{bound} (need >= 0.9)")
    if sys.argv[4] and t and not a:
        print("note: with RX_CPU the sender slows to what the kernel takes in on the tools' CPU "
              "(its socket buffer holds each frame until then), so tcpdump's own limit cannot lie "
              "far above the generator's maximum it reached")
PY
