"""Turns the tshark outputs written by regen-oracles.sh into the oracle CSVs.

Usage: oracle_csv.py WORKDIR OUTBASE
WORKDIR holds conv.txt (tshark -z conv,tcp -z conv,udp), frames.tsv, sni.tsv and dns.tsv;
OUTBASE.conv.csv, OUTBASE.sni.csv and OUTBASE.dns.csv are written.
"""
import csv
import re
import sys

SEP = "\x1e"
UNITS = {"bytes": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
CONV_ROW = re.compile(
    r"^(?P<a>\S+)\s+<->\s+(?P<b>\S+)"
    r"\s+(?P<fba>\d+)\s+(?P<bba>\d+)\s+(?P<uba>bytes|kB|MB|GB|TB)"
    r"\s+(?P<fab>\d+)\s+(?P<bab>\d+)\s+(?P<uab>bytes|kB|MB|GB|TB)"
    r"\s+\d+\s+\d+\s+(?:bytes|kB|MB|GB|TB)"
    r"\s+(?P<rel>[\d.]+)\s+(?P<dur>[\d.]+)$"
)


def values(field):
    return field.split(SEP) if field else []


def tsv(path, width):
    with open(path, errors="replace") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            yield cols + [""] * (width - len(cols))


def writer(path, header):
    f = open(path, "w", newline="")
    w = csv.writer(f, lineterminator="\n")
    w.writerow(header)
    return f, w


class Stream:
    """Exact frame and byte counts of one tcp.stream / udp.stream, oriented like tshark:
    A is the source of the stream's first frame."""

    def __init__(self, sport, dport, addrs, rel):
        self.a_port, self.b_port = sport, dport
        self.a_addr, self.b_addr = addrs[-1] if addrs else ("", "")
        self.start = rel
        self.frames = {"ab": 0, "ba": 0}
        self.bytes = {"ab": 0, "ba": 0}

    def direction(self, sport, dport, addrs):
        if sport != dport:
            if (sport, dport) == (self.a_port, self.b_port):
                return "ab"
            if (sport, dport) == (self.b_port, self.a_port):
                return "ba"
        # Same port at both ends: the innermost address pair that names this stream decides.
        for src, dst in reversed(addrs):
            if (src, dst) == (self.b_addr, self.a_addr):
                return "ba"
            if (src, dst) == (self.a_addr, self.b_addr):
                return "ab"
        return "ab"


def exact_streams(path):
    """(first frame epoch, {(proto, stream id): Stream})."""
    first_epoch, streams = None, {}
    for c in tsv(path, 13):
        epoch, rel, flen = c[0], c[1], c[2]
        if first_epoch is None and epoch:
            first_epoch = float(epoch)
        try:
            flen, rel = int(flen), float(rel)
        except ValueError:
            continue
        addrs = list(zip(values(c[9]), values(c[10]))) + list(zip(values(c[11]), values(c[12])))
        for proto, col in (("tcp", 3), ("udp", 6)):
            ids, sports, dports = values(c[col]), values(c[col + 1]), values(c[col + 2])
            counted = set()
            for i, sid in enumerate(ids):
                if sid in counted or i >= len(sports) or i >= len(dports):
                    continue
                counted.add(sid)
                s = streams.get((proto, sid))
                if s is None:
                    s = streams[(proto, sid)] = Stream(sports[i], dports[i], addrs, rel)
                d = s.direction(sports[i], dports[i], addrs)
                s.frames[d] += 1
                s.bytes[d] += flen
    return first_epoch, streams


def endpoint(text):
    addr, _, port = text.rpartition(":")
    return addr, port


def conv_csv(work, outbase):
    first_epoch, streams = exact_streams(f"{work}/frames.tsv")
    by_shape = {}
    for (proto, _), s in streams.items():
        key = (proto, s.a_port, s.b_port, s.frames["ab"], s.frames["ba"])
        by_shape.setdefault(key, []).append(s)
    f, w = writer(outbase + ".conv.csv", [
        "proto", "addr_a", "port_a", "addr_b", "port_b", "frames_ab", "bytes_ab",
        "frames_ba", "bytes_ba", "start_epoch", "start_rel", "duration", "bytes_exact"])
    proto = None
    with open(f"{work}/conv.txt", errors="replace") as conv:
        for line in conv:
            if line.startswith("TCP Conversations"):
                proto = "tcp"
                continue
            if line.startswith("UDP Conversations"):
                proto = "udp"
                continue
            m = CONV_ROW.match(line.replace(",", "").strip())
            if proto is None or m is None:
                continue
            (a_addr, a_port), (b_addr, b_port) = endpoint(m["a"]), endpoint(m["b"])
            fab, fba = int(m["fab"]), int(m["fba"])
            bab = int(m["bab"]) * UNITS[m["uab"]]
            bba = int(m["bba"]) * UNITS[m["uba"]]
            ab_printed_exact, ba_printed_exact = m["uab"] == "bytes", m["uba"] == "bytes"
            rel = m["rel"]
            match = None
            for s in by_shape.get((proto, a_port, b_port, fab, fba), []):
                if abs(s.start - float(rel)) >= 1e-6:
                    continue
                if ab_printed_exact and s.bytes["ab"] != bab:
                    continue
                if ba_printed_exact and s.bytes["ba"] != bba:
                    continue
                match = s
                break
            if match is not None:
                by_shape[(proto, a_port, b_port, fab, fba)].remove(match)
                bab, bba, exact = match.bytes["ab"], match.bytes["ba"], 1
            else:
                exact = 1 if ab_printed_exact and ba_printed_exact else 0
            start_epoch = "" if first_epoch is None else f"{first_epoch + float(rel):.6f}"
            w.writerow([proto, a_addr, a_port, b_addr, b_port, fab, bab, fba, bba,
                        start_epoch, rel, m["dur"], exact])
    f.close()


def sni_csv(work, outbase):
    f, w = writer(outbase + ".sni.csv",
                  ["frame_time_epoch", "src", "sport", "dst", "dport", "server_name", "transport"])
    for c in tsv(f"{work}/sni.tsv", 8):
        if c[3]:
            transport, sport, dport = "tcp", values(c[3])[-1], values(c[4])[-1]
        else:
            transport = "udp"
            sport = (values(c[5]) or [""])[-1]
            dport = (values(c[6]) or [""])[-1]
        for name in values(c[7]):
            w.writerow([c[0], c[1], sport, c[2], dport, name, transport])
    f.close()


RECORD_TYPES = {"1": "A", "28": "AAAA", "5": "CNAME"}


def dns_csv(work, outbase):
    f, w = writer(outbase + ".dns.csv",
                  ["frame_time_epoch", "query_name", "answer_name", "answer_type", "answer_value"])
    for c in tsv(f"{work}/dns.tsv", 8):
        counts = [int(x) for x in values(c[1]) if x.isdigit()]
        if not counts:
            continue
        # The first DNS message of the frame only; dns.resp.* lists answers first, then the
        # authority and additional records, and each typed value list follows that order.
        query = (values(c[2]) or [""])[0]
        names, types = values(c[3]), values(c[4])
        typed = {"A": values(c[5]), "AAAA": values(c[6]), "CNAME": values(c[7])}
        used = {"A": 0, "AAAA": 0, "CNAME": 0}
        for i in range(min(counts[0], len(types))):
            label = RECORD_TYPES.get(types[i])
            if label is None:
                continue
            vals = typed[label]
            value = vals[used[label]] if used[label] < len(vals) else ""
            used[label] += 1
            w.writerow([c[0], query, names[i] if i < len(names) else "", label, value])
    f.close()


def main():
    work, outbase = sys.argv[1], sys.argv[2]
    conv_csv(work, outbase)
    sni_csv(work, outbase)
    dns_csv(work, outbase)


if __name__ == "__main__":
    main()
