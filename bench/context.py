#!/usr/bin/env python3
"""Benchmark of GET /api/internal/canvas/context (the internal canvas-context contract) on a big canvas.

    .venv/bin/python bench/context.py                          # 5,000 nodes, 10 s per endpoint
    .venv/bin/python bench/context.py --nodes 5000 --duration 10
    .venv/bin/python bench/context.py --duration 4 --no-profile  # quicker, noisier

In one run, against its own PostgreSQL database (deal_canvas_bench_context) and Redis database
number (11), never the shared ones' data:

1. migrates the bench database with the bench settings (bench/context_settings.py: the project's
   settings, DEBUG off, one engine token, URL map + the bare baseline of bench/context_urls.py) and
   creates an org, an owner, an analyst (editor), a deal whose memo (acquisition template, 9
   sections) is saved through canvas.memo.services.canvas_save, a ChatThread, and `--nodes` stored nodes
   plus edges written straight to the LangGraph Store in batches of PutOps of the shape
   canvas.nodes.node_create / link_create write (reused on the next run when the counts match);
2. serves the project with gunicorn, sync WSGI workers, 2 of them (2 cores; the layout
   bench/canvas_get.py measured fastest for sync DRF views), in its own process group;
3. runs wrk (2 threads, 8 connections; a Python load generator when wrk cannot be installed) for the
   same time against four GETs, in rounds that alternate them (even rounds in reverse order) so that
   noise from other work on the machine weighs on all alike; before each measurement the server
   first serves what the previous one left in its listen backlog, so no GET pays for another's queue:
     bare       GET /bench/internal-bare: the contract's checks only (token, version, claims, query,
                scope, user, deal access, thread), {"success": true} -- the baseline;
     ctx-200    the context at maxNodes=200 (includeContent false);
     ctx-full   the context at maxNodes=200 with includeContent=true&includeRelationships=true;
     unchanged  the context at maxNodes=200 with revision = its current contentRevision (nodes omitted);
4. prints req/s, p50, p99 and the ratios to the bare baseline and between the context variants;
5. profiles the context request in-process (Django's WSGI handler, no server): wall and CPU time per
   request and per stage of the view, with the context cache warm (what the load measures: engines
   polling a canvas that does not change) and cold (the cache dropped before every request: the first
   request after a write), then pyinstrument's call tree of the warm request (cProfile without it);
6. stops every process it started, also on Ctrl-C, SIGTERM or an error.

Client and server share the machine's cores, so absolute figures mean little: compare the ratios,
which come from the same run. See docs/performance.md, "Internal context".
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402 - after the path setup
    close_connections,
    ensure_wrk,
    free_port,
    log_tail,
    machine_note,
    migrate_and_setup_django,
    stop_process_group,
)

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/deal_canvas_bench_context"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"
SETTINGS_MODULE = "bench.context_settings"
WORKERS = 2
WRK_THREADS = 2
DEFAULT_CONNECTIONS = 8
LUA_REPORT = Path(__file__).resolve().parent / "context_wrk.lua"
CONTRACT_VERSION = "2026-02"
AGENT_ID = "strategy"
MAX_NODES = 200

CONTEXT_PATH = "/api/internal/canvas/context"
BARE_PATH = "/bench/internal-bare"
ORG_NAME = "Deal Canvas context bench"
DEAL_NAME = "Bench context: {n} stored nodes"

NODE_TYPES = ("strategy_item", "risk_item", "thesis_point", "diligence_task", "open_question")
RAW_STATUSES = ("pending", "pending", "in_review", "approved", "accepted", "rejected", "dismissed", "open")
FRAMEWORKS = ("swot", "porter", "pestle", None)
WORDS = (
    "occupancy rent roll capex refinance covenant lender sponsor submarket absorption supply cap rate "
    "exit basis spread leverage coverage insurance tax reassessment renovation premium comparables "
    "downside sensitivity tenant lease expiry concession vacancy growth employer zoning entitlement"
).split()


# --- environment ------------------------------------------------------------------------------------
def child_env(database_url: str, redis_url: str) -> dict[str, str]:
    env = {**os.environ}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": redis_url,
            "LANGGRAPH_DATABASE_URL": "",
            "DJANGO_ENV": "development",  # production would also force an HTTPS redirect
            "DJANGO_DEBUG": "false",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        }
    )
    return env


# --- the fixture ------------------------------------------------------------------------------------
@dataclass
class Fixture:
    deal_id: str
    user_id: str
    thread_id: str
    token: str
    stored_nodes: int
    edges: int
    reused: bool
    node_count: int = 0
    revision: str = ""

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token}",
            "X-Contract-Version": CONTRACT_VERSION,
            "X-User-Id": self.user_id,
            "X-Project-Id": self.deal_id,
            "X-Thread-Id": self.thread_id,
        }

    def query(self, **extra: object) -> str:
        params = {"agentId": AGENT_ID, "projectId": self.deal_id, "threadId": self.thread_id, **extra}
        return urlencode(params)


def memo_markdown() -> str:
    """The acquisition template's 9 sections, each a paragraph of about 120 words."""
    from canvas.memo.templates import ACQUISITION

    rng = random.Random(9)
    parts = []
    for spec in ACQUISITION.sections:
        body = " ".join(rng.choice(WORDS) for _ in range(120))
        parts.append(f"## {spec.title}\n\n{body.capitalize()}.\n")
    return "\n".join(parts)


def planned_edges(node_ids: list[str], section_keys: list[str]) -> list[tuple[str, str, str]]:
    """(from, type, to): every 5th node addresses a section, every 7th supports the node before it."""
    edges = []
    for i, node_id in enumerate(node_ids):
        if i % 5 == 0:
            edges.append((node_id, "addresses", f"section:{section_keys[i % len(section_keys)]}"))
        if i % 7 == 0 and i:
            edges.append((node_id, "supports", node_ids[i - 1]))
    return edges


def seed_nodes(deal, *, n: int, actor_id: str, thread_id: str, rebuild: bool) -> tuple[int, int, bool]:
    """`n` stored nodes and their edges in the deal's nodes and edges namespaces, written as node_create and
    link_create write them (same keys, same value shape) but in batches of PutOps. Reused when the
    namespace already holds exactly that many nodes and edges. Returns (nodes, edges, reused)."""
    from langgraph.store.base import PutOp

    from canvas.memo.store import read_memo
    from canvas.nodes import selectors as node_selectors
    from canvas.nodes import services as canvas_nodes
    from canvas_project.store import edges_namespace, get_store, nodes_namespace
    from deals.services import deal_nodes_touch

    store = get_store()
    namespace = nodes_namespace(deal.pk)
    edge_namespace = edges_namespace(deal.pk)
    section_keys = [s.key for s in read_memo(deal.pk).ordered_sections()]
    rng = random.Random(n)
    node_ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]
    edges = planned_edges(node_ids, section_keys)
    if n + len(edges) > node_selectors.MAX_STORED_NODES:
        raise SystemExit(
            f"{n} nodes + {len(edges)} edges exceed the {node_selectors.MAX_STORED_NODES} items "
            "canvas_graph reads per deal: choose fewer nodes"
        )
    existing = store.search(namespace, limit=node_selectors.MAX_STORED_NODES + 1)
    existing_edges = store.search(edge_namespace, limit=node_selectors.MAX_STORED_NODES + 1)
    have_nodes = sum(1 for item in existing if item.key.startswith(node_selectors.NODE_PREFIX))
    have_edges = len(existing_edges) if len(existing) == have_nodes else -1  # edges beside nodes: old layout
    if not rebuild and have_nodes == n and have_edges == len(edges):
        return n, len(edges), True

    def flush(ops: list) -> None:
        for start in range(0, len(ops), 500):
            store.batch(ops[start : start + 500])

    flush(
        [PutOp(namespace, item.key, None) for item in existing]
        + [PutOp(edge_namespace, item.key, None) for item in existing_edges]
    )
    base = datetime.now(UTC) - timedelta(seconds=n)
    ops = []
    for i, node_id in enumerate(node_ids):
        at = (base + timedelta(seconds=i)).isoformat()
        kind = NODE_TYPES[i % len(NODE_TYPES)]
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(40, 80)))
        value = {
            "id": node_id,
            "type": kind,
            "status": rng.choice(RAW_STATUSES),
            "title": f"{kind.replace('_', ' ').capitalize()} {i}: {' '.join(rng.sample(WORDS, 4))}",
            "content": words.capitalize() + ".",
            "section_key": section_keys[i % len(section_keys)],
            "agent_id": AGENT_ID if i % 3 else "drafter",
            "framework": FRAMEWORKS[i % len(FRAMEWORKS)],
            "thread_id": thread_id if i % 2 else None,
            "created_by": actor_id,
            "created_at": at,
            "updated_at": at,
        }
        ops.append(PutOp(namespace, node_selectors.NODE_PREFIX + node_id, value, index=False))
    at = datetime.now(UTC).isoformat()
    for source, edge_type, target in edges:
        edge = {"from": source, "to": target, "type": edge_type, "created_by": actor_id, "created_at": at}
        ops.append(PutOp(edge_namespace, canvas_nodes._edge_key(source, edge_type, target), edge, index=False))
    flush(ops)
    # as canvas.nodes.services does after every write: the context cache is validated by this counter
    deal_nodes_touch(deal=deal)
    return n, len(edges), False


def prepare(database_url: str, redis_url: str, n: int, rebuild: bool) -> Fixture:
    """Migrate the bench database; create org, users, deal, memo, thread and the stored nodes."""
    migrate_and_setup_django(child_env(database_url, redis_url))
    from django.conf import settings

    from canvas.memo import services as canvas_services
    from canvas.memo.store import read_memo
    from deals import services as deal_services
    from deals.models import Deal, DealAccess, DealRole, Org, OrgMembership, OrgRole, User
    from internal_api.models import ChatThread

    def user(username: str) -> User:
        found = User.objects.filter(username=username).first()
        return found or deal_services.user_create(
            username=username,
            password=None,
            email=f"{username}@bench.invalid",
            first_name=username.split("-")[-1].title(),
        )

    owner, analyst = user("bench-context-owner"), user("bench-context-analyst")
    org = Org.objects.filter(name=ORG_NAME).first() or deal_services.org_create(name=ORG_NAME, created_by=owner)
    OrgMembership.objects.get_or_create(org=org, user=analyst, defaults={"role": OrgRole.MEMBER})
    name = DEAL_NAME.format(n=n)
    deal = Deal.objects.filter(org=org, name=name).first() or deal_services.deal_create(
        user=owner, org=org, name=name, template_key="acquisition"
    )
    if not DealAccess.objects.filter(deal=deal, user=analyst).exists():
        deal_services.deal_access_grant(deal=deal, user=analyst, role=DealRole.EDITOR, granted_by=owner, field="user")
    doc = read_memo(deal.pk)
    if doc is None or not doc.populated_keys():
        canvas_services.canvas_save(deal=deal, user=analyst, content=memo_markdown(), base_version=None)
        deal.refresh_from_db()
    thread = ChatThread.objects.filter(deal=deal, user=analyst, agent_id=AGENT_ID).first() or ChatThread.objects.create(
        deal=deal, user=analyst, agent_id=AGENT_ID, title="bench context"
    )
    stored, edges, reused = seed_nodes(deal, n=n, actor_id=str(analyst.pk), thread_id=str(thread.pk), rebuild=rebuild)
    fixture = Fixture(
        deal_id=str(deal.pk),
        user_id=str(analyst.pk),
        thread_id=str(thread.pk),
        token=settings.BENCH_ENGINE_TOKEN,
        stored_nodes=stored,
        edges=edges,
        reused=reused,
    )
    close_connections()
    return fixture


# --- the server -------------------------------------------------------------------------------------
class Server:
    """gunicorn, sync WSGI workers, in its own process group (the arbiter and its workers), stopped as
    a group."""

    def __init__(self, env: dict[str, str], logdir: Path, workers: int) -> None:
        self.env = env
        self.port = free_port()
        self.workers = workers
        self.log_path = logdir / "gunicorn.log"
        self.process: subprocess.Popen | None = None
        self.label = f"gunicorn sync, {workers} workers"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, fixture: Fixture) -> Server:
        import httpx

        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "canvas_project.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--log-level",
            "warning",
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        url = f"{self.base_url}{BARE_PATH}?{fixture.query()}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, headers=fixture.headers(), timeout=2).status_code == 200:
                    return self
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within 60 s:\n{self.log_tail()}")

    def drain(self, fixture: Fixture, timeout: float = 180) -> float:
        """Wait until the requests wrk left queued have been served; returns the seconds it took.

        wrk stops by closing its connections, but sync workers still serve every request already
        in the listen backlog (up to `connections` of them, a second each for the heavy GETs), which
        would otherwise be charged to the next measurement. The backlog is FIFO: once one probe per
        worker, sent together after the leftovers, has been answered, every leftover has been served.
        """
        from concurrent.futures import ThreadPoolExecutor

        import httpx

        url = f"{self.base_url}{BARE_PATH}?{fixture.query()}"
        started = time.monotonic()

        def probe(_: int) -> int:
            return httpx.get(url, headers=fixture.headers(), timeout=timeout).status_code

        with ThreadPoolExecutor(self.workers) as pool:
            statuses = list(pool.map(probe, range(self.workers)))
        if any(status != 200 for status in statuses):
            raise RuntimeError(f"the drain probe answered {statuses}:\n{self.log_tail()}")
        return time.monotonic() - started

    def log_tail(self) -> str:
        return log_tail(self.log_path)

    def stop(self) -> None:
        if self.process is None:
            return
        stop_process_group(self.process, grace=15)
        self.process = None


# --- load -------------------------------------------------------------------------------------------
@dataclass
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    error_detail: str
    bytes_per_response: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def merge_rounds(parts: list[LoadResult]) -> LoadResult:
    """Rounds of one endpoint as one result: requests over the summed time; p50 and p99 are the
    medians of the rounds' percentiles (percentiles of separate runs cannot be summed)."""
    requests = sum(p.requests for p in parts)
    details = [f"round {i}: {p.error_detail}" for i, p in enumerate(parts, start=1) if p.errors]
    return LoadResult(
        requests=requests,
        seconds=sum(p.seconds for p in parts),
        p50_ms=statistics.median(p.p50_ms for p in parts),
        p99_ms=statistics.median(p.p99_ms for p in parts),
        errors=sum(p.errors for p in parts),
        error_detail="; ".join(details) or "-",
        bytes_per_response=sum(p.bytes_per_response * p.requests for p in parts) / max(1, requests),
    )


def run_wrk(wrk: str, url: str, headers: dict[str, str], seconds: int, connections: int) -> LoadResult:
    argv = [
        wrk,
        f"-t{min(WRK_THREADS, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_REPORT),
    ]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    done = subprocess.run([*argv, url], capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-1500:]} {done.stderr[-1500:]}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    kinds = ("connect", "read", "write", "status", "timeout")
    return LoadResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=sum(data[k] for k in kinds),
        error_detail=", ".join(f"{k} {data[k]}" for k in kinds if data[k]) or "-",
        bytes_per_response=data["bytes"] / max(1, data["requests"]),
    )


def _python_load_worker(args: tuple[str, dict[str, str], float, int]) -> tuple[int, int, int, list[float]]:
    """One process of the fallback load generator: `conns` threads, each with its own connection."""
    import http.client
    import threading

    url, headers, duration, conns = args
    parts = urlsplit(url)
    target = f"{parts.path}?{parts.query}"
    latencies: list[float] = []
    counters = {"ok": 0, "errors": 0, "bytes": 0}
    lock = threading.Lock()
    stop_at = time.monotonic() + duration

    def loop() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        mine, ok, bad, size = [], 0, 0, 0
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                conn.request("GET", target, headers=headers)
                response = conn.getresponse()
                body = response.read()
                if response.will_close:
                    conn.close()
                ok, bad = (ok + 1, bad) if response.status == 200 else (ok, bad + 1)
                size += len(body)
            except (OSError, http.client.HTTPException):
                bad += 1
                conn.close()
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
            counters["ok"] += ok
            counters["errors"] += bad
            counters["bytes"] += size

    threads = [threading.Thread(target=loop) for _ in range(conns)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counters["ok"], counters["errors"], counters["bytes"], latencies


def run_python_load(url: str, headers: dict[str, str], seconds: int, connections: int) -> LoadResult:
    """Fallback when wrk cannot be installed: 2 processes sharing `connections` threads (http.client).
    Heavier on the shared cores than wrk, so its figures are not comparable with wrk's."""
    import multiprocessing

    per = [connections // 2 + connections % 2, connections // 2]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        parts = pool.map(_python_load_worker, [(url, headers, seconds, c) for c in per if c])
    ok, errors = sum(p[0] for p in parts), sum(p[1] for p in parts)
    latencies = sorted(x for p in parts for x in p[3])
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return LoadResult(
        requests=ok + errors,
        seconds=seconds,
        p50_ms=q[49] * 1000,
        p99_ms=q[98] * 1000,
        errors=errors,
        error_detail=f"non-200 or socket {errors}" if errors else "-",
        bytes_per_response=sum(p[2] for p in parts) / max(1, ok),
    )


# --- the endpoints ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    key: str
    label: str
    path_and_query: str


def endpoints(fixture: Fixture) -> list[Endpoint]:
    ctx = f"{CONTEXT_PATH}?"
    return [
        Endpoint("bare", "bare contract endpoint (baseline)", f"{BARE_PATH}?{fixture.query()}"),
        Endpoint("ctx-200", f"context maxNodes={MAX_NODES}", ctx + fixture.query(maxNodes=MAX_NODES)),
        Endpoint(
            "ctx-full",
            f"context maxNodes={MAX_NODES} +content +relationships",
            ctx + fixture.query(maxNodes=MAX_NODES, includeContent="true", includeRelationships="true"),
        ),
        Endpoint(
            "unchanged",
            "context, unchanged contentRevision",
            ctx + fixture.query(maxNodes=MAX_NODES, revision=fixture.revision),
        ),
    ]


def check_responses(base_url: str, fixture: Fixture) -> None:
    """Every endpoint answers 200 with what it should contain, before any load."""
    import httpx

    with httpx.Client(headers=fixture.headers(), timeout=60) as client:
        first = client.get(f"{base_url}{CONTEXT_PATH}?{fixture.query(maxNodes=MAX_NODES)}")
        if first.status_code != 200:
            raise RuntimeError(f"context answered {first.status_code}: {first.text[:300]}")
        fixture.revision = first.json()["meta"]["contentRevision"]
        fixture.node_count = first.json()["data"]["canvas_context"]["summary"]["nodeCount"]
        for endpoint in endpoints(fixture):
            response = client.get(base_url + endpoint.path_and_query)
            if response.status_code != 200:
                raise RuntimeError(f"{endpoint.key} answered {response.status_code}: {response.text[:300]}")
            body = response.json()
            if endpoint.key == "bare":
                ok = body == {"success": True}
            else:
                context = body["data"]["canvas_context"]
                listed = context["nodes"]
                if endpoint.key == "unchanged":
                    ok = context.get("unchanged") is True and listed == [] and context["relationships"] == {}
                else:
                    ok = len(listed) == min(MAX_NODES, fixture.node_count) and context["unchanged"] is False
                    with_content = endpoint.key == "ctx-full"
                    ok = ok and all(("content" in n) is with_content for n in listed)
                    ok = ok and bool(context["relationships"]) is with_content
            if not ok:
                raise RuntimeError(f"{endpoint.key}: unexpected body {response.text[:400]}")


# --- where the time goes ----------------------------------------------------------------------------
# (label, module, class or None, function). The view and canvas_context look every one of them up at call
# time, so wrapping the module or class attribute times it.
STAGES = (
    ("contract checks: token, version, claims", "internal_api.viewsets", "ContractViewSet", "trusted_claims"),
    ("contract checks: query parameters", "internal_api.viewsets", None, "_query"),
    (
        "contract checks: scope, user, access, thread (3 SQL)",
        "internal_api.viewsets",
        "ContractViewSet",
        "scoped_access",
    ),
    ("context cache read (1 Redis round trip)", "internal_api.context_cache", "ContextReader", "__post_init__"),
    ("summary + derived nodes, brush findings", "internal_api.context_cache", "ContextReader", "snapshot"),
    ("page of stored nodes", "internal_api.context_cache", "ContextReader", "stored"),
    ("stored edges", "internal_api.context_cache", "ContextReader", "edges"),
    ("relationships_of", "canvas.nodes.selectors", None, "relationships_of"),
    ("contentRevision (canonical JSON + SHA-256)", "internal_api.context", None, "content_revision"),
    ("context cache write", "internal_api.context_cache", "ContextReader", "save"),
    ("JSON rendering (orjson)", "internal_api.viewsets", None, "fast_json"),
)


class StageTimer:
    """Wraps the STAGES' functions to add up their time while active."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self._restore: list[tuple[object, str, object]] = []

    def __enter__(self) -> StageTimer:
        import importlib

        for label, module_name, class_name, name in STAGES:
            owner = importlib.import_module(module_name)
            owner = getattr(owner, class_name) if class_name else owner
            original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)

            def timed(*args, _original=original, _label=label, **kwargs):
                started = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    self.spent[_label] = self.spent.get(_label, 0.0) + time.perf_counter() - started

            setattr(owner, name, timed)
            self._restore.append((owner, name, original))
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, original in reversed(self._restore):
            setattr(owner, name, original)
        self._restore.clear()


def wsgi_caller(fixture: Fixture):
    """call(path_and_query) -> body, through Django's WSGI handler in this process."""
    from django.core.handlers.wsgi import WSGIHandler

    app = WSGIHandler()
    header_environ = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in fixture.headers().items()}

    def call(path_and_query: str) -> bytes:
        path, _, query = path_and_query.partition("?")
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr,
            **header_environ,
        }
        statuses: list[str] = []
        body = b"".join(app(environ, lambda status, headers, *_: statuses.append(status)))
        if not statuses[0].startswith("200"):
            raise RuntimeError(f"in-process GET {path}: {statuses[0]} {body[:300]!r}")
        return body

    return call


def profile(fixture: Fixture, n: int) -> dict[str, float]:
    """Time every endpoint through Django's WSGI handler in this process (no server, no sockets, one
    thread): wall and CPU time per request with the context cache warm (what the load phase measures: engines
    polling a canvas that does not change) and cold (the cache dropped before every request: the first
    request after each write), split into the view's stages; then a statistical profile (pyinstrument when
    installed, else cProfile) of the warm context request. Returns warm wall ms per request by endpoint key."""
    from canvas_project import keys
    from canvas_project.redis_client import get_redis

    call = wsgi_caller(fixture)
    chosen = endpoints(fixture)
    redis = get_redis()
    cache_key = keys.context_key(fixture.deal_id)
    totals: dict[str, float] = {}
    cpu: dict[str, float] = {}
    parts: dict[str, dict[str, float]] = {}
    try:
        for cold in (False, True):
            for endpoint in chosen:
                key = endpoint.key + (" cold" if cold else "")
                for _ in range(3):
                    call(endpoint.path_and_query)
                elapsed = 0.0
                with StageTimer() as timer:
                    cpu_started = time.process_time()
                    for _ in range(n):
                        if cold:
                            redis.unlink(cache_key)
                        started = time.perf_counter()
                        call(endpoint.path_and_query)
                        elapsed += time.perf_counter() - started
                    cpu[key] = (time.process_time() - cpu_started) / n * 1000
                totals[key] = elapsed / n * 1000
                parts[key] = {label: s / n * 1000 for label, s in timer.spent.items()}

        print(
            f"\nwhere the time goes: {n} requests of each through Django's WSGI handler in this process "
            "(no server, no sockets), ms per request; `cold`: the context cache dropped before each request"
        )
        columns = [e.key for e in chosen] + [e.key + " cold" for e in chosen if e.key != "bare"]
        widths = [52] + [10] * len(columns)
        print(fmt_row(["stage", *[c.replace("unchanged", "unchg") for c in columns]], widths))
        for label, *_ in STAGES:
            cells = [f"{parts[k][label]:.2f}" if label in parts[k] else "-" for k in columns]
            print(fmt_row([label, *cells], widths))
        print(
            fmt_row(
                [
                    "everything else (Django, DRF, middleware, view)",
                    *[f"{totals[k] - sum(parts[k].values()):.2f}" for k in columns],
                ],
                widths,
            )
        )
        print(fmt_row(["total (wall)", *[f"{totals[k]:.2f}" for k in columns]], widths))
        print(fmt_row(["CPU time of this process", *[f"{cpu[k]:.2f}" for k in columns]], widths))
        print(
            fmt_row(
                ["total / bare's (wall)", *[f"{totals[k] / totals['bare']:.2f}" for k in columns]],
                widths,
            )
        )
        _statistical_profile(call, next(e for e in chosen if e.key == "ctx-200"), max(20, n))
    finally:
        close_connections()
    return totals


def _statistical_profile(call, endpoint: Endpoint, n: int) -> None:
    """pyinstrument's call tree of `n` warm requests (pip install pyinstrument), else cProfile's top list."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        Profiler = None  # noqa: N806 - the class, when installed
    if Profiler is not None:
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for _ in range(n):
            call(endpoint.path_and_query)
        profiler.stop()
        print(f"\npyinstrument, {n} warm requests of {endpoint.label}:")
        print(profiler.output_text(unicode=False, color=False, show_all=False))
        return
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        call(endpoint.path_and_query)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls"))
    print(f"\ncProfile (pyinstrument is not installed), {n} warm requests of {endpoint.label}, top 25 by cumulative:")
    print("\n".join(_shorten(ln) for ln in lines[start : start + 26]))


def _shorten(line: str) -> str:
    for marker in ("site-packages/", str(REPO) + "/", "/usr/lib/python3"):
        if marker in line:
            head, _, tail = line.partition(marker)
            line = head + ("~/" if marker != str(REPO) + "/" else "") + tail
    return line[:150]


# --- the run ----------------------------------------------------------------------------------------
def fmt_row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))


def ratio(a: float, b: float, digits: int = 2) -> str:
    return f"{a / b:.{digits}f}" if b else "-"


def report(chosen: list[Endpoint], load: dict[str, LoadResult], tool: str, connections: int) -> None:
    bare = load["bare"]
    widths = [46, 6, 7, 8, 8, 6, 8, 10, 8, 8]
    print(
        "\n"
        + fmt_row(
            [
                "GET (same run, same load)",
                "n",
                "req/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "KB/resp",
                "req/s/bare",
                "p50/bare",
                "p99/bare",
            ],
            widths,
        )
    )
    for endpoint in chosen:
        r = load[endpoint.key]
        print(
            fmt_row(
                [
                    endpoint.label,
                    str(r.requests),
                    f"{r.rps:.1f}",
                    f"{r.p50_ms:.1f}",
                    f"{r.p99_ms:.1f}",
                    str(r.errors),
                    f"{r.bytes_per_response / 1024:.1f}",
                    ratio(r.rps, bare.rps, 3),
                    ratio(r.p50_ms, bare.p50_ms, 1),
                    ratio(r.p99_ms, bare.p99_ms, 1),
                ],
                widths,
            )
        )
    errors = {k: r.error_detail for k, r in load.items() if r.errors}
    if errors:
        print("errors by kind: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    few = [k for k, r in load.items() if r.requests < 50]
    if few:
        print(
            f"note: fewer than 50 requests completed for {', '.join(few)}: their p99 is close to the maximum; "
            "a longer --duration gives a steadier tail"
        )
    full, unchanged, content = load["ctx-200"], load["unchanged"], load["ctx-full"]
    print(f"\nratios ({tool}, {connections} connections; p50 and p99 are the medians of the rounds'):")
    print(
        f"  unchanged revision / maxNodes={MAX_NODES}: req/s {ratio(unchanged.rps, full.rps)}, "
        f"p50 {ratio(unchanged.p50_ms, full.p50_ms)}, p99 {ratio(unchanged.p99_ms, full.p99_ms)}"
    )
    print(
        f"  +content +relationships / maxNodes={MAX_NODES}: req/s {ratio(content.rps, full.rps)}, "
        f"p50 {ratio(content.p50_ms, full.p50_ms)}, p99 {ratio(content.p99_ms, full.p99_ms)}"
    )
    print(
        f"  context maxNodes={MAX_NODES} / bare: req/s {ratio(full.rps, bare.rps, 3)}, "
        f"p50 {ratio(full.p50_ms, bare.p50_ms, 1)}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=5000, help="stored nodes on the canvas (default 5000)")
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per endpoint (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds alternating the endpoints (default 2)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load on each endpoint first")
    parser.add_argument(
        "--connections",
        type=int,
        default=DEFAULT_CONNECTIONS,
        help=f"concurrent connections (default {DEFAULT_CONNECTIONS})",
    )
    parser.add_argument("--workers", type=int, default=WORKERS, help=f"gunicorn workers (default {WORKERS})")
    parser.add_argument("--profile-requests", type=int, default=20, help="in-process requests per endpoint")
    parser.add_argument("--no-profile", action="store_true", help="skip the in-process profile")
    parser.add_argument("--rebuild", action="store_true", help="rewrite the stored nodes even when they match")
    parser.add_argument("--python-load", action="store_true", help="use the Python load generator, not wrk")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    args = parser.parse_args()
    if args.nodes < 1 or args.duration < 1 or args.rounds < 1 or args.connections < 1:
        parser.error("--nodes, --duration, --rounds and --connections must be positive")

    # Ctrl-C and SIGTERM unwind through the `finally` below, which stops the server (SIGINT is
    # re-armed because a shell may start a background job with it ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    wall = time.monotonic()
    wrk = None if args.python_load else ensure_wrk()
    tool = f"wrk ({WRK_THREADS} threads)" if wrk else "the Python load generator (http.client threads)"
    per_round = max(1, round(args.duration / args.rounds))
    print(f"bench/context  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  on {machine_note()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"load: {tool}, {args.connections} connections, {args.rounds} rounds x {per_round} s per endpoint "
        f"(+{args.warmup} s warm-up each); load average before the run {os.getloadavg()[0]:.2f}"
    )
    print(f"database {args.database_url}, redis {args.redis_url}")

    started = time.monotonic()
    fixture = prepare(args.database_url, args.redis_url, args.nodes, args.rebuild)
    print(
        f"fixture: {fixture.stored_nodes} stored nodes + {fixture.edges} edges "
        f"({'reused' if fixture.reused else f'written in {time.monotonic() - started:.1f} s'}), "
        f"memo of 9 sections, deal {fixture.deal_id}"
    )

    env = child_env(args.database_url, args.redis_url)
    logdir = Path(tempfile.mkdtemp(prefix="bench-context-"))
    server: Server | None = None
    load: dict[str, LoadResult] = {}
    try:
        server = Server(env, logdir, args.workers)
        print(f"starting {server.label} ...", flush=True)
        server.start(fixture)
        check_responses(server.base_url, fixture)
        chosen = endpoints(fixture)
        print(
            f"canvas: {fixture.node_count} nodes in the summary, revision {fixture.revision}; every endpoint "
            "answered 200 with the expected body",
            flush=True,
        )

        def measure(endpoint: Endpoint, seconds: int) -> LoadResult:
            url = server.base_url + endpoint.path_and_query
            server.drain(fixture)
            if wrk:
                return run_wrk(wrk, url, fixture.headers(), seconds, args.connections)
            return run_python_load(url, fixture.headers(), seconds, args.connections)

        if args.warmup:
            for endpoint in chosen:
                measure(endpoint, args.warmup)
        rounds: dict[str, list[LoadResult]] = {e.key: [] for e in chosen}
        for number in range(1, args.rounds + 1):
            # odd rounds in order, even rounds reversed: no endpoint always follows the same one
            for endpoint in chosen if number % 2 else chosen[::-1]:
                result = measure(endpoint, per_round)
                rounds[endpoint.key].append(result)
                print(
                    f"  round {number} {endpoint.key:<9} {result.rps:8.1f} req/s  p50 {result.p50_ms:8.1f} ms  "
                    f"p99 {result.p99_ms:8.1f} ms  errors {result.errors}",
                    flush=True,
                )
        load = {key: merge_rounds(parts) for key, parts in rounds.items()}
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(logdir, ignore_errors=True)

    report(chosen, load, tool, args.connections)
    if not args.no_profile:
        profile(fixture, args.profile_requests)
    print(f"\ntotal {time.monotonic() - wall:.0f} s; load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: the server started by the bench was stopped", file=sys.stderr)
        sys.exit(130)
    except SystemExit as exc:
        if exc.code == 143:
            print("\nterminated: the server started by the bench was stopped", file=sys.stderr)
        raise
