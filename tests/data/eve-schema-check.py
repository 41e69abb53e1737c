#!/usr/bin/env python3
"""Validate crossline's flow, alert and stats events against Suricata's EVE schema.

Usage: eve-schema-check.py SCHEMA.json EVENTS.jsonl...

The schema is made strict first: every object schema with `properties` that does not say
otherwise gets `additionalProperties: false` (most of Suricata's already do), and the only
extension allowed is a top-level `crossline` object. Each flow, alert and stats event is
validated; the figures go to stdout as one JSON object:

  events   {"flow": N, "alert": N, "stats": N}   events checked
  valid    {"flow": N, "alert": N, "stats": N}   of which valid
  failing  {"PATH: WHAT": {"flow": N, ...}}      events failing there (at most once per event)
  example  {"PATH: WHAT": "file:line"}           the first event failing there
  present  {"PATH": N}                           events carrying each field (leaf or object)

PATH is the field's dotted path with array indices written `[]`; WHAT is the schema keyword
that failed (`type integer`, `pattern`, `extra key`, ...). Lines that are not JSON objects are
errors naming the file and line (exit status 2).
"""
import json
import re
import sys

try:
    import jsonschema
except ImportError:
    sys.exit("python3 module jsonschema missing: scripts/ensure-deps.sh test installs python3-jsonschema")

KINDS = ("flow", "alert", "stats")


def strict(node):
    """Close every object schema with properties that leaves additionalProperties open."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for v in node.values():
            strict(v)
    elif isinstance(node, list):
        for v in node:
            strict(v)


def dotted(path):
    out = ""
    for p in path:
        if isinstance(p, int):
            out += "[]"
        else:
            out += ("." if out else "") + str(p)
    return out


def join(base, key):
    return f"{base}.{key}" if base else key


def fields(value, base, out):
    """Every field path in an event (objects and leaves)."""
    if isinstance(value, dict):
        for k, v in value.items():
            p = join(base, k)
            out.add(p)
            fields(v, p, out)
    elif isinstance(value, list):
        for v in value:
            fields(v, base + "[]", out)


def describe(err):
    """Failure keys of one validation error (one per extra key)."""
    where = dotted(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = set(err.schema.get("properties", {}))
        patterns = err.schema.get("patternProperties", {})
        extra = [k for k in err.instance if k not in known
                 and not any(re.search(p, k) for p in patterns)]
        return [f"{join(where, k)}: extra key" for k in extra]
    if err.validator == "type":
        want = err.validator_value
        want = "|".join(want) if isinstance(want, list) else want
        return [f"{where or '(event)'}: type {want}"]
    return [f"{where or '(event)'}: {err.validator}"]


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    with open(argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    strict(schema)
    schema["properties"]["crossline"] = {"type": "object"}
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    validator = cls(schema)
    events = {k: 0 for k in KINDS}
    valid = {k: 0 for k in KINDS}
    failing = {}
    example = {}
    present = {}
    for name in argv[2:]:
        with open(name, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    ev = json.loads(line)
                except ValueError as e:
                    print(f"{name}:{lineno}: not JSON ({e}): {line[:120]!r}", file=sys.stderr)
                    return 2
                if not isinstance(ev, dict):
                    print(f"{name}:{lineno}: expected a JSON object, got {line[:120]!r}", file=sys.stderr)
                    return 2
                kind = ev.get("event_type")
                if kind not in KINDS:
                    continue
                events[kind] += 1
                seen = set()
                fields(ev, "", seen)
                for p in seen:
                    present[p] = present.get(p, 0) + 1
                keys = set()
                for err in validator.iter_errors(ev):
                    keys.update(describe(err))
                if not keys:
                    valid[kind] += 1
                for k in keys:
                    counts = failing.setdefault(k, {x: 0 for x in KINDS})
                    counts[kind] += 1
                    example.setdefault(k, f"{name}:{lineno}")
    json.dump({"events": events, "valid": valid, "failing": failing, "example": example,
               "present": present},
              sys.stdout, sort_keys=True, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
