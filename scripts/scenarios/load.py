#!/usr/bin/env python3
"""Steady, bounded HTTP load that remembers every request: the measuring half of
the remedied scenarios (scripts/scenarios/*-remedied.sh).

wrk and h2load say how many requests failed, not *when*. To say "every failed
request fell within a second of the kill" we need each request's outcome and
time, so this client writes one line per request to a log:

    START_EPOCH_S  LATENCY_MS  OUTCOME  NODE  EXTRA

OUTCOME is the HTTP status (200, 201, 503...) or an error word (refused, reset,
timeout); NODE is the Onebox-Node header (which web node answered, "-" when
none); EXTRA is the post id of a 201, or Retry-After of a 503, else "-".

    load.py run --addr 127.0.0.1:8080 --seconds 10 --rate 100 --log FILE [--post TOKEN]
    load.py report --log FILE [--mark EPOCH_S]... [--window S]

`run` keeps --connections keep-alive HTTP/1.1 connections open (reconnecting
after a failure, as a browser would), paces them to --rate requests/s in total
(a steady load, not a flood: the question is what a visitor sees, not how much
the machine takes), gives every request at most --timeout seconds (a hang counts
as a failure, never blocks the run), and prints a summary JSON line. `report`
prints the same summary for a log, plus, for each --mark (the moment a
scenario killed something), how many failures fell within --window seconds of
it and how long throughput took to come back.

Standard library only, so it runs on a bare Debian python3.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter

# A request "succeeded" when it got one of these: the site's pages and the API's
# reads answer 200, a post 201. Anything else a visitor would call a failure.
SUCCESS = {"200", "201", "204", "304"}


class Conn:
    """One keep-alive HTTP/1.1 connection, reopened lazily after any failure."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[str, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split(" ")[1]
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        else:
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def build_request(args: argparse.Namespace, n: int) -> bytes:
    host = args.host.encode()
    if args.post is None:
        return b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (args.path.encode(), host)
    # Each body is unique, so a scenario can match acknowledged posts to the
    # listing afterwards by id (the 201's body) and by text.
    body = json.dumps({"body": f"{args.tag} {n}"}).encode()
    return (
        b"POST /api/v1/posts HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (host, args.post.encode(), len(body), body)
    )


def error_word(error: BaseException) -> str:
    if isinstance(error, asyncio.TimeoutError):
        return "timeout"
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    if isinstance(error, (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError)):
        return "reset"
    return "error"


async def worker(args, host, port, first, step, deadline, out, counter):
    conn = Conn(host, port)
    due = first
    while True:
        now = time.time()
        if now >= deadline or (args.stop_file and os.path.exists(args.stop_file)):
            break
        if due > now:
            await asyncio.sleep(due - now)
        due += step
        counter[0] += 1
        raw = build_request(args, counter[0])
        start = time.time()
        node, extra = "-", "-"
        try:
            status, headers, body = await asyncio.wait_for(conn.request(raw), args.timeout)
            node = headers.get("onebox-node", "-")
            if status == "201":
                extra = str(json.loads(body).get("id", "-"))
            elif status == "503":
                extra = headers.get("retry-after", "-")
            outcome = status
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
            outcome = error_word(e)
            conn.close()
        if outcome not in SUCCESS:
            conn.close()  # a fresh connection, as a browser retrying would open
        latency = (time.time() - start) * 1000
        out.write(f"{start:.4f} {latency:.2f} {outcome} {node} {extra}\n")
    conn.close()


async def run(args: argparse.Namespace) -> None:
    host, port = args.addr.rsplit(":", 1)
    start = time.time()
    deadline = start + args.seconds
    step = args.connections / args.rate  # each connection's share of the pace
    counter = [0]
    with open(args.log, "w", buffering=1) as out:
        await asyncio.gather(
            *(
                worker(args, host, int(port), start + i * step / args.connections, step, deadline, out, counter)
                for i in range(args.connections)
            )
        )
    print(json.dumps(summary(read_log(args.log), [], args.window)))


def read_log(path: str) -> list[tuple[float, float, str, str, str]]:
    rows = []
    with open(path) as f:
        for line in f:
            t, ms, outcome, node, extra = line.split()
            rows.append((float(t), float(ms), outcome, node, extra))
    rows.sort()
    return rows


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return round(values[min(len(values) - 1, int(p / 100 * len(values)))], 2)


def summary(rows, marks: list[float], window: float) -> dict:
    if not rows:
        return {"requests": 0}
    first, last = rows[0][0], rows[-1][0]
    ok = [r for r in rows if r[2] in SUCCESS]
    failed = [r for r in rows if r[2] not in SUCCESS]
    per_second = Counter(int(r[0] - first) for r in ok)
    seconds = int(last - first) + 1
    result = {
        "requests": len(rows),
        "ok": len(ok),
        "failed": len(failed),
        "failed_pct": round(100 * len(failed) / len(rows), 3),
        "outcomes": dict(Counter(r[2] for r in rows)),
        "nodes": dict(Counter(r[3] for r in ok)),
        "seconds": round(last - first, 2),
        "rps": round(len(ok) / max(last - first, 1e-9), 1),
        "p50_ms": percentile([r[1] for r in ok], 50),
        "p99_ms": percentile([r[1] for r in ok], 99),
        "max_ms": percentile([r[1] for r in rows], 100),
        "ok_per_second": [per_second.get(s, 0) for s in range(seconds)],
        "acked_ids": [int(r[4]) for r in rows if r[2] == "201"],
        "retry_after_503": sum(1 for r in rows if r[2] == "503" and r[4] != "-"),
    }
    result["marks"] = [mark_report(rows, failed, first, mark, window, per_second) for mark in marks]
    return result


def mark_report(rows, failed, first, mark, window, per_second) -> dict:
    """What a kill at `mark` cost: failures near it, failures elsewhere, and the
    first whole second after it whose successes were back to the median second
    before it (recovery, with no one touching anything)."""
    near = [r for r in failed if abs(r[0] - mark) <= window]
    before = sorted(per_second.get(s, 0) for s in range(int(mark - first)))
    baseline = before[len(before) // 2] if before else 0
    recovered = None
    # Only whole seconds count (the last one is cut short by the end of the run),
    # and a run with no good second before the mark has nothing to recover to.
    for s in range(int(mark - first) + 1, int(rows[-1][0] - first)):
        if baseline > 0 and per_second.get(s, 0) >= 0.8 * baseline:
            recovered = round(s - (mark - first), 2)
            break
    return {
        "at": round(mark - first, 2),
        "failed_within_window": len(near),
        "failed_elsewhere": len(failed) - len(near),
        "failures_span_s": round(max(r[0] for r in near) - min(r[0] for r in near), 3) if near else 0,
        "baseline_ok_per_s": baseline,
        "recovered_after_s": recovered,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="drive steady load and log every request")
    r.add_argument("--addr", required=True, help="HOST:PORT to connect to (the balancer)")
    r.add_argument("--host", default="foobar.com", help="the Host header")
    r.add_argument("--path", default="/")
    r.add_argument("--post", metavar="TOKEN", help="POST /api/v1/posts with this bearer token instead of GET")
    r.add_argument("--tag", default="load", help="the posts' text before their number")
    r.add_argument("--seconds", type=float, default=10)
    r.add_argument("--rate", type=float, default=100, help="requests per second, all connections together")
    r.add_argument("--connections", type=int, default=4)
    r.add_argument("--timeout", type=float, default=3, help="seconds one request may take")
    r.add_argument("--stop-file", help="stop early once this file exists (the scenario's step is over)")
    r.add_argument("--log", required=True)
    r.add_argument("--window", type=float, default=1.0)
    p = sub.add_parser("report", help="summarize a log, optionally around marks")
    p.add_argument("--log", required=True)
    p.add_argument("--mark", type=float, action="append", default=[], help="an epoch time (a kill)")
    p.add_argument("--window", type=float, default=1.0, help="seconds either side of a mark")
    args = parser.parse_args()
    if args.command == "run":
        if args.rate <= 0 or args.connections <= 0 or args.seconds <= 0:
            sys.exit("load.py: --rate, --connections and --seconds must be positive")
        asyncio.run(run(args))
    else:
        print(json.dumps(summary(read_log(args.log), args.mark, args.window)))


if __name__ == "__main__":
    main()
