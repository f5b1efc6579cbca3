#!/usr/bin/env python3
"""Bottleneck heatmap (seed §4) from a perf profile of a node under load.

Reads `perf script` output of a `perf record -e cpu-clock --call-graph dwarf` profile (run.py
--perf-record FILE) and puts every sample in ONE area, by the first rule (in this order) that
matches any frame of its stack:
  artifact store   Service::keep_artifact (the run record written to the amnesia dir)
  serialization    result::render, serde_json::ser (the answer's JSON, allocations list)
  signing          SigningKeys::sign, ed25519/curve25519, ml_dsa (per-answer signatures)
  hashing          blake3 under Run::compute (Merkle leaves + root, manifest digest), or
                   blake3 with no caller (its assembly has no unwind tables)
  calc             Run::compute otherwise (calculus: scores, sort, allocation, invariants)
  request parse    compute::parse_request, serde_json::de (the small request body)
  transport        the rest of the node's own code path: gate, tiny_http, dispatcher, wire,
                   queues, std::io, libc and the kernel (loopback TCP, syscalls)
  other            anything else
Prints a table (share of the node's samples per area) and, with --json, one JSON line.

Usage: perf script -i FILE | heatmap.py [--json]
"""

import collections
import json
import re
import sys

RULES = [
    ("artifact store", [r"keep_artifact"]),
    ("serialization", [r"rewarder_core::result::render", r"serde_json::ser", r"format_escaped_str"]),
    ("signing", [r"SigningKeys.*::sign", r"ed25519", r"curve25519", r"ml_dsa"]),
    ("hashing", None),  # special: blake3 under Run::compute
    ("calc", [r"rewarder_core::run::Run::compute", r"rewarder_core::calculus", r"invariants::check"]),
    ("request parse", [r"compute::parse_request", r"serde_json::de"]),
    ("transport", [r"\[kernel", r"tiny_http", r"rewarder_micronode::", r"rewarder_macronode::", r"std::io", r"libc",
                   r"__libc_", r"std::net", r"std::sys"]),
]
COMPILED = [(name, [re.compile(p) for p in pats] if pats else None) for name, pats in RULES]


def classify(frames):
    text = "\n".join(frames)
    for name, pats in COMPILED:
        if pats is None:
            # BLAKE3's compression functions are hand-written assembly without unwind tables:
            # their samples often stop at that frame. Per request, BLAKE3 runs only in the
            # compute (Merkle leaves + root, manifest digest, run id), so an orphan BLAKE3
            # sample is counted here too.
            if "blake3" in text and ("Run::compute" in text or len(frames) <= 2):
                return name
            continue
        if any(p.search(text) for p in pats):
            return name
    return "other"


def samples(stream):
    frames, header = [], None
    for line in stream:
        line = line.rstrip("\n")
        if not line.strip():
            if header is not None:
                yield header, frames
            frames, header = [], None
        elif not line.startswith((" ", "\t")):
            header = line
        else:
            frames.append(line.strip())
    if header is not None:
        yield header, frames


def main():
    counts = collections.Counter()
    threads = collections.Counter()
    kernel = collections.Counter()
    for header, frames in samples(sys.stdin):
        area = classify(frames)
        counts[area] += 1
        threads[header.split()[0]] += 1
        if frames and "[kernel" in frames[0]:
            kernel[area] += 1
    total = sum(counts.values()) or 1
    order = [name for name, _ in RULES] + ["other"]
    if "--json" in sys.argv:
        print(json.dumps({"samples": total, "share_pct": {k: round(100 * counts[k] / total, 1) for k in order},
                          "in_kernel_pct": {k: round(100 * kernel[k] / total, 1) for k in order},
                          "threads": dict(threads)}))
        return
    print(f"{'area':<16} {'samples':>8} {'share':>7} {'of which in kernel':>19}")
    for k in order:
        print(f"{k:<16} {counts[k]:>8} {100 * counts[k] / total:>6.1f}% {100 * kernel[k] / total:>18.1f}%")
    print(f"{'total':<16} {total:>8}")
    print("by thread: " + ", ".join(f"{t} {100 * n / total:.1f}%" for t, n in threads.most_common()))


if __name__ == "__main__":
    main()
