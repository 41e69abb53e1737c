#!/usr/bin/env bash
# Install the Debian packages crossline needs, only when they are missing.
#   scripts/ensure-deps.sh build   libpcap-dev (to build and run the agent)
#   scripts/ensure-deps.sh test    + tshark, tcpdump, tcpreplay, iproute2, Prometheus,
#                                  Alertmanager, Chromium, poppler-utils, npm, packaging tools, PostgreSQL 15,
#                                  python3-jsonschema, gdb (stacks of a process a test gave up on)
#                                  (for the test suite; the collector's PostgreSQL store tests start their own server)
set -euo pipefail

want=(libpcap-dev)
if [ "${1:-build}" = test ]; then
    want+=(tshark tcpdump tcpreplay iproute2 prometheus prometheus-alertmanager chromium fonts-noto-cjk
           poppler-utils)
    # Packaging tests: readelf/strip, systemd-analyze, adduser and man in the
    # overlay install, unshare/setpriv.
    want+=(binutils systemd adduser man-db util-linux)
    # The PostgreSQL store tests: initdb/pg_ctl from /usr/lib/postgresql/15/bin, useradd (passwd).
    want+=(postgresql-15 passwd)
    # A test that gives up waiting for a process prints its threads' stacks (gdb).
    want+=(gdb)
    # The console's browser test installs axe-core with npm (a Node.js that brings its own npm
    # counts).
    command -v npm >/dev/null || want+=(npm)
    # The EVE schema test validates events with Python's jsonschema (a pip-installed one counts).
    python3 -c 'import jsonschema' 2>/dev/null || want+=(python3-jsonschema)
fi

missing=()
for pkg in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "crossline: installing missing Debian packages: ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then SUDO=sudo; else
        echo "crossline: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# wireshark-common asks whether non-root users may capture; answer no without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "crossline: installed ${missing[*]}" >&2
