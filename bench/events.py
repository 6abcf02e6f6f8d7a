#!/usr/bin/env python3
"""Benchmark of GET /api/canvas/{deal_id}/events: SSE fan-out of canvas events on ONE worker.

    .venv/bin/python bench/events.py                                   # 500 subscribers, 100 events/s, 20 s
    .venv/bin/python bench/events.py --subscribers 100 --duration 5    # a quicker, noisier run
    .venv/bin/python bench/events.py --subscribers 1000 --client-procs 2 # 1,000 subscribers
    .venv/bin/python bench/events.py --idle 5000 --client-procs 2      # 5,000 idle subscribers: memory, threads
    .venv/bin/python bench/events.py --subscribers 1000 --client-procs 2 --pin  # worker on its own core

In one run, against a dedicated PostgreSQL database (deal_canvas_bench_events) and Redis database
number (13), never the shared ones' data:

1. migrates the bench database and creates (once; reused afterwards) an org, its owner, a viewer
   and a deal the viewer is granted on, and mints the viewer's JWT;
2. starts ONE uvicorn worker (its own process group) serving canvas_project.asgi;
3. baseline: publishes `--rate` events/s through canvas_project.events.emit for `--baseline-duration` s,
   read by one direct redis-py XREAD BLOCK client (no HTTP): delivery latency p50/p95/p99;
4. opens `--subscribers` SSE streams (raw asyncio protocols in `--client-procs` child processes,
   bench/events_client.py), waits until all are open (200 and the `retry:` line) and subscribed (a
   warm-up event reached each), reads the worker's RSS before and after -> memory per subscriber;
   then publishes `--rate` events/s for `--duration` s (payload: sequence number and publish time in
   ns); every subscriber records each delivery: latency p50/p95/p99/max over all deliveries, lost
   events (expected subscribers x events minus unique deliveries), duplicates, events/s delivered;
5. samples, mid-run, the worker's Redis connections (CLIENT LIST matched against the worker's sockets):
   one XREAD connection for one deal, whatever the number of subscribers, proves the fan-out;
6. prints the figures, the ratios to the baseline and the goals (p99 <= 100 ms, 0 lost) as PASS/FAIL;
   stops every process it started and deletes its Redis keys (canvas_project.keys builders), also on Ctrl-C
   or an error.

With --pin the worker runs on its own CPU(s) and the subscriber clients and the publisher on the last one
(Redis and PostgreSQL float): in production the subscribers are browsers on other machines, and on a 2-core
machine 1,000 subscribers' parsing otherwise competes with the worker for its core. Without --pin, client,
server and Redis share the machine's cores (and other people's work): absolute figures are noisy; compare
the ratios, which come from the same run. See docs/performance.md, "Events fan-out".
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402 - after the path setup
    JsonLinesChild,
    free_port,
    log_tail,
    machine_note,
    migrate_and_setup_django,
    stop_process_group,
)

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/deal_canvas_bench_events"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
CLIENT = Path(__file__).resolve().parent / "events_client.py"
ORG_NAME = "Deal Canvas bench: events"
DEAL_NAME = "Bench: events fan-out"
OWNER, VIEWER = "bench-events-owner", "bench-events-viewer"
EVENT_TYPE = "bench_tick"
WARM_SEQ = -1
GOAL_P99_MS = 100.0


# --- environment ------------------------------------------------------------------------------------
def child_env(database_url: str, redis_url: str) -> dict[str, str]:
    env = {**os.environ}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": redis_url,
            "LANGGRAPH_DATABASE_URL": "",
            # Production serves with DEBUG off; DJANGO_ENV=production would also force an HTTPS redirect.
            "DJANGO_ENV": "development",
            "DJANGO_DEBUG": "false",
            "LOG_LEVEL": "WARNING",
            # the subscribers share a few users' tokens and one deal: the stream limits are not what is measured
            "SSE_MAX_STREAMS_PER_USER": "0",
            "SSE_MAX_STREAMS_PER_DEAL": "0",
            "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        }
    )
    return env


# --- the fixture ------------------------------------------------------------------------------------
@dataclass
class Fixture:
    deal_id: str
    token: str
    events_key: str


def prepare(database_url: str, redis_url: str) -> Fixture:
    """Migrate the bench database; org, owner, viewer with a grant on the deal; the viewer's JWT."""
    migrate_and_setup_django(child_env(database_url, redis_url))
    from canvas_project import keys
    from deals import services as deal_services
    from deals.models import Deal, DealAccess, DealRole, Org, OrgMembership, OrgRole, User
    from deals.tokens import token_pair_for_user

    def user(username: str) -> User:
        return User.objects.filter(username=username).first() or deal_services.user_create(
            username=username, password=None, email=f"{username}@bench.invalid"
        )

    owner, viewer = user(OWNER), user(VIEWER)
    org = Org.objects.filter(name=ORG_NAME).first() or deal_services.org_create(name=ORG_NAME, created_by=owner)
    OrgMembership.objects.get_or_create(org=org, user=viewer, defaults={"role": OrgRole.MEMBER})
    deal = Deal.objects.filter(org=org, name=DEAL_NAME).first() or deal_services.deal_create(
        user=owner, org=org, name=DEAL_NAME
    )
    if not DealAccess.objects.filter(deal=deal, user=viewer).exists():
        deal_services.deal_access_grant(deal=deal, user=viewer, role=DealRole.VIEWER, granted_by=owner, field="user")
    fixture = Fixture(
        deal_id=str(deal.pk),
        token=token_pair_for_user(user=viewer)["access"],
        events_key=keys.events_key(deal.pk),
    )
    from django.db import connections

    connections.close_all()
    return fixture


def deal_keys(deal_id: str) -> list[str]:
    """Every fixed per-deal key the bench could have caused (the events stream is the one it writes)."""
    from canvas_project import keys

    return [
        keys.events_key(deal_id),
        keys.session_key(deal_id),
        keys.presence_key(deal_id),
        keys.presence_meta_key(deal_id),
        keys.index_key(deal_id),
    ]


def clean_redis(deal_id: str) -> int:
    from canvas_project.redis_client import get_redis

    return get_redis().delete(*deal_keys(deal_id))


# --- processes ----------------------------------------------------------------------------------------
class Server:
    """ONE uvicorn worker in its own process group."""

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env = env
        self.port = free_port()
        self.log_path = logdir / "uvicorn.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> Server:
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "canvas_project.asgi:application",
            "--workers",
            "1",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--timeout-graceful-shutdown",
            "1",
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/health", timeout=2):
                    return self
            except urllib.error.HTTPError:
                return self  # it answers (a degraded health is still an answer)
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"uvicorn did not answer within 60 s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return log_tail(self.log_path, chars)

    def exception_lines(self, count: int = 4) -> str:
        """The last distinct exception lines of the worker's log (why requests failed)."""
        seen: list[str] = []
        for line in reversed(self.log_tail(200_000).splitlines()):
            text = line.strip()
            if text and ("Error" in text or "Timeout" in text or "Exception" in text) and text not in seen:
                seen.append(text)
                if len(seen) >= count:
                    break
        return "\n".join(f"    {line[:300]}" for line in reversed(seen)) or "    (none logged)"

    def stop(self) -> None:
        if self.process is None:
            return
        stop_process_group(self.process, grace=10, kill_wait=10)
        self.process = None


# --pin: the CPUs of the subscriber clients (and this process, the publisher); the worker gets the others.
CLIENT_CPUS: set[int] = set()
SERVER_CPUS: set[int] = set()


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of process `pid` on `cpus` (sched_setaffinity binds one thread: a process's existing
    threads are each bound, its later ones inherit)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task.name), cpus)


class Client(JsonLinesChild):
    """One bench/events_client.py child; its latencies land in `out`."""

    def __init__(self, argv: list[str], out: Path) -> None:
        self.out = out
        super().__init__([sys.executable, str(CLIENT), *argv, "--out", str(out)], cwd=REPO, label="subscriber client")
        if CLIENT_CPUS:
            pin(self.process.pid, CLIENT_CPUS)

    def poll_line(self, event: str) -> dict | None:
        try:
            message = self.lines.get_nowait()
        except queue.Empty:
            return None
        if message.get("event") == "exit":
            raise RuntimeError(f"subscriber client exited (code {self.process.wait()})")
        return message if message.get("event") == event else None

    def latencies(self) -> array:
        values = array("q")
        with open(self.out, "rb") as fh:
            values.frombytes(fh.read())
        return values


# --- observation of the worker ------------------------------------------------------------------------
def rss_bytes(pid: int) -> int:
    try:
        import psutil
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0
    proc = psutil.Process(pid)
    return proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))


def cpu_seconds(pid: int) -> float:
    try:
        import psutil
    except ImportError:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def thread_count(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def worker_redis_clients(pid: int, redis_url: str) -> dict:
    """The worker's Redis connections (CLIENT LIST matched to its sockets) and the DB's XREAD clients."""
    from canvas_project.redis_client import get_redis

    redis_port = urlsplit(redis_url).port or 6379
    db = int((urlsplit(redis_url).path or "/0").lstrip("/") or 0)
    local_ports: set[int] | None = None
    with contextlib.suppress(ImportError, OSError):
        import psutil

        local_ports = {
            c.laddr.port
            for c in psutil.Process(pid).net_connections(kind="tcp")
            if c.raddr and c.raddr.port == redis_port
        }
    clients = get_redis().client_list()
    mine = [c for c in clients if local_ports is not None and int(c["addr"].rsplit(":", 1)[1]) in local_ports]
    return {
        "worker_total": len(mine) if local_ports is not None else None,
        "worker_xread": sum(1 for c in mine if c.get("cmd") == "xread") if local_ports is not None else None,
        "db_xread": sum(1 for c in clients if c.get("cmd") == "xread" and int(c.get("db", -1)) == db),
    }


def worker_db_connections(database_url: str) -> int | None:
    import psycopg

    name = urlsplit(database_url).path.lstrip("/")
    with contextlib.suppress(Exception), psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,)
        ).fetchone()
        return int(row[0])
    return None


@dataclass
class Snapshot:
    rss: int
    threads: int
    db_connections: int | None


def snapshot(pid: int, database_url: str) -> Snapshot:
    return Snapshot(rss_bytes(pid), thread_count(pid), worker_db_connections(database_url))


# --- publishing -----------------------------------------------------------------------------------------
@dataclass
class Published:
    count: int = 0
    failed: int = 0
    first_ns: int = 0
    seconds: float = 0.0
    max_behind_ms: float = 0.0
    emit_ms: list[float] = field(default_factory=list)


def publish(deal_id: str, rate: float, duration: float, on_half=None) -> Published:
    """`rate` events/s for `duration` s on an absolute schedule (a late event does not shift the next)."""
    from canvas_project import events

    total = int(rate * duration)
    out = Published()
    start = time.perf_counter()
    half = total // 2
    for seq in range(total):
        due = start + seq / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        else:
            out.max_behind_ms = max(out.max_behind_ms, -delay * 1000)
        pub_ns = time.time_ns()
        t0 = time.perf_counter()
        if events.emit(deal_id, EVENT_TYPE, {"seq": seq, "pub_ns": pub_ns}) is None:
            out.failed += 1
        out.emit_ms.append((time.perf_counter() - t0) * 1000)
        out.first_ns = out.first_ns or pub_ns
        out.count += 1
        if seq == half and on_half is not None:
            on_half()
    out.seconds = time.perf_counter() - start
    return out


def warm_up(deal_id: str, clients: list[Client], timeout: float) -> list[int]:
    """Emit warm-up events until every client reports that each of its subscribers got one."""
    from canvas_project import events

    counts: list[int | None] = [None] * len(clients)
    deadline = time.monotonic() + timeout
    while any(c is None for c in counts):
        if time.monotonic() > deadline:
            raise TimeoutError("the warm-up event did not reach every subscriber")
        events.emit(deal_id, EVENT_TYPE, {"seq": WARM_SEQ, "pub_ns": time.time_ns()})
        until = time.monotonic() + 0.5
        while time.monotonic() < until and any(c is None for c in counts):
            for i, client in enumerate(clients):
                if counts[i] is None:
                    message = client.poll_line("warm")
                    if message is not None:
                        counts[i] = message["count"]
            time.sleep(0.02)
    return [int(c) for c in counts]


# --- one measured phase ---------------------------------------------------------------------------------
@dataclass
class Phase:
    name: str
    subscribers: int
    published: Published
    done: list[dict]
    latencies: array

    @property
    def received(self) -> int:
        return sum(d["received"] for d in self.done)

    @property
    def expected(self) -> int:
        return self.subscribers * self.published.count

    @property
    def lost(self) -> int:
        return self.expected - self.received

    @property
    def duplicates(self) -> int:
        return sum(d["duplicates"] for d in self.done)

    def total(self, name: str) -> int:
        return sum(d.get(name, 0) for d in self.done)

    def delivered_per_s(self) -> float:
        last = max((d["last_recv_ns"] for d in self.done), default=0)
        if not last or not self.published.first_ns:
            return 0.0
        return self.received / max((last - self.published.first_ns) / 1e9, 1e-9)

    def percentiles(self) -> dict[str, float]:
        values = sorted(self.latencies)
        if not values:
            return {k: float("nan") for k in ("p50", "p95", "p99", "max")}

        def rank(p: float) -> float:
            return values[min(len(values) - 1, max(0, int(round(p / 100 * len(values) + 0.5)) - 1))] / 1e6

        return {"p50": rank(50), "p95": rank(95), "p99": rank(99), "max": values[-1] / 1e6}


def finish_phase(name: str, clients: list[Client], subscribers: int, published: Published, drain: float) -> Phase:
    for client in clients:
        client.send(f"expect {published.count}")
    done = [client.expect("done", drain + 60) for client in clients]
    latencies = array("q")
    for client in clients:
        latencies.extend(client.latencies())
    return Phase(name, subscribers, published, done, latencies)


def run_baseline(fixture: Fixture, args, tmp: Path) -> Phase:
    client = Client(
        [
            "xread",
            "--redis-url",
            args.redis_url,
            "--key",
            fixture.events_key,
            "--drain",
            str(args.drain),
            "--capacity",
            str(int(args.rate * args.baseline_duration) + 16),
        ],
        tmp / "xread.bin",
    )
    try:
        client.expect("opened", 30)
        warm_up(fixture.deal_id, [client], 30)
        published = publish(fixture.deal_id, args.rate, args.baseline_duration)
        return finish_phase("direct XREAD", [client], 1, published, args.drain)
    finally:
        client.stop()


def sse_clients(fixture: Fixture, server: Server, n: int, procs: int, args, tmp: Path, tag: str) -> list[Client]:
    shares = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    return [
        Client(
            [
                "sse",
                "--port",
                str(server.port),
                "--path",
                f"/api/canvas/{fixture.deal_id}/events",
                "--token",
                fixture.token,
                "--subscribers",
                str(share),
                "--drain",
                str(args.drain),
                "--capacity",
                str(int(args.rate * args.duration) + 16),
                "--open-concurrency",
                str(args.open_concurrency),
                "--open-timeout",
                str(args.open_timeout),
            ],
            tmp / f"{tag}-{i}.bin",
        )
        for i, share in enumerate(shares)
        if share
    ]


# --- report ----------------------------------------------------------------------------------------------
def fmt_ms(value: float) -> str:
    return f"{value:.1f}" if value == value else "n/a"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b and a == a and b == b else "n/a"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --- one run: its worker, its subscribers, and the cleanup -----------------------------------------------
@dataclass
class Run:
    """What one run started; _run_with_server stops all of it on the way out. `exit_code` is set there when
    the body was interrupted (130) or failed (1)."""

    tmp: Path
    server: Server
    clients: list[Client] = field(default_factory=list)
    exit_code: int = 0
    server_started: bool = False

    def start_server(self) -> int:
        """Start the worker (inside the body, so that a worker that does not come up is reported and stopped
        like any other failure); its pid."""
        self.server.start()
        self.server_started = True
        pid = self.server.process.pid
        if CLIENT_CPUS:
            pin(pid, SERVER_CPUS)
            print(f"--pin: worker on CPU {sorted(SERVER_CPUS)}, clients and publisher on CPU {sorted(CLIENT_CPUS)}")
        return pid

    def warm_worker(self, fixture: Fixture, args) -> Snapshot:
        """Warm the worker's SSE path (imports, hub, first reader) with one subscriber, then read it idle."""
        warm = sse_clients(fixture, self.server, 1, 1, args, self.tmp, "warm")
        self.clients.extend(warm)
        warm[0].expect("opened", args.open_timeout + 30)
        warm_up(fixture.deal_id, warm, 30)
        finish_phase("warm", warm, 1, Published(), 0.5)
        warm[0].stop()
        self.clients.clear()
        time.sleep(1.0)
        return snapshot(self.server.process.pid, args.database_url)


@contextlib.contextmanager
def _run_with_server(args, fixture: Fixture, prefix: str) -> Iterator[Run]:
    """A run's temporary directory and ONE uvicorn worker (started by `run.start_server()`).

    Ctrl-C, a RuntimeError or a TimeoutError in the body is reported and ends the with block with
    `run.exit_code` 130 or 1 (and the worker's log tail on a failure); anything else propagates. Either way
    every subscriber client and the worker are stopped, the deal's Redis keys deleted and Django's
    connections closed."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmpdir:
        tmp = Path(tmpdir)
        run = Run(tmp=tmp, server=Server(child_env(args.database_url, args.redis_url), tmp))
        try:
            yield run
        except KeyboardInterrupt:
            print("\ninterrupted: stopping what the bench started")
            run.exit_code = 130
        except (RuntimeError, TimeoutError) as exc:
            print(f"\nbench failed: {exc}")
            if run.server_started:  # a worker that did not come up put its log in the error already
                print(f"--- uvicorn log tail ---\n{run.server.log_tail()}")
            run.exit_code = 1
        finally:
            for client in run.clients:
                client.stop()
            run.server.stop()
            with contextlib.suppress(Exception):
                clean_redis(fixture.deal_id)
            with contextlib.suppress(Exception):
                from django.db import connections  # lazy: Django is set up by prepare(), after the path setup

                connections.close_all()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0, help="events published per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of publishing to the SSE subscribers")
    parser.add_argument("--baseline-duration", type=float, default=10.0, help="seconds of the direct XREAD baseline")
    parser.add_argument("--client-procs", type=int, default=1, help="subscriber client processes (1 or 2)")
    parser.add_argument("--drain", type=float, default=10.0, help="seconds to wait for late deliveries")
    parser.add_argument("--open-concurrency", type=int, default=50, help="SSE connects in flight at once")
    parser.add_argument("--open-timeout", type=float, default=60.0)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument(
        "--idle",
        type=int,
        default=0,
        metavar="N",
        help="instead of the latency run: open N subscribers, publish nothing, hold them --idle-seconds and "
        "print the worker's memory per subscriber and its threads (idle, with N open)",
    )
    parser.add_argument("--idle-seconds", type=float, default=15.0)
    parser.add_argument(
        "--pin",
        action="store_true",
        help="worker on its own CPU(s), subscriber clients and the publisher on the last CPU (sched_setaffinity; "
        "Redis and PostgreSQL float): the worker's latency without the clients competing for its core",
    )
    args = parser.parse_args()
    if args.pin:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            parser.error("--pin needs at least 2 CPUs")
        CLIENT_CPUS.add(cpus[-1])
        SERVER_CPUS.update(cpus[:-1])
        pin(os.getpid(), CLIENT_CPUS)
    if args.idle:
        return idle_main(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored

    print("bench/events: SSE fan-out of canvas events on ONE uvicorn worker")
    print(f"machine: {machine_note()}")
    print(
        "note: server, subscriber clients, Redis and publisher share these cores (and other work on the"
        " machine); absolute figures are noisy, compare the ratios to the baseline measured in this run."
    )
    print(f"database {args.database_url}, Redis {args.redis_url}")
    started = time.monotonic()
    fixture = prepare(args.database_url, args.redis_url)
    clean_redis(fixture.deal_id)
    print(
        f"deal {fixture.deal_id}, viewer token minted; prepared in {time.monotonic() - started:.1f} s",
        flush=True,
    )

    with _run_with_server(args, fixture, "bench-events-") as run:
        server, clients, tmp = run.server, run.clients, run.tmp
        pid = run.start_server()
        print(f"uvicorn worker pid {pid} on port {server.port}", flush=True)

        print(
            f"baseline: {args.rate:g} events/s for {args.baseline_duration:g} s, one direct XREAD BLOCK client ...",
            flush=True,
        )
        baseline = run_baseline(fixture, args, tmp)

        idle = run.warm_worker(fixture, args)

        print(
            f"opening {args.subscribers} SSE subscribers ({args.client_procs} client process(es), "
            f"{args.open_concurrency} connects in flight) ...",
            flush=True,
        )
        clients.extend(sse_clients(fixture, server, args.subscribers, args.client_procs, args, tmp, "sse"))
        opened = [
            c.expect("opened", args.subscribers * args.open_timeout / args.open_concurrency + 60) for c in clients
        ]
        n_open = sum(o["ok"] for o in opened)
        outcomes: dict[str, int] = {}
        for o in opened:
            for k, v in o["outcomes"].items():
                outcomes[k] = outcomes.get(k, 0) + v
        open_seconds = max(o["seconds"] for o in opened)
        print(
            f"  open: {n_open}/{args.subscribers} in {open_seconds:.1f} s, outcomes {outcomes}",
            flush=True,
        )
        for o in opened:
            for error in o["errors"]:
                print(f"  open error: {error}")
        if n_open < args.subscribers:
            print(f"  worker log, last exception lines:\n{server.exception_lines()}")
        warm_counts = warm_up(fixture.deal_id, clients, args.open_timeout) if n_open else [0]
        time.sleep(0.5)
        subscribed = snapshot(pid, args.database_url)
        fanout: dict = {}

        def sample_fanout() -> None:
            threading.Thread(
                target=lambda: fanout.update(worker_redis_clients(pid, args.redis_url)), daemon=True
            ).start()

        print(
            f"publishing {args.rate:g} events/s for {args.duration:g} s to {n_open} subscribers ...",
            flush=True,
        )
        cpu0, wall0 = cpu_seconds(pid), time.monotonic()
        published = publish(fixture.deal_id, args.rate, args.duration, on_half=sample_fanout)
        cpu_during = (cpu_seconds(pid) - cpu0) / max(time.monotonic() - wall0, 1e-9)
        after_run = snapshot(pid, args.database_url)
        sse = finish_phase("SSE", clients, n_open, published, args.drain)
        cpu_per_delivery = (cpu_seconds(pid) - cpu0) / max(sse.received, 1)
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"done in {time.monotonic() - started:.0f} s; load average now {load}\n")
        report(
            args,
            baseline,
            sse,
            n_open,
            outcomes,
            open_seconds,
            sum(warm_counts),
            idle,
            subscribed,
            after_run,
            fanout,
            (cpu_during, cpu_per_delivery),
        )
        return 0
    return run.exit_code


def idle_main(args) -> int:
    """--idle N: N open, quiet subscribers on one worker: memory per subscriber, threads, DB connections."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    print(f"bench/events --idle {args.idle}: open, quiet SSE subscribers on ONE uvicorn worker")
    print(f"machine: {machine_note()}")
    fixture = prepare(args.database_url, args.redis_url)
    clean_redis(fixture.deal_id)
    with _run_with_server(args, fixture, "bench-events-idle-") as run:
        server, clients, tmp = run.server, run.clients, run.tmp
        pid = run.start_server()
        idle = run.warm_worker(fixture, args)
        print(f"opening {args.idle} subscribers ({args.client_procs} client process(es)) ...", flush=True)
        clients.extend(sse_clients(fixture, server, args.idle, args.client_procs, args, tmp, "idle"))
        opened = [c.expect("opened", args.idle * args.open_timeout / args.open_concurrency + 60) for c in clients]
        n_open = sum(o["ok"] for o in opened)
        open_seconds = max(o["seconds"] for o in opened)
        if n_open:
            warm_up(fixture.deal_id, clients, args.open_timeout)
        subscribed = snapshot(pid, args.database_url)
        time.sleep(args.idle_seconds)  # a bench, not a test: hold them open, quiet, for the stated time
        held = snapshot(pid, args.database_url)
        mib = 1024 * 1024
        per_sub = (subscribed.rss - idle.rss) / n_open if n_open else float("nan")
        per_sub_held = (held.rss - idle.rss) / n_open if n_open else float("nan")
        print(f"\nsubscribers open: {n_open}/{args.idle} in {open_seconds:.1f} s")
        print(
            f"worker RSS: before {idle.rss / mib:.1f} MiB, {n_open} open {subscribed.rss / mib:.1f} MiB, after "
            f"{args.idle_seconds:g} s idle {held.rss / mib:.1f} MiB -> {per_sub / 1024:.1f} KiB per subscriber "
            f"({per_sub_held / 1024:.1f} KiB after the idle hold)"
        )
        print(
            f"worker threads: before {idle.threads}, {n_open} open {subscribed.threads}, after the hold "
            f"{held.threads}; PostgreSQL connections: before {idle.db_connections}, open "
            f"{subscribed.db_connections}, after {held.db_connections}"
        )
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"load average now {load}\n")
        goals = [
            ["goal", "measured", "verdict"],
            [
                f"{args.idle} idle subscribers open on one worker",
                str(n_open),
                "PASS" if n_open == args.idle else "FAIL",
            ],
            [
                "worker memory <= 20 KiB per subscriber",
                f"{per_sub / 1024:.1f} KiB",
                "PASS" if per_sub <= 20 * 1024 else "FAIL",
            ],
            [
                "threads independent of the number of streams",
                f"{idle.threads} -> {subscribed.threads}",
                "PASS" if subscribed.threads - idle.threads <= 8 else "FAIL",
            ],
        ]
        print(table(goals))
        return 0
    return run.exit_code


def report(
    args,
    baseline: Phase,
    sse: Phase,
    n_open: int,
    outcomes: dict,
    open_seconds: float,
    warm: int,
    idle: Snapshot,
    subscribed: Snapshot,
    after_run: Snapshot,
    fanout: dict,
    cpu: tuple[float, float],
) -> None:
    b, s = baseline.percentiles(), sse.percentiles()
    rows = [["delivery latency (ms)", "direct XREAD (1 client)", f"SSE ({n_open} subscribers)", "SSE / XREAD"]]
    for key in ("p50", "p95", "p99", "max"):
        rows.append([key, fmt_ms(b[key]), fmt_ms(s[key]), ratio(s[key], b[key])])
    rows.append(["events published", str(baseline.published.count), str(sse.published.count), ""])
    rows.append(["deliveries expected", str(baseline.expected), str(sse.expected), ""])
    rows.append(["deliveries received (unique)", str(baseline.received), str(sse.received), ""])
    rows.append(
        [
            f"lost (not delivered {args.drain:g} s after the last publish)",
            str(baseline.lost),
            str(sse.lost),
            "",
        ]
    )
    rows.append(["duplicates", str(baseline.duplicates), str(sse.duplicates), ""])
    rows.append(
        [
            "out of order / resets",
            f"{baseline.total('out_of_order')} / {baseline.total('resets')}",
            f"{sse.total('out_of_order')} / {sse.total('resets')}",
            "",
        ]
    )
    rows.append(
        [
            "deliveries/s (offered)",
            f"{baseline.delivered_per_s():.0f} ({args.rate:g})",
            f"{sse.delivered_per_s():.0f} ({args.rate * n_open:g})",
            "",
        ]
    )
    print(table(rows))
    print()

    mib = 1024 * 1024
    per_sub = (subscribed.rss - idle.rss) / n_open if n_open else float("nan")
    per_sub_after = (after_run.rss - idle.rss) / n_open if n_open else float("nan")
    print(
        f"subscribers open: {n_open}/{args.subscribers} in {open_seconds:.1f} s (outcomes {outcomes}); "
        f"warm-up event reached {warm}"
    )
    print(
        f"worker RSS: idle {idle.rss / mib:.1f} MiB, {n_open} subscribed {subscribed.rss / mib:.1f} MiB, "
        f"after publishing {after_run.rss / mib:.1f} MiB -> {per_sub / 1024:.1f} KiB per subscriber "
        f"({per_sub_after / 1024:.1f} KiB after publishing)"
    )
    if n_open < args.subscribers:
        print(
            f"  (the RSS growth also holds what {args.subscribers - n_open} refused attempts left behind: with "
            "refusals it is no per-subscriber figure)"
        )
    print(
        f"worker threads: idle {idle.threads}, subscribed {subscribed.threads}, after {after_run.threads}; "
        f"PostgreSQL connections to the bench DB: idle {idle.db_connections}, subscribed "
        f"{subscribed.db_connections}, after {after_run.db_connections}"
    )
    print(
        f"worker Redis connections mid-run: {fanout.get('worker_total')} in all, "
        f"{fanout.get('worker_xread')} blocked in XREAD (clients of the DB with cmd=xread: "
        f"{fanout.get('db_xread')}) -> "
        f"{'one XREAD for one deal: fan-out in process' if fanout.get('db_xread') == 1 else 'NOT one XREAD'}"
    )
    print(
        f"worker CPU while publishing: {cpu[0] * 100:.0f}% of one core; {cpu[1] * 1e6:.0f} us of worker CPU "
        f"per delivery (publish start to drain end; less noisy than latency); subscriber client CPU "
        f"{sum(d['cpu_s'] for d in sse.done):.1f} s in all; publisher: emit p50 "
        f"{sorted(sse.published.emit_ms)[len(sse.published.emit_ms) // 2]:.2f} ms, at most "
        f"{sse.published.max_behind_ms:.1f} ms behind schedule, {sse.published.failed} emits failed"
    )
    if sse.total("subscribers_missing_any"):
        print(
            f"subscribers missing at least one event: {sse.total('subscribers_missing_any')}; streams closed "
            f"by the server before the end: {sse.total('closed_by_server')}"
        )
    print()
    p99_ok = s["p99"] <= GOAL_P99_MS
    lost_ok = sse.lost == 0 and sse.duplicates == 0
    all_open = n_open == args.subscribers
    only = "" if all_open else f" over {n_open} open"

    def verdict(ok: bool) -> str:  # a latency or loss over fewer subscribers than asked proves nothing
        return ("PASS" if ok else "FAIL") if all_open else f"n/a ({'pass' if ok else 'fail'}{only})"

    goals = [
        ["goal", "measured", "verdict"],
        [f"{args.subscribers} subscribers open on one worker", f"{n_open}", "PASS" if all_open else "FAIL"],
        [
            f"p99 delivery latency <= {GOAL_P99_MS:g} ms",
            f"{fmt_ms(s['p99'])} ms",
            verdict(p99_ok),
        ],
        [
            "0 lost (and 0 duplicated)",
            f"{sse.lost} lost, {sse.duplicates} dup",
            verdict(lost_ok),
        ],
        [
            "one Redis XREAD per deal per worker",
            f"{fanout.get('db_xread')}",
            "PASS" if fanout.get("db_xread") == 1 else "FAIL",
        ],
    ]
    print(table(goals))
    print(f"\nratio p99 SSE / p99 direct XREAD: {ratio(s['p99'], b['p99'])} (same run)")


if __name__ == "__main__":
    sys.exit(main())
