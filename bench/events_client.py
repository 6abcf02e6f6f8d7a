"""Subscriber side of bench/events.py: a child process without Django, driven over stdin/stdout.

    python bench/events_client.py sse --port P --path /api/canvas/D/events --token T --subscribers N --out F
    python bench/events_client.py xread --redis-url URL --key K --out F

`sse` opens N SSE streams as raw asyncio protocols (uvloop when installed) on one event loop: no
HTTP library sits between the socket and the parser, so the client costs as little CPU as possible
on a machine it shares with the server. `xread` is the baseline: one redis-py XREAD BLOCK loop.

Both record, for every delivery of a bench event, its sequence number and its latency (receive
wall-clock time minus the publish time carried in the payload, both time.time_ns() on the same
host). Protocol with the parent, one JSON object per line on stdout:
  -> {"event": "opened", ...}       every subscriber tried (status 200 and the `retry:` line read)
  -> {"event": "warm", ...}         every open subscriber got the warm-up event (seq -1)
  <- "expect <n>"                   the parent published seq 0..n-1; wait for them (or --drain s)
  -> {"event": "done", ...}         counts; latencies (int64 ns, native order) written to --out
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import threading
import time
from array import array

SEQ_MARK = b'"seq": '
PUB_MARK = b'"pub_ns": '
WARM_SEQ = -1


def parse_payload(data: bytes) -> tuple[int, int] | None:
    """(seq, pub_ns) from the JSON that canvas_project.events.emit wrote; None for foreign events."""
    i = data.rfind(SEQ_MARK)
    k = data.rfind(PUB_MARK)
    if i < 0 or k < 0:
        return None
    try:
        j = data.index(b",", i)
        e = data.index(b"}", k)
        return int(data[i + 7 : j]), int(data[k + 10 : e])
    except ValueError:
        body = json.loads(data)
        return int(body["seq"]), int(body["pub_ns"])


def emit_line(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Tally:
    """Deliveries of one subscriber."""

    __slots__ = ("seen", "received", "duplicates", "out_of_order", "resets", "last_seq", "warm", "foreign")

    def __init__(self, capacity: int) -> None:
        self.seen = bytearray(capacity)
        self.received = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.resets = 0
        self.last_seq = -1
        self.warm = False
        self.foreign = 0

    def record(self, seq: int, pub_ns: int, now_ns: int, latencies: array) -> None:
        if seq == WARM_SEQ:
            self.warm = True
            return
        if seq >= len(self.seen):
            self.seen.extend(bytes(seq + 1 - len(self.seen) + 1024))
        if self.seen[seq]:
            self.duplicates += 1
            return
        self.seen[seq] = 1
        self.received += 1
        if seq < self.last_seq:
            self.out_of_order += 1
        self.last_seq = seq
        latencies.append(now_ns - pub_ns)

    def summary(self, expected: int) -> dict:
        return {
            "received": self.received,
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "resets": self.resets,
            "missing": expected - sum(self.seen[:expected]),
            "foreign": self.foreign,
        }


class Shared:
    def __init__(self, capacity: int) -> None:
        self.latencies = array("q")
        self.capacity = capacity
        self.first_recv_ns = 0
        self.last_recv_ns = 0
        self.changed: asyncio.Event | None = None


# --- SSE over raw asyncio streams ---------------------------------------------------------------------
class SseProtocol(asyncio.Protocol):
    HEAD, BODY, CLOSED = 0, 1, 2

    def __init__(self, request: bytes, shared: Shared, opened: asyncio.Future) -> None:
        self.request = request
        self.shared = shared
        self.opened = opened
        self.tally = Tally(shared.capacity)
        self.state = self.HEAD
        self.raw = b""
        self.sse = b""
        self.status = 0
        self.chunked = False
        self.error_body = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc) -> None:
        self.state = self.CLOSED
        if not self.opened.done():
            self.opened.set_result(("closed", self.status, self.error_body[:300].decode("utf-8", "replace")))

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        raw = self.raw + data if self.raw else data
        if self.state == self.HEAD:
            end = raw.find(b"\r\n\r\n")
            if end < 0:
                self.raw = raw
                return
            head = raw[:end].split(b"\r\n")
            self.status = int(head[0].split()[1])
            headers = {line.split(b":", 1)[0].strip().lower(): line.split(b":", 1)[1].strip() for line in head[1:]}
            self.chunked = headers.get(b"transfer-encoding", b"").lower() == b"chunked"
            raw = raw[end + 4 :]
            self.state = self.BODY
            if self.status != 200:
                self.error_body = raw
                if not self.opened.done():
                    self.opened.set_result(("status", self.status, raw[:300].decode("utf-8", "replace")))
                self.transport.close()
                return
        if self.chunked:
            pos, parts = 0, []
            while True:
                nl = raw.find(b"\r\n", pos)
                if nl < 0:
                    break
                size = int(raw[pos:nl].split(b";", 1)[0], 16)
                end = nl + 2 + size
                if size == 0:
                    self.transport.close()
                    pos = len(raw)
                    break
                if len(raw) < end + 2:
                    break
                parts.append(raw[nl + 2 : end])
                pos = end + 2
            self.raw = raw[pos:]
            if not parts:
                return
            sse = self.sse + b"".join(parts)
        else:
            self.raw = b""
            sse = self.sse + raw
        start = 0
        while True:
            k = sse.find(b"\n\n", start)
            if k < 0:
                break
            self.handle_event(sse[start:k], now)
            start = k + 2
        self.sse = sse[start:]

    def handle_event(self, block: bytes, now: int) -> None:
        d = block.find(b"data: ")
        if d < 0:
            if block.startswith(b"retry:") and not self.opened.done():
                self.opened.set_result(("ok", self.status, ""))
            return  # `: ping` heartbeat
        if b"event: reset" in block:
            self.tally.resets += 1
            return
        nl = block.find(b"\n", d)
        parsed = parse_payload(block[d + 6 :] if nl < 0 else block[d + 6 : nl])
        if parsed is None:
            self.tally.foreign += 1
            return
        shared = self.shared
        self.tally.record(parsed[0], parsed[1], now, shared.latencies)
        if not shared.first_recv_ns:
            shared.first_recv_ns = now
        shared.last_recv_ns = now


def stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue:
    """Lines of stdin through a thread (portable; the parent writes one line per command)."""
    queue: asyncio.Queue = asyncio.Queue()

    def pump() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line.strip())
        loop.call_soon_threadsafe(queue.put_nowait, "eof")

    threading.Thread(target=pump, daemon=True).start()
    return queue


async def wait_for_expectation(commands: asyncio.Queue) -> int:
    while True:
        line = await commands.get()
        if line.startswith("expect "):
            return int(line.split()[1])
        if line == "eof":
            raise SystemExit(0)


async def run_sse(args) -> None:
    loop = asyncio.get_running_loop()
    commands = stdin_lines(loop)
    shared = Shared(args.capacity)
    request = (
        f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\nAccept: text/event-stream\r\n"
        f"Authorization: Bearer {args.token}\r\nCache-Control: no-cache\r\n\r\n"
    ).encode()
    gate = asyncio.Semaphore(args.open_concurrency)
    protocols: list[SseProtocol] = []
    outcomes: dict[str, int] = {}
    errors: list[str] = []
    open_times: list[float] = []

    async def open_one() -> None:
        async with gate:
            started = time.perf_counter()
            opened = loop.create_future()
            try:
                _transport, protocol = await loop.create_connection(
                    lambda: SseProtocol(request, shared, opened), "127.0.0.1", args.port
                )
                kind, status, detail = await asyncio.wait_for(opened, args.open_timeout)
            except (OSError, TimeoutError) as exc:
                kind, status, detail = "error", 0, f"{type(exc).__name__}: {exc}"
                protocol = None
            label = "200" if kind == "ok" else f"{kind}:{status}"
            outcomes[label] = outcomes.get(label, 0) + 1
            if kind == "ok":
                protocols.append(protocol)
                open_times.append(time.perf_counter() - started)
            else:
                if len(errors) < 5:
                    errors.append(f"{label} {detail}")
                if protocol is not None and protocol.transport is not None:
                    protocol.transport.close()

    started = time.perf_counter()
    await asyncio.gather(*(open_one() for _ in range(args.subscribers)))
    open_times.sort()
    emit_line(
        {
            "event": "opened",
            "ok": len(protocols),
            "outcomes": outcomes,
            "errors": errors,
            "seconds": round(time.perf_counter() - started, 3),
            "open_p50_ms": round(open_times[len(open_times) // 2] * 1000, 1) if open_times else None,
            "open_max_ms": round(open_times[-1] * 1000, 1) if open_times else None,
        }
    )

    deadline = time.monotonic() + args.open_timeout
    while time.monotonic() < deadline and not all(p.tally.warm or p.state == p.CLOSED for p in protocols):
        await asyncio.sleep(0.05)
    emit_line({"event": "warm", "count": sum(p.tally.warm for p in protocols)})

    expected = await wait_for_expectation(commands)
    deadline = time.monotonic() + args.drain
    while time.monotonic() < deadline:
        if all(p.tally.received >= expected or p.state == p.CLOSED for p in protocols):
            break
        await asyncio.sleep(0.05)
    closed_early = sum(p.state == p.CLOSED for p in protocols)
    for p in protocols:
        if p.transport is not None:
            p.transport.close()
    finish(args, shared, [p.tally for p in protocols], expected, {"closed_by_server": closed_early})


# --- baseline: one direct XREAD BLOCK reader ----------------------------------------------------------
def run_xread(args) -> None:
    import redis

    client = redis.Redis.from_url(args.redis_url)
    shared = Shared(args.capacity)
    tally = Tally(args.capacity)
    last = client.xrevrange(args.key, count=1)
    tail = last[0][0] if last else b"0-0"
    emit_line({"event": "opened", "ok": 1, "outcomes": {"xread": 1}, "errors": []})
    expected: list[int] = []

    def commands() -> None:
        for line in sys.stdin:
            if line.startswith("expect "):
                expected.append(int(line.split()[1]))
                return
        expected.append(-1)

    threading.Thread(target=commands, daemon=True).start()
    warm_sent = False
    deadline = None
    while True:
        response = client.xread({args.key: tail}, block=200, count=500)
        now = time.time_ns()
        for _key, entries in response or []:
            for entry_id, fields in entries:
                tail = entry_id
                parsed = parse_payload(fields.get(b"data", b""))
                if parsed is None:
                    tally.foreign += 1
                    continue
                tally.record(parsed[0], parsed[1], now, shared.latencies)
                if not shared.first_recv_ns:
                    shared.first_recv_ns = now
                shared.last_recv_ns = now
        if tally.warm and not warm_sent:
            emit_line({"event": "warm", "count": 1})
            warm_sent = True
        if expected:
            if expected[0] < 0:
                return
            deadline = deadline or time.monotonic() + args.drain
            if tally.received >= expected[0] or time.monotonic() > deadline:
                break
    client.close()
    finish(args, shared, [tally], expected[0], {})


def finish(args, shared: Shared, tallies: list[Tally], expected: int, extra: dict) -> None:
    with open(args.out, "wb") as fh:
        shared.latencies.tofile(fh)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    per = [t.summary(expected) for t in tallies]
    emit_line(
        {
            "event": "done",
            "expected_per_subscriber": expected,
            "subscribers": len(tallies),
            "received": sum(p["received"] for p in per),
            "duplicates": sum(p["duplicates"] for p in per),
            "out_of_order": sum(p["out_of_order"] for p in per),
            "resets": sum(p["resets"] for p in per),
            "missing": sum(p["missing"] for p in per),
            "foreign": sum(p["foreign"] for p in per),
            "subscribers_missing_any": sum(1 for p in per if p["missing"]),
            "first_recv_ns": shared.first_recv_ns,
            "last_recv_ns": shared.last_recv_ns,
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "max_rss_kb": usage.ru_maxrss,
            **extra,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("sse", "xread"))
    parser.add_argument("--port", type=int)
    parser.add_argument("--path")
    parser.add_argument("--token")
    parser.add_argument("--subscribers", type=int, default=1)
    parser.add_argument("--redis-url")
    parser.add_argument("--key")
    parser.add_argument("--out", required=True)
    parser.add_argument("--capacity", type=int, default=4096, help="expected events (grows when exceeded)")
    parser.add_argument("--open-concurrency", type=int, default=50)
    parser.add_argument("--open-timeout", type=float, default=60.0)
    parser.add_argument("--drain", type=float, default=10.0)
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(65536, resource.getrlimit(resource.RLIMIT_NOFILE)[1]),) * 2)
    if args.mode == "xread":
        run_xread(args)
        return
    try:
        import uvloop
    except ImportError:
        asyncio.run(run_sse(args))
    else:
        uvloop.run(run_sse(args))


if __name__ == "__main__":
    main()
