#!/usr/bin/env python3
"""Extract real ClientHellos (TLS over TCP) and client QUIC datagrams from a capture corpus.

Usage: python3 agent/testdata/extract.py [CORPUS_DIR]
(CORPUS_DIR: captures of public test suites, with tshark's output for each in oracle/;
the default is the corpus folder of the development checkout's sibling directory)

Writes, under agent/testdata/:
  tls/<pcap>__s<stream>.bin     the client's TCP byte stream from its first byte up to the
                                first server data (tshark "follow,tcp,raw"), at most 16 KiB
  tls/manifest.tsv              file, SNI, ALPN list, ECH (0/1), nDPI's JA4 (or -)
  quic/<pcap>__u<stream>.dgrams client->server UDP payloads of one QUIC connection, in capture
                                order, each as a 2-byte big-endian length then the bytes
  quic/manifest.tsv             file, SNI
  dns/<pcap>.msgs               DNS responses: 'U' (UDP payload) or 'T' (TCP payload, with the
                                2-byte length prefix), a 2-byte length, the bytes
  dns/<pcap>.expected.tsv       message index, answer owner name, A/AAAA address (tshark)
  http/<pcap>__s<stream>.req    the client's first bytes of an HTTP connection (up to 4.5 KiB)
  http/manifest.tsv             file, method, Host (tshark)
  banner/<pcap>.client|.server  first payload of each side of the first TCP connection
  banner/manifest.tsv           file, direction, server port, expected protocol
The SNI/ALPN/ECH expectations are tshark's dissection (the same tool as the oracle CSVs);
JA4 comes from nDPI's expected output for the same flow when it has one.
"""
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "../../../shared/corpus/real")
MAX_STREAMS = 25
# ClientHellos without an SNI, which the oracle's sni.csv therefore does not list.
EXTRA_TLS = {"ndpi__tls_with_huge_ch.pcapng"}
MAX_BYTES = 16 * 1024


def tshark(args):
    out = subprocess.run(["tshark"] + args, capture_output=True, text=True)
    return out.stdout


def ndpi_ja4(pcap):
    path = os.path.join(CORPUS, "expected", pcap + ".out")
    table = {}
    if not os.path.exists(path):
        return table
    for line in open(path, errors="replace"):
        m = re.search(r"(TCP|UDP) (\S+) <-> (\S+) .*?\[JA4: ([0-9a-z_]+)\]", line)
        if m:
            table[(m.group(2), m.group(3))] = m.group(4)
            table[(m.group(3), m.group(2))] = m.group(4)
    return table


def endpoint(ip, port):
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def tls_streams(pcap):
    rows = tshark(["-r", os.path.join(CORPUS, pcap), "-Y", "tls.handshake.type==1 && tcp",
                   "-T", "fields", "-E", "separator=\t", "-E", "occurrence=l",
                   "-e", "tcp.stream", "-e", "tcp.srcport",
                   "-e", "tls.handshake.extensions_server_name",
                   "-e", "tls.handshake.extensions_alpn_str",
                   "-e", "tls.handshake.extension.type",
                   "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.dstport",
                   "-e", "ip.dst", "-e", "ipv6.dst"])
    # extension.type needs all occurrences; ask again without occurrence=l for that field
    types = tshark(["-r", os.path.join(CORPUS, pcap), "-Y", "tls.handshake.type==1 && tcp",
                    "-T", "fields", "-e", "tcp.stream", "-e", "tls.handshake.extension.type",
                    "-e", "tls.handshake.extensions_alpn_str"])
    ext = {}
    alpns = {}
    for line in types.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0] not in ext:
            ext[parts[0]] = parts[1].split(",")
            alpns[parts[0]] = parts[2].split(",") if len(parts) > 2 and parts[2] else []
    seen = {}
    for line in rows.splitlines():
        p = line.split("\t")
        if len(p) < 10 or p[0] in seen:
            continue
        src = p[5] or p[6]
        dst = p[8] or p[9]
        seen[p[0]] = dict(stream=p[0], sport=p[1], sni=p[2], alpn=alpns.get(p[0], []),
                          ech="65037" in ext.get(p[0], []), src=src, dst=dst, dport=p[7])
    return list(seen.values())[:MAX_STREAMS]


def follow_client(pcap, streams):
    args = ["-r", os.path.join(CORPUS, pcap), "-q"]
    for s in streams:
        args += ["-z", f"follow,tcp,raw,{s['stream']}"]
    out = tshark(args)
    blocks = out.split("===================================================================")
    result = {}
    for block in blocks:
        m = re.search(r"Filter: tcp.stream eq (\d+)", block)
        if not m:
            continue
        stream = m.group(1)
        nodes = re.findall(r"Node (\d): (.*)", block)
        lines = [l for l in block.splitlines() if re.fullmatch(r"\t?[0-9a-f]+", l)]
        result[stream] = (nodes, lines)
    return result


def trim_to_client_hello(data):
    """Cuts the stream after the record that completes the ClientHello handshake message."""
    pos, hs = 0, b""
    while pos + 5 <= len(data) and data[pos] == 0x16:
        length = int.from_bytes(data[pos + 3:pos + 5], "big")
        hs += data[pos + 5:pos + 5 + length]
        pos += 5 + length
        if len(hs) >= 4 and len(hs) >= 4 + int.from_bytes(hs[1:4], "big"):
            return data[:pos]
    return data


def extract_tls(pcap, out_dir, manifest):
    streams = tls_streams(pcap)
    if not streams:
        return 0
    follows = follow_client(pcap, streams)
    ja4s = ndpi_ja4(pcap)
    n = 0
    for s in streams:
        if s["stream"] not in follows:
            continue
        nodes, lines = follows[s["stream"]]
        node0_port = nodes[0][1].rsplit(":", 1)[-1] if nodes else ""
        client_indented = node0_port != s["sport"]
        data = b""
        for line in lines:
            indented = line.startswith("\t")
            if indented == client_indented:
                data += bytes.fromhex(line.strip())
                if len(data) >= MAX_BYTES:
                    break
            elif data:
                break
        data = data[:MAX_BYTES]
        if not data.startswith(b"\x16\x03"):
            continue  # STARTTLS or mid-stream capture
        data = trim_to_client_hello(data)
        name = f"{pcap}__s{s['stream']}.bin"
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
        key = (endpoint(s["src"], s["sport"]), endpoint(s["dst"], s["dport"]))
        ja4 = ja4s.get(key, "-")
        manifest.append("\t".join([name, s["sni"] or "-", ",".join(s["alpn"]) or "-",
                                   "1" if s["ech"] else "0", ja4]))
        n += 1
    return n


def extract_quic(pcap, out_dir, manifest):
    path = os.path.join(CORPUS, pcap)
    rows = tshark(["-r", path, "-Y", "quic && tls.handshake.type==1", "-T", "fields",
                   "-E", "occurrence=f", "-e", "udp.stream", "-e", "udp.srcport",
                   "-e", "tls.handshake.extensions_server_name"])
    conns = {}
    for line in rows.splitlines():
        p = line.split("\t")
        if len(p) >= 3 and p[0] not in conns and p[2]:
            conns[p[0]] = (p[1], p[2])
    n = 0
    for stream, (sport, sni) in list(conns.items())[:MAX_STREAMS]:
        pl = tshark(["-r", path, "-Y", f"udp.stream=={stream} && udp.srcport=={sport}",
                     "-T", "fields", "-E", "occurrence=l", "-e", "udp.payload"])
        data = b""
        count = 0
        for line in pl.splitlines():
            if not line.strip():
                continue
            payload = bytes.fromhex(line.strip())
            data += len(payload).to_bytes(2, "big") + payload
            count += 1
            if count >= 12:
                break
        if not data:
            continue
        name = f"{pcap}__u{stream}.dgrams"
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
        manifest.append(f"{name}\t{sni}")
        n += 1
    return n


def extract_dns(pcap, out_dir, manifest):
    """Client-visible DNS responses (UDP payloads, or TCP payloads with the 2-byte length
    prefixes) and tshark's A/AAAA answers for each."""
    path = os.path.join(CORPUS, pcap)
    rows = tshark(["-r", path, "-Y", "dns.flags.response==1 && !mdns && !llmnr", "-T", "fields",
                   "-E", "aggregator=|", "-E", "occurrence=a",
                   "-e", "udp.payload", "-e", "tcp.payload", "-e", "dns.count.answers",
                   "-e", "dns.resp.name", "-e", "dns.resp.type", "-e", "dns.a", "-e", "dns.aaaa"])
    data, expected, n = b"", [], 0
    for line in rows.splitlines():
        p = line.split("\t")
        if len(p) < 7:
            continue
        udp, tcp = p[0].split("|")[-1], p[1].split("|")[-1]
        raw = udp or tcp
        if not raw or not p[2]:
            continue
        payload = bytes.fromhex(raw)
        kind = b"U" if udp else b"T"
        count = int(p[2].split("|")[0])
        names, types = p[3].split("|"), p[4].split("|")
        a_vals = [v for v in p[5].split("|") if v]
        aaaa_vals = [v for v in p[6].split("|") if v]
        for name, rtype in list(zip(names, types))[:count]:
            if rtype == "1" and a_vals:
                expected.append(f"{n}\t{name}\t{a_vals.pop(0)}")
            elif rtype == "28" and aaaa_vals:
                expected.append(f"{n}\t{name}\t{aaaa_vals.pop(0)}")
        data += kind + len(payload).to_bytes(2, "big") + payload
        n += 1
        if n >= 60:
            break
    if n == 0:
        return 0
    with open(os.path.join(out_dir, pcap + ".msgs"), "wb") as f:
        f.write(data)
    with open(os.path.join(out_dir, pcap + ".expected.tsv"), "w") as f:
        f.write("# message index\tanswer owner name\taddress (tshark)\n" + "\n".join(expected) + "\n")
    manifest.append(pcap)
    return n


HTTP_PCAPS = ["ndpi__http-lines-split.pcap", "ndpi__http_ua_splitted_in_two_pkts.pcapng",
              "ndpi__http_connect.pcap", "ndpi__http-manipulated.pcap", "ndpi__http_auth.pcap",
              "ndpi__ocsp.pcapng", "ndpi__jsonrpc.pcap", "ndpi__http_ipv6.pcap",
              "zeek__post.pcap", "zeek__methods.pcap", "zeek__web.pcap", "zeek__wikipedia.pcap",
              "zeek__http-vlan-0.pcap", "zeek__vxlan-encapsulated-http.pcap",
              "tcpdump__ipv4_tcp_http_xml.pcap", "ndpi__1kxun.pcap"]
BANNER_PCAPS = {"ndpi__ssh.pcap": "ssh", "zeek__single-conn.pcap": "ssh",
                "zeek__ssh-on-port-80.pcap": "ssh", "tcpdump__ssh.pcap": "ssh",
                "ndpi__ftp.pcap": "ftp", "zeek__ipv4.pcap": "ftp", "zeek__retr.pcap": "ftp",
                "ndpi__smtp.pcap": "smtp", "zeek__rfc3030-bdat-multipart.pcap": "smtp",
                "zeek__smtp-starttls.pcap": "smtp", "zeek__post.pcap": "http"}


def first_stream_payloads(pcap, stream, client_port):
    """(client bytes until the server speaks, server bytes until the client speaks again)."""
    nodes_lines = follow_client(pcap, [{"stream": stream}]).get(stream)
    if not nodes_lines:
        return b"", b""
    nodes, lines = nodes_lines
    node0_port = nodes[0][1].rsplit(":", 1)[-1] if nodes else ""
    client_indented = node0_port != client_port
    client, server = b"", b""
    for line in lines:
        data = bytes.fromhex(line.strip())
        if line.startswith("\t") == client_indented:
            if not server:
                client += data
        elif not server or not client:
            server += data
        if len(client) > 8192:
            break
    return client[:8192], server[:2048]


def extract_http(out_dir, manifest):
    for pcap in HTTP_PCAPS:
        rows = tshark(["-r", os.path.join(CORPUS, pcap), "-Y", "http.request", "-T", "fields",
                       "-E", "occurrence=l", "-e", "tcp.stream", "-e", "tcp.srcport",
                       "-e", "http.request.method", "-e", "http.host"])
        seen = set()
        for line in rows.splitlines()[:200]:
            p = line.split("\t")
            if len(p) < 4 or p[0] in seen or len(seen) >= 8:
                continue
            seen.add(p[0])
            client, _ = first_stream_payloads(pcap, p[0], p[1])
            if not client:
                continue
            name = f"{pcap}__s{p[0]}.req"
            with open(os.path.join(out_dir, name), "wb") as f:
                f.write(client[:4096 + 512])
            manifest.append(f"{name}\t{p[2]}\t{p[3] or '-'}")


def extract_banners(out_dir, manifest):
    for pcap, proto in BANNER_PCAPS.items():
        rows = tshark(["-r", os.path.join(CORPUS, pcap), "-Y", "tcp.flags.syn==1 && tcp.flags.ack==0",
                       "-T", "fields", "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "tcp.dstport"])
        first = rows.splitlines()[:1]
        if not first:
            continue
        stream, sport, dport = first[0].split("\t")[:3]
        client, server = first_stream_payloads(pcap, stream, sport)
        for side, data in (("client", client), ("server", server)):
            if data:
                name = f"{pcap}.{side}"
                with open(os.path.join(out_dir, name), "wb") as f:
                    f.write(data[:512])
                manifest.append(f"{name}\t{side}\t{dport}\t{proto}")


def main():
    tls_dir = os.path.join(HERE, "tls")
    quic_dir = os.path.join(HERE, "quic")
    os.makedirs(tls_dir, exist_ok=True)
    os.makedirs(quic_dir, exist_ok=True)
    dns_dir = os.path.join(HERE, "dns")
    os.makedirs(dns_dir, exist_ok=True)
    tls_manifest, quic_manifest, dns_manifest = [], [], []
    for pcap in sorted(os.listdir(CORPUS)):
        if not (pcap.endswith(".pcap") or pcap.endswith(".pcapng")):
            continue
        dns_csv = os.path.join(CORPUS, "oracle", pcap + ".dns.csv")
        if os.path.exists(dns_csv) and len(open(dns_csv).read().splitlines()) > 1:
            print(pcap, "dns", extract_dns(pcap, dns_dir, dns_manifest), file=sys.stderr)
        sni_csv = os.path.join(CORPUS, "oracle", pcap + ".sni.csv")
        if not os.path.exists(sni_csv):
            continue
        lines = open(sni_csv).read().splitlines()[1:]
        if any(l.endswith(",tcp") for l in lines) or pcap in EXTRA_TLS:
            print(pcap, "tls", extract_tls(pcap, tls_dir, tls_manifest), file=sys.stderr)
        if any(l.endswith(",udp") for l in lines):
            print(pcap, "quic", extract_quic(pcap, quic_dir, quic_manifest), file=sys.stderr)
    with open(os.path.join(tls_dir, "manifest.tsv"), "w") as f:
        f.write("# file\tsni\talpn\tech\tja4 (nDPI)\n" + "\n".join(tls_manifest) + "\n")
    http_dir = os.path.join(HERE, "http")
    banner_dir = os.path.join(HERE, "banner")
    os.makedirs(http_dir, exist_ok=True)
    os.makedirs(banner_dir, exist_ok=True)
    http_manifest, banner_manifest = [], []
    extract_http(http_dir, http_manifest)
    extract_banners(banner_dir, banner_manifest)
    with open(os.path.join(http_dir, "manifest.tsv"), "w") as f:
        f.write("# file\tmethod\thost (tshark http.host)\n" + "\n".join(http_manifest) + "\n")
    with open(os.path.join(banner_dir, "manifest.tsv"), "w") as f:
        f.write("# file\tdirection\tserver port\tprotocol\n" + "\n".join(banner_manifest) + "\n")
    with open(os.path.join(dns_dir, "manifest.txt"), "w") as f:
        f.write("\n".join(dns_manifest) + "\n")
    with open(os.path.join(quic_dir, "manifest.tsv"), "w") as f:
        f.write("# file\tsni\n" + "\n".join(quic_manifest) + "\n")


main()
