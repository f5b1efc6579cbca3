#!/usr/bin/env python3
"""Open-loop load: POSTs compute bodies at a fixed offered rate, whatever the answers.

Closed-loop tools (wrk, hey) send the next request when the last answer arrives, so a node
that refuses fast is flooded with retries and one that slows down is sent less: neither shows
what a fleet's clients see at twice the load a node can serve. Here request i is due at
t0 + i/rate and its latency is counted from that due time (no coordinated omission), on a
pool of kept-alive connections (a new one when all are busy, up to --connections).

Prints one JSON line: offered and answered rates, statuses, latency percentiles of the 2xx
answers and of the 503 answers.

Usage: paced.py --port P --rate R --seconds S --bodies FILE [--path PATH] [--connections N]
"""

import argparse
import asyncio
import json
import time

import common


async def exchange(pool, host, port, request_bytes):
    conn = pool.pop() if pool else None
    if conn is None:
        conn = await asyncio.open_connection(host, port)
    reader, writer = conn
    writer.write(request_bytes)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    close = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    if length:
        await reader.readexactly(length)
    if close:
        writer.close()
    else:
        pool.append(conn)
    return status


async def run(a):
    with open(a.bodies) as f:
        bodies = [l.strip() for l in f if l.strip()]
    requests = []
    for b in bodies:
        body = b.encode()
        requests.append(
            f"POST {a.path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
    pool = []
    slots = asyncio.Semaphore(a.connections)
    results = []  # (status, latency_ms)
    errors = 0
    total = int(a.rate * a.seconds)
    t0 = time.perf_counter() + 0.05

    async def one(i):
        nonlocal errors
        due = t0 + i / a.rate
        async with slots:
            try:
                status = await exchange(pool, "127.0.0.1", a.port, requests[i % len(requests)])
                results.append((status, (time.perf_counter() - due) * 1e3))
            except (OSError, asyncio.IncompleteReadError):
                errors += 1

    tasks = []
    for i in range(total):
        delay = t0 + i / a.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    out = {"offered_rps": a.rate, "seconds": round(elapsed, 2), "requests": total, "errors": errors}
    statuses = {}
    for s, _ in results:
        statuses[str(s)] = statuses.get(str(s), 0) + 1
    out["statuses"] = statuses
    ok = [ms for s, ms in results if 200 <= s < 300]
    shed = [ms for s, ms in results if s == 503]
    out["ok_rps"] = round(len(ok) / a.seconds, 1)
    for name, values in (("ok", ok), ("shed", shed)):
        if values:
            s = common.summary(values)
            out.update({f"{name}_p50_ms": s["median_ms"], f"{name}_p95_ms": s["p95_ms"], f"{name}_p99_ms": s["p99_ms"]})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--bodies", required=True)
    ap.add_argument("--path", default="/rewarder/epochs/perf/compute?allocations=false")
    ap.add_argument("--connections", type=int, default=512)
    print(json.dumps(asyncio.run(run(ap.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
