#!/usr/bin/env python3
"""Mixed load on the service as production serves it: throughput, latency, errors and memory.

    .venv/bin/python bench/load.py                       # 60 s of the mix (about 2.5 minutes in all)
    .venv/bin/python bench/load.py --duration 20 --baseline-duration 5 --subscribers 50   # quicker
    .venv/bin/python bench/load.py --wsgi granian        # REST on granian (the `bench` extra) instead

In one run, against its own PostgreSQL database (deal_canvas_bench_load, created and migrated when
missing) and Redis database number (14); nothing shared is flushed, and at the end only the fixture
deals' keys (named by canvas_project.keys) are deleted:

1. Through the project's services: an org, 10 users, `--deals` deals (20) each with an owner, two
   editors, a commenter and two viewers from those users, a 12-section memo of about 3,000 words
   (the acquisition template's 9 sections and 3 custom ones, saved with canvas.memo.services.canvas_save),
   24 stored nodes (canvas.nodes.services.node_create) and a chat thread; every user's JWT
   (deals.tokens.token_pair_for_user) and an internal engine token (INTERNAL_ENGINE_TOKENS).
   Reused by the next run.
2. Serves as README.md documents, each server in its own process group, 2 workers for REST:
   REST on gunicorn gthread (2 workers x 4 threads; `--wsgi granian`: granian, 2 workers), the SSE
   streams on gunicorn + uvicorn_worker, ONE worker; settings bench.settings (the project's, DEBUG
   off, plus the bare baseline endpoint). No request of the mix enqueues Celery work, so no Celery
   worker runs.
3. Load: wrk with bench/load_wrk.lua, one connection per wrk thread (`--connections`, 32), which
   picks each request's kind at random by the mix's weights and records per kind its latency,
   status and socket errors. The default mix (`--mix`):
     canvas_get         70  GET /api/canvas/{D} as any member of the deal
     presence           10  POST /api/canvas/{D}/presence {section_key, cursor} (the ~10 s heartbeat)
     save                5  PUT /api/canvas/{D}/sections/{key} {markdown, base_version}: base_version is
                            the version the wrk thread last saw for the deal (canvas GET or save); a 409
                            is expected and retried with its current_version (up to 3 tries), counted
                            apart from errors
     context            10  GET /api/internal/canvas/context, maxNodes=200, engine token and claims
     context_unchanged   5  the same with the current revision (an engine polling: no nodes)
   and, only when named in `--mix`, save_memo: POST /api/canvas/{D}/save {content, base_version}, the
   whole memo, handled as save. Phases: warm-up (`--warmup` s of the mix); the baselines of the
   same run, `--baseline-duration` s each: GET /bench/bare alone (a DRF endpoint with the project's
   JWT auth, {"ok": true}), then the canvas GET alone; the mix for `--duration` s while
   `--subscribers` (100) SSE streams stay open on the ASGI server, spread over the deals (raw asyncio
   clients in a child process, resuming after a marker event so that every event of the mix is
   expected exactly once per subscriber); then the two baselines again in reverse order, so that
   load from other work on the shared cores weighs on baselines and mix alike (each baseline's two
   visits are merged; their req/s are printed apart, as a measure of that noise).
4. Reports per request kind: requests, req/s, share, p50/p99/max, statuses, socket errors; SSE:
   streams open, events delivered against those in the streams, lost, duplicated, delivery latency
   (emit -> client) p50/p99; per process (each REST worker, the SSE worker, the masters, wrk, the
   SSE client): RSS at the start and end of the mix and at its quarters (a leak grows steadily, a
   warm-up levels off), its peak (VmHWM) and CPU; Redis (shared: the server's figures move with
   other people's work too): used_memory and CPU deltas and the memory of the fixture's keys;
   PostgreSQL: the peak of connections to the bench database; the load average before and after;
   the ratios to the baselines; and every exception the servers logged.
5. Stops every process it started, also on Ctrl-C, SIGTERM or an error.

Client and servers share the machine's cores (and other people's tests): absolute figures mean
little; the ratios come from the same run. See docs/performance.md, "Mixed load (bench/load)".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import random
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402 - after the path setup
    JsonLinesChild,
    close_connections,
    ensure_wrk,
    free_port,
    log_tail,
    machine_note,
    migrate_and_setup_django,
    stop_process_group,
)

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/deal_canvas_bench_load"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
SETTINGS_MODULE = "bench.settings"
LUA_SCRIPT = Path(__file__).resolve().parent / "load_wrk.lua"
DEFAULT_MIX = "canvas_get=70,presence=10,save=5,context=10,context_unchanged=5"
KINDS = ("bare", "canvas_get", "presence", "save", "save_memo", "context", "context_unchanged")
SAVE_KINDS = ("save", "save_memo")
WORKERS = 2
THREADS = 4
AGENT_ID = "strategy"

ORG_NAME = "Deal Canvas bench: load"
USER_COUNT = 10
USERNAME = "bench-load-u{:02d}"
DEAL_NAME = "Bench load deal {:02d}"
CUSTOM_TITLES = ("Sponsor Background", "Capital Expenditure Plan", "Exit Strategy")
SECTION_WORDS = 250
NODES_PER_DEAL = 24
NODE_TYPES = ("strategy_item", "risk_item", "thesis_point", "diligence_task")
NODE_STATUSES = ("pending", "approved", "rejected", "in_review")
MARKER_EVENT = "bench_load_marker"


# --- environment ------------------------------------------------------------------------------------
def child_env(database_url: str, redis_url: str, engine_token: str) -> dict[str, str]:
    env = {**os.environ}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": redis_url,
            "LANGGRAPH_DATABASE_URL": "",
            "INTERNAL_ENGINE_TOKENS": engine_token,
            # Production serves with DEBUG off; DJANGO_ENV=production would also force an HTTPS redirect.
            "DJANGO_ENV": "development",
            "DJANGO_DEBUG": "false",
            "LOG_LEVEL": "WARNING",
            # the subscribers share a few users' tokens: the per-user stream limit is not what is measured
            "SSE_MAX_STREAMS_PER_USER": "0",
            "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        }
    )
    return env


# --- the fixture ------------------------------------------------------------------------------------
@dataclass
class DealFixture:
    id: str
    thread_id: str
    engine_user: int  # 1-based index into Fixture.user_ids, as the Lua config reads it
    members: list[int]
    writers: list[int]
    version: int
    revision: str


@dataclass
class Fixture:
    deals: list[DealFixture]
    user_ids: list[str]
    tokens: list[str]
    sections: list[str]
    save_bodies: list[str]  # JSON-escaped markdown per section, without quotes
    memo_body: str  # the whole memo, JSON-escaped, for save_memo
    memo_chars: int
    session_bytes: int
    version_first: bool  # the session JSON's first "version" key is the top-level one
    created: int


def memo_markdown(index: int) -> str:
    """The deal's memo: the acquisition template's 9 sections and 3 custom ones, cited, with figures."""
    from bench.canvas_get import _section_body
    from canvas.memo.templates import ACQUISITION

    rng = random.Random(1000 + index)
    titles = [spec.title for spec in ACQUISITION.sections] + list(CUSTOM_TITLES)
    return "\n".join(
        f"## {title}\n\n{_section_body(rng, n, words=SECTION_WORDS)}\n" for n, title in enumerate(titles, start=1)
    )


def prepare(env: dict[str, str], deal_count: int) -> Fixture:
    """Migrate the bench database; users, org, deals with memos, nodes and threads; the JWTs."""
    migrate_and_setup_django(env)
    from canvas.memo import services as canvas_services
    from canvas.nodes import services as canvas_nodes
    from deals import services as deal_services
    from deals.models import Deal, DealAccess, DealRole, Org, OrgMembership, OrgRole, User
    from deals.tokens import token_pair_for_user
    from internal_api.context import canvas_summary
    from internal_api.models import ChatThread

    def user(n: int) -> User:
        name = USERNAME.format(n)
        return User.objects.filter(username=name).first() or deal_services.user_create(
            username=name, password=None, email=f"{name}@bench.invalid", first_name=f"Analyst {n:02d}"
        )

    users = [user(n) for n in range(USER_COUNT)]
    org = Org.objects.filter(name=ORG_NAME).first() or deal_services.org_create(name=ORG_NAME, created_by=users[0])
    for member in users[1:]:
        OrgMembership.objects.get_or_create(org=org, user=member, defaults={"role": OrgRole.MEMBER})
    grants = (
        (1, DealRole.EDITOR),
        (2, DealRole.EDITOR),
        (3, DealRole.COMMENTER),
        (4, DealRole.VIEWER),
        (5, DealRole.VIEWER),
    )
    deals, created = [], 0
    for i in range(deal_count):
        owner = users[i % USER_COUNT]
        deal = Deal.objects.filter(org=org, name=DEAL_NAME.format(i)).first()
        if deal is None:
            deal = deal_services.deal_create(user=owner, org=org, name=DEAL_NAME.format(i), template_key="acquisition")
            created += 1
        members, writers = [i % USER_COUNT + 1], [i % USER_COUNT + 1]
        for offset, role in grants:
            grantee = (i + offset) % USER_COUNT
            if not DealAccess.objects.filter(deal=deal, user=users[grantee]).exists():
                deal_services.deal_access_grant(
                    deal=deal, user=users[grantee], role=role, granted_by=owner, field="user"
                )
            members.append(grantee + 1)
            if role == DealRole.EDITOR:
                writers.append(grantee + 1)
        if deal.memo_version == 0:
            canvas_services.canvas_save(deal=deal, user=owner, content=memo_markdown(i), base_version=None)
            for n in range(NODES_PER_DEAL):
                canvas_nodes.node_create(
                    deal=deal,
                    actor_id=str(owner.pk),
                    type=NODE_TYPES[n % len(NODE_TYPES)],
                    title=f"Item {n} of deal {i}",
                    content=f"Why item {n} matters to the investment case. " * 6,
                    status=NODE_STATUSES[n % len(NODE_STATUSES)],
                    agent_id=AGENT_ID,
                    framework="acquisition",
                )
            deal.refresh_from_db()
        thread = ChatThread.objects.filter(deal=deal, agent_id=AGENT_ID).first() or ChatThread.objects.create(
            deal=deal, user=owner, agent_id=AGENT_ID, title="bench load"
        )
        deals.append((deal, owner, members, writers, thread))

    first_deal, first_owner = deals[0][0], deals[0][1]
    body = canvas_services.canvas_session_bytes(deal=first_deal, role=DealRole.OWNER, user=first_owner)
    session = json.loads(body)
    marker = body.find(b'"version":')
    version_first = marker >= 0 and body[marker + 10 :].lstrip().startswith(str(session["version"]).encode())
    sections = list(session["sections"])
    bodies = [json.dumps(session["sections"][key]["markdown"])[1:-1] for key in sections]
    fixture_deals = []
    for deal, owner, members, writers, thread in deals:
        version = canvas_services.canvas_session_get(deal=deal, role=DealRole.OWNER, user=owner)["version"]
        fixture_deals.append(
            DealFixture(
                id=str(deal.pk),
                thread_id=str(thread.pk),
                engine_user=users.index(owner) + 1,
                members=members,
                writers=writers,
                version=version,
                revision=canvas_summary(deal)[1],
            )
        )
    fixture = Fixture(
        deals=fixture_deals,
        user_ids=[str(u.pk) for u in users],
        tokens=[token_pair_for_user(user=u)["access"] for u in users],
        sections=sections,
        save_bodies=bodies,
        memo_body=json.dumps(memo_markdown(0))[1:-1],
        memo_chars=len(memo_markdown(0)),
        session_bytes=len(body),
        version_first=version_first,
        created=created,
    )
    close_connections()
    return fixture


def lua_string(text: str) -> str:
    level = "=" * 3
    while f"]{level}]" in text:
        level += "="
    return f"[{level}[{text}]{level}]"


def write_lua_config(path: Path, fixture: Fixture, engine_token: str) -> None:
    lines = [
        "return {",
        f"  engine_token = {lua_string(engine_token)},",
        f"  agent_id = {lua_string(AGENT_ID)},",
        "  tokens = {" + ", ".join(lua_string(t) for t in fixture.tokens) + "},",
        "  user_ids = {" + ", ".join(lua_string(u) for u in fixture.user_ids) + "},",
        "  sections = {" + ", ".join(lua_string(s) for s in fixture.sections) + "},",
        "  bodies = {",
        *(f"    {lua_string(b)}," for b in fixture.save_bodies),
        "  },",
        f"  memo = {lua_string(fixture.memo_body)},",
        f"  get_version = {'true' if fixture.version_first else 'false'},",
        "  deals = {",
    ]
    for deal in fixture.deals:
        lines.append(
            f"    {{id = {lua_string(deal.id)}, thread = {lua_string(deal.thread_id)}, "
            f"engine_user = {deal.engine_user}, "
            f"members = {{{', '.join(map(str, deal.members))}}}, writers = {{{', '.join(map(str, deal.writers))}}}, "
            f"version = {deal.version}, revision = {lua_string(deal.revision)}}},"
        )
    lines += ["  },", "}"]
    path.write_text("\n".join(lines) + "\n")


def deal_keys(deal_id: str) -> list[str]:
    """Every key of the deal that canvas_project.keys names: the fixed ones, the index and what it lists."""
    from canvas_project import keys
    from canvas_project.redis_client import get_redis

    names = [key for family in keys.fixed_keys(deal_id).values() for key in family]
    index = keys.index_key(deal_id)
    listed = [m.decode() if isinstance(m, bytes) else m for m in get_redis().smembers(index)]
    return [*names, index, *listed]


def fixture_key_bytes(deal_ids: list[str]) -> tuple[int, int]:
    """(keys, bytes by MEMORY USAGE) of the fixture's deals."""
    from canvas_project.redis_client import get_redis

    client = get_redis()
    count = size = 0
    for deal_id in deal_ids:
        for key in deal_keys(deal_id):
            used = client.memory_usage(key)
            if used:
                count += 1
                size += used
    return count, size


def clean_redis(deal_ids: list[str]) -> int:
    from canvas_project.redis_client import get_redis

    client = get_redis()
    return sum(client.delete(*deal_keys(deal_id)) for deal_id in deal_ids)


# --- servers ----------------------------------------------------------------------------------------
class Server:
    """One server (master and workers) in its own process group, stopped as a group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path, probe: str) -> None:
        self.name = name
        self.port = free_port()
        self.argv = [part.replace("{port}", str(self.port)) for part in argv]
        self.env = env
        self.probe = probe
        self.log_path = logdir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self, token: str) -> Server:
        import httpx

        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                answer = httpx.get(
                    f"http://127.0.0.1:{self.port}{self.probe}", timeout=2, headers={"Authorization": f"Bearer {token}"}
                )
                if answer.status_code < 500:
                    return self
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer within 60 s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return log_tail(self.log_path, chars)

    def stop(self) -> None:
        if self.process is None:
            return
        stop_process_group(self.process, grace=15)
        self.process = None


def rest_argv(wsgi: str) -> tuple[list[str], str]:
    py = sys.executable
    if wsgi == "granian":
        return [
            py,
            "-m",
            "granian",
            "--interface",
            "wsgi",
            "canvas_project.wsgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--workers",
            str(WORKERS),
            "--log-level",
            "warning",
            "--no-ws",
        ], f"granian wsgi, {WORKERS} workers"
    return [
        py,
        "-m",
        "gunicorn",
        "canvas_project.wsgi:application",
        "-k",
        "gthread",
        "--workers",
        str(WORKERS),
        "--threads",
        str(THREADS),
        "--bind",
        "127.0.0.1:{port}",
        "--log-level",
        "warning",
    ], f"gunicorn gthread, {WORKERS} workers x {THREADS} threads"


def sse_argv() -> tuple[list[str], str]:
    py = sys.executable
    if importlib.util.find_spec("uvicorn_worker") is not None:
        return [
            py,
            "-m",
            "gunicorn",
            "canvas_project.asgi:application",
            "-k",
            "uvicorn_worker.UvicornWorker",
            "-w",
            "1",
            "--bind",
            "127.0.0.1:{port}",
            "--log-level",
            "warning",
            "--graceful-timeout",
            "2",
        ], "gunicorn + uvicorn_worker.UvicornWorker, 1 worker"
    return [
        py,
        "-m",
        "uvicorn",
        "canvas_project.asgi:application",
        "--workers",
        "1",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--no-access-log",
        "--log-level",
        "warning",
        "--timeout-graceful-shutdown",
        "1",
    ], "uvicorn, 1 worker"


def server_problems(server: Server, count: int = 6) -> tuple[Counter, list[str]]:
    """What the server logged that a healthy run does not: counts by kind and the last distinct lines."""
    text = server.log_tail(5_000_000)
    kinds: Counter = Counter()
    seen: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        for marker in ("Traceback", "WORKER TIMEOUT", "Internal Server Error", "ERROR", "CRITICAL", "Killed"):
            if marker in stripped:
                kinds[marker] += 1
        if stripped and any(w in stripped for w in ("Error", "Exception", "TIMEOUT", "Timeout")):
            if stripped not in seen:
                seen.append(stripped)
    return kinds, [line[:300] for line in seen[-count:]]


# --- watching processes -----------------------------------------------------------------------------
def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (bytes) of a process from /proc; empty when it is gone."""
    values = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) * 1024
    return values


def cpu_seconds(pid: int) -> float | None:
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


@dataclass
class ProcSeen:
    label: str
    first_rss: int = 0
    last_rss: int = 0
    max_rss: int = 0
    hwm: int = 0
    cpu_start: float | None = None
    cpu_last: float = 0.0
    appeared_late: bool = False
    samples: list[tuple[float, int]] = field(default_factory=list)  # (monotonic time, RSS)


class Watch:
    """Samples the servers' processes (master + workers), and PostgreSQL's connections, while load runs."""

    def __init__(self, servers: dict[str, Server], database_url: str, interval: float = 0.5) -> None:
        self.servers = servers
        self.database_url = database_url
        self.interval = interval
        self.seen: dict[int, ProcSeen] = {}
        self.extra: dict[int, str] = {}  # the load generators, added as they start
        self.pg_peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def members(self) -> dict[int, str]:
        import psutil

        found = {}
        for name, server in self.servers.items():
            if server.process is None:
                continue
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(server.process.pid)
                found[root.pid] = f"{name} master"
                for child in root.children(recursive=True):
                    found[child.pid] = f"{name} worker"
        return {**found, **self.extra}

    def add(self, pid: int, label: str) -> None:
        self.extra[pid] = label
        rss = proc_status(pid).get("VmRSS", 0)
        self.seen[pid] = ProcSeen(label, first_rss=rss, cpu_start=cpu_seconds(pid) or 0.0)
        self.sample()

    def sample(self, first: bool = False) -> None:
        for pid, label in self.members().items():
            status, cpu = proc_status(pid), cpu_seconds(pid)
            if not status or cpu is None:
                continue
            entry = self.seen.get(pid)
            if entry is None:
                entry = self.seen[pid] = ProcSeen(
                    label, first_rss=status["VmRSS"], cpu_start=0.0 if not first else cpu, appeared_late=not first
                )
            entry.last_rss = status["VmRSS"]
            entry.samples.append((time.monotonic(), status["VmRSS"]))
            entry.max_rss = max(entry.max_rss, status["VmRSS"])
            entry.hwm = status.get("VmHWM", entry.hwm)
            entry.cpu_last = cpu

    def _pg_count(self, conn) -> int:
        name = urlsplit(self.database_url).path.lstrip("/")
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,)
        ).fetchone()
        return int(row[0])

    def _run(self) -> None:
        import psycopg

        conn = None
        with contextlib.suppress(psycopg.Error):
            conn = psycopg.connect(self.database_url, autocommit=True)
        try:
            while not self._stop.wait(self.interval):
                self.sample()
                if conn is not None:
                    with contextlib.suppress(psycopg.Error):
                        self.pg_peak = max(self.pg_peak, self._pg_count(conn))
        finally:
            if conn is not None:
                conn.close()

    def __enter__(self) -> Watch:
        self.sample(first=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.sample()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


# --- wrk --------------------------------------------------------------------------------------------
@dataclass
class KindResult:
    latencies_us: list[int] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    socket_errors: int = 0

    @property
    def count(self) -> int:
        return len(self.latencies_us)


@dataclass
class PhaseResult:
    name: str
    mix: str
    seconds: float
    kinds: dict[str, KindResult]
    wrk_summary: dict
    save_retries: int
    save_gave_up: int
    not_unchanged: int
    wrk_cpu_s: float
    visits_rps: list[float] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(k.count for k in self.kinds.values())

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def merge_visits(name: str, parts: list[PhaseResult]) -> PhaseResult:
    """The visits of one baseline as one result: requests over the summed time, percentiles over all
    the visits' samples; `visits_rps` keeps each visit's throughput (its spread is the run's noise)."""
    kinds: dict[str, KindResult] = {}
    for part in parts:
        for kind, result in part.kinds.items():
            merged = kinds.setdefault(kind, KindResult())
            merged.latencies_us.extend(result.latencies_us)
            merged.statuses.update(result.statuses)
            merged.socket_errors += result.socket_errors
    for result in kinds.values():
        result.latencies_us.sort()
    summary = {key: sum(part.wrk_summary[key] for part in parts) for key in WRK_FIELDS}
    summary.update({"p50_us": -1, "p99_us": -1, "max_us": -1})
    return PhaseResult(
        name=name,
        mix=parts[0].mix,
        seconds=sum(part.seconds for part in parts),
        kinds=kinds,
        wrk_summary=summary,
        save_retries=sum(part.save_retries for part in parts),
        save_gave_up=sum(part.save_gave_up for part in parts),
        not_unchanged=sum(part.not_unchanged for part in parts),
        wrk_cpu_s=sum(part.wrk_cpu_s for part in parts),
        visits_rps=[part.rps for part in parts],
    )


def percentile(sorted_values: list[int], p: float) -> float:
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return float(sorted_values[rank])


WRK_FIELDS = (
    "requests",
    "duration_us",
    "bytes",
    "connect",
    "read",
    "write",
    "status",
    "timeout",
    "p50_us",
    "p99_us",
    "max_us",
    "threads",
)


def parse_wrk_report(path: Path) -> tuple[dict, dict[str, KindResult], Counter]:
    """wrk's summary (written by done()) and what every thread wrote: one line per response
    (`kind status latency_us`), `E kind` per socket error, `R` per save retry, `G` per save given up,
    `N` per context_unchanged answer that was not `unchanged` (its revision had moved on)."""
    summary = dict(zip(WRK_FIELDS, map(int, path.read_text().split()[1:]), strict=True))
    kinds: dict[str, KindResult] = {}
    marks: Counter = Counter()
    for thread_file in sorted(path.parent.glob(path.name + ".t*")):
        for line in thread_file.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:
                result = kinds.get(parts[0]) or kinds.setdefault(parts[0], KindResult())
                result.statuses[int(parts[1])] += 1
                result.latencies_us.append(int(parts[2]))
            elif parts and parts[0] == "E":
                kinds.setdefault(parts[1], KindResult()).socket_errors += 1
            elif len(parts) == 1:
                marks[parts[0]] += 1
    for result in kinds.values():
        result.latencies_us.sort()
    return summary, kinds, marks


def run_phase(
    wrk: str,
    name: str,
    mix: str,
    duration: int,
    connections: int,
    base_url: str,
    config: Path,
    workdir: Path,
    watch: Watch | None = None,
) -> PhaseResult:
    out = workdir / f"wrk-{name}.txt"
    env = {**os.environ, "BENCH_LOAD_CONFIG": str(config), "BENCH_LOAD_MIX": mix, "BENCH_LOAD_OUT": str(out)}
    argv = [
        wrk,
        f"-t{connections}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "30s",
        "-s",
        str(LUA_SCRIPT),
        base_url,
    ]
    with open(workdir / f"wrk-{name}.log", "wb") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    if watch is not None:
        watch.add(process.pid, "wrk")
    try:
        _pid, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        raise
    if process.returncode != 0 or not out.exists():
        raise RuntimeError(f"wrk failed ({process.returncode}): {(workdir / f'wrk-{name}.log').read_text()[-2000:]}")
    summary, kinds, marks = parse_wrk_report(out)
    return PhaseResult(
        name=name,
        mix=mix,
        seconds=summary["duration_us"] / 1e6,
        kinds=kinds,
        wrk_summary=summary,
        save_retries=marks["R"],
        save_gave_up=marks["G"],
        not_unchanged=marks["N"],
        wrk_cpu_s=usage.ru_utime + usage.ru_stime,
    )


# --- SSE subscribers (child process) ----------------------------------------------------------------
def sse_client_main(argv: list[str]) -> None:
    """`bench/load.py _sse-client --port P --plan F`: open the plan's streams, count what arrives."""
    parser = argparse.ArgumentParser(prog="bench/load.py _sse-client")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--plan", required=True)
    parser.add_argument("--open-concurrency", type=int, default=50)
    parser.add_argument("--open-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(65536, resource.getrlimit(resource.RLIMIT_NOFILE)[1]),) * 2)
    try:
        import uvloop
    except ImportError:
        asyncio.run(run_sse_client(args))
    else:
        uvloop.run(run_sse_client(args))


async def run_sse_client(args) -> None:
    from bench.events_client import SseProtocol, emit_line, stdin_lines

    class Shared:
        capacity = 1  # SseProtocol's own tally is not used

        def __init__(self) -> None:
            self.latencies = array("q")
            self.by_type: Counter = Counter()

    class Subscriber(SseProtocol):
        """A stream that records every event once by id: type, and emit -> receive latency."""

        def __init__(self, request: bytes, shared: Shared, opened: asyncio.Future, deal: str) -> None:
            super().__init__(request, shared, opened)
            self.deal = deal
            self.ids: set[bytes] = set()
            self.duplicates = 0
            self.resets = 0

        def handle_event(self, block: bytes, now: int) -> None:
            event, data, ident = b"message", None, None
            for line in block.split(b"\n"):
                if line.startswith(b"data: "):
                    data = line[6:]
                elif line.startswith(b"event: "):
                    event = line[7:]
                elif line.startswith(b"id: "):
                    ident = line[4:]
                elif line.startswith(b"retry:") and not self.opened.done():
                    self.opened.set_result(("ok", self.status, ""))
            if data is None:
                return  # `retry:` or the `: ping` heartbeat
            if event == b"reset":
                self.resets += 1
                return
            if ident in self.ids:
                self.duplicates += 1
                return
            self.ids.add(ident)
            self.shared.by_type[event.decode()] += 1
            at = json.loads(data).get("at")
            if isinstance(at, int):
                self.shared.latencies.append(now - at * 1_000_000)

    loop = asyncio.get_running_loop()
    commands = stdin_lines(loop)
    plan = json.loads(Path(args.plan).read_text())
    shared = Shared()
    gate = asyncio.Semaphore(args.open_concurrency)
    subscribers: list[Subscriber] = []
    outcomes: Counter = Counter()
    errors: list[str] = []

    async def open_one(entry: dict) -> None:
        request = (
            f"GET {entry['path']} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\nAccept: text/event-stream\r\n"
            f"Authorization: Bearer {entry['token']}\r\nCache-Control: no-cache\r\n\r\n"
        ).encode()
        async with gate:
            opened = loop.create_future()
            protocol = None
            try:
                _transport, protocol = await loop.create_connection(
                    lambda: Subscriber(request, shared, opened, entry["deal"]), "127.0.0.1", args.port
                )
                kind, status, detail = await asyncio.wait_for(opened, args.open_timeout)
            except (OSError, TimeoutError) as exc:
                kind, status, detail = "error", 0, f"{type(exc).__name__}: {exc}"
            label = "200" if kind == "ok" else f"{kind}:{status}"
            outcomes[label] += 1
            if kind == "ok":
                subscribers.append(protocol)
            else:
                if len(errors) < 5:
                    errors.append(f"{label} {detail}")
                if protocol is not None and protocol.transport is not None:
                    protocol.transport.close()

    started = time.perf_counter()
    await asyncio.gather(*(open_one(entry) for entry in plan["subscribers"]))
    emit_line(
        {
            "event": "opened",
            "ok": len(subscribers),
            "outcomes": dict(outcomes),
            "errors": errors,
            "seconds": round(time.perf_counter() - started, 3),
        }
    )
    while True:
        line = await commands.get()
        if line in ("stop", "eof"):
            break
    received: Counter = Counter()
    opened_per_deal: Counter = Counter()
    for sub in subscribers:
        received[sub.deal] += len(sub.ids)
        opened_per_deal[sub.deal] += 1
    latencies = sorted(shared.latencies)
    emit_line(
        {
            "event": "done",
            "received_per_deal": dict(received),
            "subscribers_per_deal": dict(opened_per_deal),
            "by_type": dict(shared.by_type),
            "duplicates": sum(s.duplicates for s in subscribers),
            "resets": sum(s.resets for s in subscribers),
            "closed_by_server": sum(s.state == s.CLOSED for s in subscribers),
            "latency_ms": {
                name: round(percentile(latencies, p) / 1e6, 1)
                for name, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))
            }
            if latencies
            else {},
        }
    )
    for sub in subscribers:
        if sub.transport is not None:
            sub.transport.close()


class SseClient(JsonLinesChild):
    """The child process that holds the SSE streams; one JSON object per line on its stdout."""

    def __init__(self, port: int, plan: Path, env: dict[str, str]) -> None:
        super().__init__(
            [sys.executable, str(Path(__file__).resolve()), "_sse-client", "--port", str(port), "--plan", str(plan)],
            cwd=REPO,
            env=env,
            label="SSE client",
        )


def stream_markers(deal_ids: list[str]) -> dict[str, str]:
    """Emit one marker event per deal: the subscribers resume after it, so they miss nothing after it."""
    from canvas_project import events

    markers = {}
    for deal_id in deal_ids:
        marker = events.emit(deal_id, MARKER_EVENT, {})
        if marker is None:
            raise RuntimeError("Redis is unavailable: cannot place the stream markers")
        markers[deal_id] = marker
    return markers


def events_after(markers: dict[str, str]) -> tuple[Counter, Counter]:
    """Per deal, the number of events in its stream after the marker; and their types over all deals."""
    from canvas_project import keys
    from canvas_project.redis_client import get_redis

    client = get_redis()
    per_deal: Counter = Counter()
    types: Counter = Counter()
    for deal_id, marker in markers.items():
        for _id, fields in client.xrange(keys.events_key(deal_id), min=f"({marker}", max="+"):
            per_deal[deal_id] += 1
            types[(fields.get(b"type") or b"?").decode()] += 1
    return per_deal, types


# --- Redis figures ----------------------------------------------------------------------------------
def redis_figures() -> dict[str, float]:
    from canvas_project.redis_client import get_redis

    client = get_redis()
    memory, cpu, stats = client.info("memory"), client.info("cpu"), client.info("stats")
    return {
        "used_memory": memory["used_memory"],
        "used_memory_peak": memory["used_memory_peak"],
        "cpu_s": cpu["used_cpu_user"] + cpu["used_cpu_sys"],
        "commands": stats["total_commands_processed"],
    }


# --- report -----------------------------------------------------------------------------------------
def mib(value: float) -> str:
    return f"{value / 1048576:,.1f}"


def ms(us: float) -> str:
    return "-" if us != us else f"{us / 1000:,.1f}"  # NaN for an empty kind


def mix_weights(mix: str) -> dict[str, float]:
    weights = {}
    for part in mix.split(","):
        kind, _, weight = part.partition("=")
        if kind.strip() not in KINDS:
            raise SystemExit(f"unknown request kind {kind!r} in the mix; known: {', '.join(KINDS)}")
        weights[kind.strip()] = float(weight)
    return weights


def print_phase(phase: PhaseResult) -> None:
    weights = mix_weights(phase.mix)
    total_weight = sum(weights.values())
    w = phase.wrk_summary
    if phase.visits_rps:
        detail = f"visits: {' and '.join(f'{rps:,.1f}' for rps in phase.visits_rps)} req/s"
    else:
        detail = f"all kinds: p50 {ms(w['p50_us'])} ms, p99 {ms(w['p99_us'])} ms"
    print(
        f"\n[{phase.name}] {phase.seconds:.1f} s, {phase.requests:,} responses, {phase.rps:,.1f} req/s "
        f"(wrk's own count {w['requests']:,}; {detail})"
    )
    header = (
        f"  {'kind':<18} {'n':>7} {'req/s':>8} {'share':>6} {'target':>6} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8}  statuses; socket errors"
    )
    print(header)
    for kind in KINDS:
        result = phase.kinds.get(kind)
        if result is None and kind not in weights:
            continue
        result = result or KindResult()
        lat = result.latencies_us
        share = result.count / phase.requests * 100 if phase.requests else 0.0
        target = weights.get(kind, 0) / total_weight * 100
        statuses = ", ".join(f"{status}: {n:,}" for status, n in sorted(result.statuses.items())) or "-"
        print(
            f"  {kind:<18} {result.count:>7,} {result.count / phase.seconds:>8,.1f} {share:>5.1f}% {target:>5.1f}% "
            f"{ms(percentile(lat, 50)):>8} {ms(percentile(lat, 99)):>8} {ms(lat[-1] if lat else float('nan')):>8}"
            f"  {statuses}; {result.socket_errors}"
        )
    print(
        f"  wrk socket errors: connect {w['connect']}, read {w['read']}, write {w['write']}, timeout {w['timeout']}; "
        f"wrk CPU {phase.wrk_cpu_s:.1f} s ({phase.wrk_cpu_s / phase.seconds * 100:.0f}% of a core)"
    )
    if any(kind in weights for kind in SAVE_KINDS):
        print(
            f"  saves: {phase.save_retries:,} retried after a 409 with its current_version, "
            f"{phase.save_gave_up:,} gave up after 3 tries"
        )
    if "context_unchanged" in weights:
        print(f"  context_unchanged answered with the nodes (its revision had moved on): {phase.not_unchanged}")


def unexpected(phase: PhaseResult) -> tuple[int, Counter]:
    """Responses that are neither 2xx nor a save's expected 409, by kind and status; plus socket errors."""
    bad: Counter = Counter()
    for kind, result in phase.kinds.items():
        for status, n in result.statuses.items():
            if 200 <= status < 300 or (kind in SAVE_KINDS and status == 409):
                continue
            bad[(kind, status)] += n
    return sum(r.socket_errors for r in phase.kinds.values()), bad


# --- main -------------------------------------------------------------------------------------------
def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_sse-client":
        sse_client_main(sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=60, help="seconds of the mix (default 60)")
    parser.add_argument(
        "--baseline-duration",
        type=int,
        default=10,
        help="seconds of each baseline: the bare endpoint alone, the canvas GET alone (default 10)",
    )
    parser.add_argument("--warmup", type=int, default=5, help="seconds of the mix before measuring (default 5)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections, one per wrk thread (32)")
    parser.add_argument("--subscribers", type=int, default=100, help="SSE streams open during the mix (100)")
    parser.add_argument("--deals", type=int, default=20, help="deals of the fixture (20)")
    parser.add_argument("--mix", default=DEFAULT_MIX, help=f"kind=weight,... of {', '.join(KINDS)} ({DEFAULT_MIX})")
    parser.add_argument(
        "--wsgi",
        choices=("gthread", "granian"),
        default="gthread",
        help="the REST server: gunicorn gthread (default) or granian (the `bench` extra)",
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    args = parser.parse_args()
    mix_weights(args.mix)
    if args.wsgi == "granian" and importlib.util.find_spec("granian") is None:
        raise SystemExit("granian is not installed: .venv/bin/pip install '.[bench]'")

    # Ctrl-C and SIGTERM unwind through the `finally` below, which stops every process (SIGINT is
    # re-armed because a shell may start a background job with it ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started_at = datetime.now(UTC)
    wall = time.monotonic()
    wrk = ensure_wrk()
    if wrk is None:
        raise SystemExit("wrk is missing and cannot be installed here (apt-get install wrk)")
    rest_cmd, rest_label = rest_argv(args.wsgi)
    sse_cmd, sse_label = sse_argv()
    load_before = os.getloadavg()
    print(f"bench/load  {started_at:%Y-%m-%d %H:%M} UTC  on {machine_note()}")
    print(f"database {args.database_url}, redis {args.redis_url}")
    print(f"REST: {rest_label}; SSE: {sse_label}; no Celery worker (no request of the mix enqueues work)")
    print(
        f"load: wrk, {args.connections} connections (one per wrk thread); mix {args.mix}; "
        f"{args.subscribers} SSE subscribers during the mix"
    )

    engine_token = secrets.token_urlsafe(32)
    env = child_env(args.database_url, args.redis_url, engine_token)
    fixture = prepare(env, args.deals)
    deal_ids = [d.id for d in fixture.deals]
    print(
        f"fixture: {len(fixture.deals)} deals ({fixture.created} created now), {USER_COUNT} users, "
        f"{len(fixture.sections)} sections per memo, memo {fixture.memo_chars:,} characters, "
        f"session GET {fixture.session_bytes:,} bytes, {NODES_PER_DEAL} stored nodes per deal"
    )

    workdir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    config = workdir / "config.lua"
    write_lua_config(config, fixture, engine_token)
    if not fixture.version_first:
        print(
            'note: the session JSON\'s first "version" is not the top-level one; saves learn versions '
            "from saves and 409s only"
        )
    rest = Server("rest", rest_cmd, env, workdir, "/bench/bare")
    sse = Server("sse", sse_cmd, env, workdir, "/api/health")
    servers = {"rest": rest, "sse": sse}
    client: SseClient | None = None
    phases: dict[str, PhaseResult] = {}
    watch: Watch | None = None
    try:
        rest.start(fixture.tokens[0])
        sse.start(fixture.tokens[0])
        base_url = f"http://127.0.0.1:{rest.port}"
        print(
            f"servers up in {time.monotonic() - wall:.0f} s (REST :{rest.port}, SSE :{sse.port}); logs in {workdir}",
            flush=True,
        )

        def phase(name: str, mix: str, seconds: int) -> PhaseResult:
            print(f"[{name}] {seconds} s of {mix} ...", flush=True)
            result = run_phase(wrk, name, mix, seconds, args.connections, base_url, config, workdir)
            time.sleep(2)  # let the servers finish what wrk left queued
            return result

        # the baselines run before and after the mix (A B mix B A), so that load which other work puts
        # on the shared cores, rising or falling during the run, weighs on baselines and mix alike
        phase("warm-up", args.mix, args.warmup)
        visits: dict[str, list[PhaseResult]] = {"bare": [], "canvas_get alone": []}
        visits["bare"].append(phase("bare", "bare=1", args.baseline_duration))
        visits["canvas_get alone"].append(phase("canvas_get alone", "canvas_get=1", args.baseline_duration))

        # the SSE subscribers: spread over the deals, each resuming after its deal's marker event
        markers = stream_markers(deal_ids)
        plan = []
        for n in range(args.subscribers):
            deal = fixture.deals[n % len(fixture.deals)]
            member = deal.members[(n // len(fixture.deals)) % len(deal.members)]
            plan.append(
                {
                    "deal": deal.id,
                    "token": fixture.tokens[member - 1],
                    "path": f"/api/canvas/{deal.id}/events?last_event_id={markers[deal.id]}",
                }
            )
        plan_path = workdir / "sse-plan.json"
        plan_path.write_text(json.dumps({"subscribers": plan}))
        client = SseClient(sse.port, plan_path, env)
        opened = client.expect("opened", timeout=120)
        print(
            f"SSE: {opened['ok']}/{args.subscribers} streams open in {opened['seconds']} s {opened['outcomes']}"
            + (f" errors: {opened['errors']}" if opened["errors"] else ""),
            flush=True,
        )

        redis_before = redis_figures()
        keys_before = fixture_key_bytes(deal_ids)
        load_mix_start = os.getloadavg()
        with Watch(servers, args.database_url) as watch:
            watch.add(client.process.pid, "SSE client")
            mix_started = time.monotonic()
            phases["mix"] = run_phase(
                wrk, "mix", args.mix, args.duration, args.connections, base_url, config, workdir, watch
            )
            time.sleep(2)  # deliveries still on their way
        redis_after = redis_figures()
        keys_after = fixture_key_bytes(deal_ids)
        load_after = os.getloadavg()
        client.send("stop")
        delivered = client.expect("done", timeout=60)
        expected_per_deal, stream_types = events_after(markers)
        client.stop()
        visits["canvas_get alone"].append(phase("canvas_get alone", "canvas_get=1", args.baseline_duration))
        visits["bare"].append(phase("bare", "bare=1", args.baseline_duration))
        for name, parts in visits.items():
            phases[name] = merge_visits(name, parts)
    finally:
        if client is not None:
            client.stop()
        for server in (rest, sse):
            server.stop()
        with contextlib.suppress(Exception):
            clean_redis(deal_ids)

    # --- the report -------------------------------------------------------------------------------
    for name in ("bare", "canvas_get alone", "mix"):
        print_phase(phases[name])

    mix, bare, alone = phases["mix"], phases["bare"], phases["canvas_get alone"]
    print("\nRatios (same run):")
    print(f"  mix req/s / bare req/s                 {mix.rps / bare.rps:.3f}  ({mix.rps:,.1f} / {bare.rps:,.1f})")
    print(f"  canvas_get alone req/s / bare req/s    {alone.rps / bare.rps:.3f}")
    get_mix, get_alone = mix.kinds.get("canvas_get", KindResult()), alone.kinds["canvas_get"]
    for p in (50, 99):
        a, b = percentile(get_mix.latencies_us, p), percentile(get_alone.latencies_us, p)
        print(f"  canvas_get p{p} in the mix / alone       {a / b:.2f}  ({ms(a)} / {ms(b)} ms)")
    for kind in KINDS[2:]:
        result = mix.kinds.get(kind)
        if result and result.count:
            ratio = percentile(result.latencies_us, 50) / percentile(bare.kinds["bare"].latencies_us, 50)
            print(f"  {kind + ' p50 / bare p50':<40} {ratio:.2f}")

    sockets, bad = unexpected(mix)
    print(
        f"\nErrors in the mix: {sum(bad.values()):,} unexpected statuses "
        f"({', '.join(f'{k} {s}: {n}' for (k, s), n in sorted(bad.items())) or 'none'}), {sockets} socket errors; "
        f"save 409s (expected): {sum(mix.kinds.get(k, KindResult()).statuses.get(409, 0) for k in SAVE_KINDS):,}"
    )
    for name in ("bare", "canvas_get alone"):
        s, b = unexpected(phases[name])
        if s or b:
            print(f"  {name}: {sum(b.values())} unexpected statuses {dict(b)}, {s} socket errors")

    expected = sum(n * delivered["subscribers_per_deal"].get(deal_id, 0) for deal_id, n in expected_per_deal.items())
    received = sum(delivered["received_per_deal"].values())
    print(
        f"\nSSE during the mix: {opened['ok']} streams open, {delivered['closed_by_server']} closed by the server; "
        f"{sum(expected_per_deal.values()):,} events emitted ({dict(stream_types)})"
    )
    print(
        f"  deliveries {received:,} of {expected:,} expected ({received / mix.seconds:,.1f}/s), "
        f"lost {expected - received:,}, duplicates {delivered['duplicates']}, resets {delivered['resets']}; "
        f"by type {delivered['by_type']}"
    )
    if delivered["latency_ms"]:
        lat = delivered["latency_ms"]
        print(
            f"  delivery latency (emit -> client, ms resolution): p50 {lat['p50']} ms, p95 {lat['p95']} ms, "
            f"p99 {lat['p99']} ms, max {lat['max']} ms"
        )

    print("\nProcesses during the mix (RSS at its start -> end, peak RSS = VmHWM since the process started):")
    print(
        f"  {'process':<16} {'pid':>8} {'RSS start':>10} {'RSS end':>9} {'growth':>8} {'VmHWM':>8} {'CPU s':>7} "
        f"{'% core':>7}  MiB"
    )
    for pid, seen in sorted(watch.seen.items(), key=lambda item: item[1].label):
        # wrk's own CPU from wait4: the last samples miss its final moments
        cpu = mix.wrk_cpu_s if seen.label == "wrk" else seen.cpu_last - (seen.cpu_start or 0.0)
        late = (
            " (started during the mix: a replaced worker)"
            if seen.appeared_late and seen.label.startswith(("rest", "sse"))
            else ""
        )
        print(
            f"  {seen.label:<16} {pid:>8} {mib(seen.first_rss):>10} {mib(seen.last_rss):>9} "
            f"{mib(seen.last_rss - seen.first_rss):>8} {mib(seen.hwm):>8} {cpu:>7.1f} {cpu / mix.seconds * 100:>6.0f}%"
            f"{late}"
        )
    marks = [mix_started + mix.seconds * q / 4 for q in range(5)]
    print(f"  RSS over the mix (MiB at {', '.join(f'{mix.seconds * q / 4:.0f}' for q in range(5))} s):")
    for pid, seen in sorted(watch.seen.items(), key=lambda item: item[1].label):
        if seen.label.endswith("worker") and seen.samples:
            curve = [min(seen.samples, key=lambda sample, t=t: abs(sample[0] - t))[1] for t in marks]
            print(f"    {seen.label} {pid}: {' -> '.join(mib(rss) for rss in curve)}")
    print(
        f"  redis-server (shared with other work): used_memory {mib(redis_before['used_memory'])} -> "
        f"{mib(redis_after['used_memory'])} MiB ({mib(redis_after['used_memory'] - redis_before['used_memory'])}), "
        f"CPU {redis_after['cpu_s'] - redis_before['cpu_s']:.1f} s "
        f"({(redis_after['cpu_s'] - redis_before['cpu_s']) / mix.seconds * 100:.0f}% of a core), "
        f"{(redis_after['commands'] - redis_before['commands']) / mix.seconds:,.0f} commands/s"
    )
    print(
        f"  the fixture's Redis keys: {keys_before[0]} keys {mib(keys_before[1])} MiB -> {keys_after[0]} keys "
        f"{mib(keys_after[1])} MiB (MEMORY USAGE)"
    )
    print(f"  PostgreSQL: peak {watch.pg_peak} connections to the bench database (REST + SSE pools)")

    print("\nServer logs:")
    logged = False
    for server in (rest, sse):
        kinds, lines = server_problems(server)
        logged = logged or bool(kinds)
        print(f"  {server.name}: {dict(kinds) if kinds else 'no errors logged'}")
        for line in lines:
            print(f"      {line}")
    print(
        f"\nload average: {', '.join(f'{x:.2f}' for x in load_before)} before the run, "
        f"{', '.join(f'{x:.2f}' for x in load_mix_start)} at the start of the mix, "
        f"{', '.join(f'{x:.2f}' for x in load_after)} at its end; {os.cpu_count()} cores shared with "
        f"everything else on the machine"
    )
    print(f"done in {time.monotonic() - wall:.0f} s; the fixture's Redis keys deleted")
    if logged:
        print(f"server logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: every process the bench started is stopped", file=sys.stderr)
        sys.exit(130)
