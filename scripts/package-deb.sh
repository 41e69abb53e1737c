#!/usr/bin/env bash
# Build the Debian packages crossline-agent and crossline-collector with dpkg-deb alone (no
# cargo-deb, no debhelper): binaries in /usr/bin, systemd units, configuration in
# /etc/crossline (conffiles), man pages and shell completions generated from the binaries'
# command-line definitions, docs and examples, maintainer scripts that create the service users.
#
#   scripts/package-deb.sh                      release build, packages in target/debian/
#                                               (the agent profile-guided, scripts/build-pgo.sh,
#                                               when llvm-profdata is there; PGO=0: plain)
#   scripts/package-deb.sh --bin-dir target/debug --out DIR --compression gzip
#       package binaries already built (the test suite does this with the debug build)
#
# Sources: packaging/systemd/*.service, packaging/etc/*.toml, packaging/debian/*.in,
# docs/deploy.md, docs/metrics.md, examples/.
set -euo pipefail
cd "$(dirname "$0")/.."

bin_dir=""
out=target/debian
compression=xz
while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) bin_dir=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --compression) compression=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "package-deb.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
for tool in dpkg-deb readelf strip gzip ldconfig; do
    command -v "$tool" >/dev/null || { echo "package-deb.sh: $tool not found (packages dpkg, binutils)" >&2; exit 1; }
done
agent_bin=""
if [ -z "$bin_dir" ]; then
    cargo build --release --locked -p crossline-agent -p crossline-collector --bins
    bin_dir=target/release
    if [ "${PGO:-1}" = 1 ]; then
        rc=0
        agent_bin=$(scripts/build-pgo.sh --target-dir target | tail -n1) || rc=$?
        if [ "$rc" = 3 ]; then
            echo "package-deb.sh: no llvm-profdata: packaging the plain release agent" >&2
            agent_bin=""
        elif [ "$rc" != 0 ]; then
            echo "package-deb.sh: scripts/build-pgo.sh failed (exit $rc); PGO=0 packages the plain build" >&2
            exit 1
        fi
    fi
fi

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
[ -n "$version" ] || { echo "package-deb.sh: no version in Cargo.toml [workspace.package]" >&2; exit 1; }
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$out"

# Debian packages that provide the shared libraries a binary links to.
shlib_depends() {
    local lib path pkg
    for lib in $(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        path=$(ldconfig -p | awk -v l="$lib" '$1 == l && !done { print $NF; done = 1 }')
        if [ -z "$path" ]; then
            echo "package-deb.sh: $1 needs $lib, which ldconfig does not know" >&2
            return 1
        fi
        pkg=$(dpkg -S "$path" 2>/dev/null || dpkg -S "$(readlink -f "$path")" 2>/dev/null || true)
        pkg=${pkg%%:*}
        if [ -z "$pkg" ]; then
            echo "package-deb.sh: no Debian package owns $path ($lib, needed by $1)" >&2
            return 1
        fi
        echo "$pkg"
    done | sort -u | paste -sd, | sed 's/,/, /g'
}

# build NAME USER STATE ROLE CONFIGS SUMMARY DESCRIPTION
build() {
    local name=$1 user=$2 state=$3 role=$4 configs=$5 summary=$6 description=$7
    local root="$stage/$name" doc="$stage/$name/usr/share/doc/$name"
    local bin="$bin_dir/$name"
    if [ "$name" = crossline-agent ] && [ -n "$agent_bin" ]; then bin=$agent_bin; fi
    [ -x "$bin" ] || { echo "package-deb.sh: $bin not found or not executable" >&2; exit 1; }

    install -D -m 0755 "$bin" "$root/usr/bin/$name"
    strip --strip-unneeded "$root/usr/bin/$name"
    install -D -m 0644 "packaging/systemd/$name.service" "$root/usr/lib/systemd/system/$name.service"

    "$root/usr/bin/$name" generate man "$stage/man-$name" >/dev/null
    for page in "$stage/man-$name"/*.1; do
        install -D -m 0644 "$page" "$root/usr/share/man/man1/$(basename "$page")"
        gzip -9n "$root/usr/share/man/man1/$(basename "$page")"
    done
    "$root/usr/bin/$name" generate completions "$stage/compl-$name" >/dev/null
    install -D -m 0644 "$stage/compl-$name/bash/$name" "$root/usr/share/bash-completion/completions/$name"
    install -D -m 0644 "$stage/compl-$name/zsh/_$name" "$root/usr/share/zsh/vendor-completions/_$name"
    install -D -m 0644 "$stage/compl-$name/fish/$name.fish" "$root/usr/share/fish/vendor_completions.d/$name.fish"

    local conffiles="" secrets="" cfg
    for cfg in $configs; do
        install -D -m 0644 "packaging/etc/$cfg" "$root/etc/crossline/$cfg"
        conffiles+="/etc/crossline/$cfg"$'\n'
        secrets+=" /etc/crossline/$cfg"
    done

    install -D -m 0644 docs/deploy.md "$doc/deploy.md"
    install -D -m 0644 docs/metrics.md "$doc/metrics.md"
    case "$name" in
        crossline-agent)
            install -D -m 0644 examples/agent.toml "$doc/examples/agent.toml"
            install -D -m 0644 examples/registry.toml "$doc/examples/registry.toml"
            ;;
        crossline-collector)
            install -D -m 0644 examples/collector.toml "$doc/examples/collector.toml"
            install -D -m 0644 dashboards/prometheus/prometheus.yml "$doc/examples/prometheus.yml"
            install -D -m 0644 dashboards/prometheus/rules.yml "$doc/examples/rules.yml"
            ;;
    esac
    cat > "$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: crossline
Source: the crossline repository

Files: *
License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF
    chmod 0644 "$doc/copyright"

    mkdir -p "$root/DEBIAN"
    printf '%s' "$conffiles" > "$root/DEBIAN/conffiles"
    local script
    for script in postinst prerm postrm; do
        sed -e "s|@PACKAGE@|$name|g" -e "s|@USER@|$user|g" -e "s|@STATE@|$state|g" \
            -e "s|@ROLE@|$role|g" -e "s|@SECRETS@|${secrets# }|g" \
            "packaging/debian/$script.in" > "$root/DEBIAN/$script"
        chmod 0755 "$root/DEBIAN/$script"
    done
    local depends
    depends=$(shlib_depends "$root/usr/bin/$name")
    local size
    size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
    cat > "$root/DEBIAN/control" <<EOF
Package: $name
Version: $version
Architecture: $arch
Maintainer: crossline maintainers <crossline@localhost>
Installed-Size: $size
Depends: $depends, adduser
Section: net
Priority: optional
Description: $summary
$description
EOF
    (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z \
        | xargs -0 md5sum > DEBIAN/md5sums)
    chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
    local deb="$out/${name}_${version}_${arch}.deb"
    dpkg-deb --root-owner-group -Z"$compression" --build "$root" "$deb" >/dev/null
    echo "$deb"
}

build crossline-agent crossline agent agent "agent.toml registry.toml" \
    "crossline capture agent for cross-border leased lines" \
" Captures the traffic of a cross-border line, builds flows and L7 metadata,
 classifies each export against the registry of filed transfer scenarios and
 streams alerts over mutual TLS to a crossline collector. Runs as the
 unprivileged user crossline with CAP_NET_RAW only."
build crossline-collector crossline-collector collector collector "collector.toml" \
    "crossline collector: ingest, incidents, notifications, API" \
" Receives the events of crossline agents over mutual TLS, stores them in
 SQLite, groups alerts into incidents, notifies Alertmanager, webhooks and
 syslog, and serves an API and Prometheus metrics. Runs as the unprivileged
 user crossline-collector without capabilities."
