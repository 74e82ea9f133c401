#!/usr/bin/env python3
"""Top functions of a Go CPU profile (pprof protobuf), without a Go toolchain.

Used to see where OpenBao spends a scenario's CPU. With bao under load:

    curl -s -H "X-Vault-Token: root" "$BAO/v1/sys/pprof/profile?seconds=10" -o bao.pprof
    bench/pprof_top.py bao.pprof                    # flat and cumulative top lists
    bench/pprof_top.py bao.pprof go-metrics,quotas  # cumulative share of matching functions

Shares are of the profile's total CPU time (the last sample value, nanoseconds).
"""

import collections
import gzip
import sys


def varint(b, i):
    r = s = 0
    while True:
        x = b[i]
        i += 1
        r |= (x & 0x7F) << s
        s += 7
        if x < 0x80:
            return r, i


def fields(b):
    """(field number, wire type, value) of one protobuf message."""
    i = 0
    while i < len(b):
        k, i = varint(b, i)
        f, t = k >> 3, k & 7
        if t == 0:
            v, i = varint(b, i)
        elif t == 2:
            n, i = varint(b, i)
            v = b[i : i + n]
            i += n
        elif t == 1:
            v = b[i : i + 8]
            i += 8
        elif t == 5:
            v = b[i : i + 4]
            i += 4
        else:
            raise ValueError(f"unsupported wire type {t}")
        yield f, t, v


def ints(t, v):
    """A repeated integer field, packed or not."""
    if t == 0:
        return [v]
    out, i = [], 0
    while i < len(v):
        x, i = varint(v, i)
        out.append(x)
    return out


def load(path):
    raw = open(path, "rb").read()
    data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    strings, samples, locations, functions = [], [], {}, {}
    for f, t, v in fields(data):
        if f == 2:  # Sample: location_id (leaf first), value
            ids, vals = [], []
            for g, tt, w in fields(v):
                if g == 1:
                    ids += ints(tt, w)
                elif g == 2:
                    vals += ints(tt, w)
            samples.append((ids, vals))
        elif f == 4:  # Location: id, line[] (inlined leaf first)
            lid, lines = 0, []
            for g, _, w in fields(v):
                if g == 1:
                    lid = w
                elif g == 4:
                    lines += [x for h, _, x in fields(w) if h == 1]
            locations[lid] = lines
        elif f == 5:  # Function: id, name (string table index)
            fid = name = 0
            for g, _, w in fields(v):
                if g == 1:
                    fid = w
                elif g == 2:
                    name = w
            functions[fid] = name
        elif f == 6:
            strings.append(v.decode())
    return strings, samples, locations, functions


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    strings, samples, locations, functions = load(sys.argv[1])
    flat, cum, total = collections.Counter(), collections.Counter(), 0
    for ids, vals in samples:
        v = vals[-1]
        total += v
        stack = [strings[functions[fid]] for loc in ids for fid in locations.get(loc, [])]
        if stack:
            flat[stack[0]] += v
        for name in set(stack):
            cum[name] += v
    print(f"total {total / 1e9:.2f} s")
    if len(sys.argv) > 2:
        pats = sys.argv[2].split(",")
        for name, v in cum.most_common():
            if any(p in name for p in pats):
                print(f"cum {100 * v / total:5.1f}%  {name}")
        return
    print("-- flat")
    for name, v in flat.most_common(25):
        print(f"{100 * v / total:5.1f}%  {name}")
    print("-- cumulative")
    for name, v in cum.most_common(60):
        print(f"{100 * v / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
