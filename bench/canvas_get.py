#!/usr/bin/env python3
"""Benchmark of GET /api/canvas/{deal_id}: which serving layout should serve the REST API?

    .venv/bin/python bench/canvas_get.py                  # about 3 minutes
    .venv/bin/python bench/canvas_get.py --duration 6     # a quicker, noisier run
    .venv/bin/python bench/canvas_get.py --profile        # also cProfile the view path in-process
    .venv/bin/python bench/canvas_get.py --cluster --layouts <key>   # + the same GET on a Redis Cluster

In one run, against a dedicated PostgreSQL database (deal_canvas_bench, created when missing) and
Redis database number (14); nothing shared is flushed or dropped:

1. migrates the bench database and, through the project's services, creates an org, an owner, an
   editor and a deal whose memo has 20 sections of about 500 words (the 9 of the acquisition
   template plus 11 custom `##` sections, saved with canvas.memo.services.canvas_save), and mints the
   editor's JWT;
2. starts each serving layout in turn as its own process group, each with 2 workers (2 cores):
   gunicorn WSGI sync workers, gunicorn WSGI gthread workers (4 threads each), granian WSGI (when
   the `bench` extra is installed) and uvicorn ASGI; all with DJANGO_SETTINGS_MODULE=bench.settings
   (the project's settings with DEBUG off, plus the bare endpoint);
3. runs wrk (2 threads, 32 connections; installed with apt-get when missing) against a bare
   authenticated DRF endpoint (GET /bench/bare: simplejwt + IsAuthenticated, {"ok": true}) and
   against the cached canvas GET and the same GET with `If-None-Match: <its ETag>` (the 304 stage) under
   each layout, and watches how many PostgreSQL connections the
   servers hold. Each layout is visited twice (order A B C D, then D C B A; bare and canvas swap
   order on the second visit), so load that other processes put on the shared cores weighs on all
   alike;
4. times the cold GET of the 20-section memo (its session key, from canvas_project.keys, deleted before each
   request), the cached GET and its 304, 50 sequential requests each with httpx, on each layout's first
   visit;
5. prints the figures, the ratios (canvas GET under its best layout / the faster bare baseline,
   goal >= 0.7; ASGI / WSGI per endpoint) and a verdict; when the goal is missed, times the steps of
   the view path in-process to show where the time goes. Every process it started is stopped, also
   on Ctrl-C, SIGTERM or an error.

Client and servers share the machine's cores, so absolute figures mean little: compare the ratios,
which come from the same run. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

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

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/deal_canvas_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
SETTINGS_MODULE = "bench.settings"
WORKERS = 2
THREADS = 4
CONNECTIONS = 32
WRK_THREADS = 2
SEQUENTIAL = 50
VISITS = 2
LUA_REPORT = Path(__file__).resolve().parent / "wrk_report.lua"

BARE_PATH = "/bench/bare"
ORG_NAME = "Deal Canvas bench"
DEAL_NAME = "Bench: 20-section acquisition memo"


# --- the memo ---------------------------------------------------------------------------------------
CUSTOM_TITLES = (
    "Sponsor Background",
    "Capital Expenditure Plan",
    "Comparable Sales",
    "Zoning and Entitlements",
    "Environmental Review",
    "Insurance Program",
    "Property Management",
    "Tax Considerations",
    "Sensitivity Analysis",
    "Exit Strategy",
    "ESG Considerations",
)
SENTENCES = (
    "The property comprises {units} units across {bldgs} garden-style buildings on {acres} acres, built in {year}.",
    "Trailing twelve-month net operating income is ${noi:,}, a {cap}% going-in cap rate on the ${price:,} price.",
    "Physical occupancy averaged {occ}% over the last four quarters, with economic occupancy {eocc}%.",
    "In-place rents of ${rent:,} per unit per month sit {gap}% below the renovated comparables within two miles.",
    "The submarket added {supply:,} units in the past three years while absorbing {absorb:,}, "
    "keeping vacancy near {vac}%.",
    "The business plan renovates {reno} interiors at ${capex:,} per unit, targeting a ${prem} monthly premium.",
    "Senior financing of ${loan:,} at {rate}% fixed for seven years gives a {dscr}x debt service coverage ratio.",
    "Base-case underwriting yields a {irr}% levered IRR and a {em}x equity multiple over a five-year hold.",
    "An exit cap rate of {exit}% is {spread} basis points above the going-in rate, a deliberately cautious assumption.",
    "Real estate taxes are underwritten at ${tax:,} after reassessment, {taxup}% above the seller's figure.",
    "Insurance premiums rose {ins}% at the last renewal; the budget carries a further ten percent increase.",
    "The largest employer within five miles has announced {jobs:,} new jobs, supporting rent growth "
    "of {growth}% a year.",
    "Downside sensitivity with rents flat and the exit cap {down} basis points wider still returns the equity.",
    "The sponsor has closed {deals} comparable acquisitions totalling ${aum:,} since {since}.",
    "Deferred maintenance identified in the property condition report totals ${dm:,}, mostly roofs and paving.",
    "Management will move to a third-party operator with a fee of {fee}% of effective gross income.",
)


def _figures(rng: random.Random) -> dict:
    price = rng.randrange(30_000_000, 60_000_000, 250_000)
    cap = round(rng.uniform(5.1, 6.4), 2)
    r, u = rng.randrange, rng.uniform
    return {
        "units": r(180, 320),
        "bldgs": r(8, 20),
        "acres": round(u(9, 22), 1),
        "year": r(1984, 2008),
        "noi": int(price * cap / 100),
        "cap": cap,
        "price": price,
        "occ": round(u(91, 97), 1),
        "eocc": round(u(86, 92), 1),
        "rent": r(1150, 1650),
        "gap": r(6, 15),
        "supply": r(900, 2600),
        "absorb": r(800, 2500),
        "vac": round(u(4, 7), 1),
        "reno": r(90, 200),
        "capex": r(9000, 16000, 500),
        "prem": r(125, 260, 5),
        "loan": int(price * 0.62),
        "rate": round(u(5.2, 6.6), 2),
        "dscr": round(u(1.25, 1.6), 2),
        "irr": round(u(13, 18), 1),
        "em": round(u(1.7, 2.1), 2),
        "exit": round(cap + 0.5, 2),
        "spread": 50,
        "tax": r(380_000, 720_000, 1000),
        "taxup": r(12, 30),
        "ins": r(15, 40),
        "jobs": r(800, 3500),
        "growth": round(u(2.5, 4.0), 1),
        "down": r(50, 125, 25),
        "deals": r(12, 40),
        "aum": r(400, 1500) * 1_000_000,
        "since": r(2004, 2014),
        "dm": r(300_000, 1_200_000, 5000),
        "fee": round(u(2.75, 3.5), 2),
    }


def _section_body(rng: random.Random, n: int, words: int = 500) -> str:
    """About `words` words of cited prose with figures; every third section also has a table."""
    figures = _figures(rng)
    paragraphs, paragraph, count = [], [], 0
    while count < words - 25:
        sentence = rng.choice(SENTENCES).format(**figures)
        paragraph.append(sentence)
        count += len(sentence.split())
        if len(paragraph) >= rng.randrange(4, 7):
            paragraphs.append(" ".join(paragraph))
            paragraph = []
    if paragraph:
        paragraphs.append(" ".join(paragraph))
    paragraphs[-1] += f"[^{n}]"
    if n % 3 == 0:
        paragraphs.insert(
            1,
            "| Metric | Year 1 | Year 3 | Year 5 |\n|---|---|---|---|\n"
            f"| NOI | ${figures['noi']:,} | ${int(figures['noi'] * 1.09):,} | "
            f"${int(figures['noi'] * 1.19):,} |\n"
            f"| Occupancy | {figures['occ']}% | 95.0% | 95.0% |",
        )
    return "\n\n".join(paragraphs) + f"\n\n[^{n}]: Offering Memorandum.pdf, p. {n + 3}"


def memo_markdown() -> str:
    """The 20-section memo: the acquisition template's 9 sections, then 11 custom ones."""
    from canvas.memo.templates import ACQUISITION

    rng = random.Random(20)
    titles = [spec.title for spec in ACQUISITION.sections] + list(CUSTOM_TITLES)
    return "\n".join(f"## {title}\n\n{_section_body(rng, n)}\n" for n, title in enumerate(titles, start=1))


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
            # Production serves with DEBUG off; DJANGO_ENV=production would also force an HTTPS redirect.
            "DJANGO_ENV": "development",
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
    token: str
    sections: int
    words: int
    memo_chars: int
    version: int


def prepare(database_url: str, redis_url: str) -> Fixture:
    """Migrate the bench database, create org, users, deal and the 20-section memo, mint the JWT."""
    migrate_and_setup_django(child_env(database_url, redis_url))
    from canvas.memo import services as canvas_services
    from canvas.memo.markdown import word_count
    from deals import services as deal_services
    from deals.models import Deal, DealAccess, DealRole, Org, OrgMembership, OrgRole, User
    from deals.tokens import token_pair_for_user

    def user(username: str) -> User:
        found = User.objects.filter(username=username).first()
        return found or deal_services.user_create(
            username=username,
            password=None,
            email=f"{username}@bench.invalid",
            first_name=username.split("-")[1].title(),
        )

    owner, editor = user("bench-owner"), user("bench-editor")
    org = Org.objects.filter(name=ORG_NAME).first()
    org = org or deal_services.org_create(name=ORG_NAME, created_by=owner)
    OrgMembership.objects.get_or_create(org=org, user=editor, defaults={"role": OrgRole.MEMBER})
    deal = Deal.objects.filter(org=org, name=DEAL_NAME).first() or deal_services.deal_create(
        user=owner, org=org, name=DEAL_NAME, template_key="acquisition"
    )
    if not DealAccess.objects.filter(deal=deal, user=editor).exists():
        deal_services.deal_access_grant(deal=deal, user=editor, role=DealRole.EDITOR, granted_by=owner, field="user")
    content = memo_markdown()
    canvas_services.canvas_save(deal=deal, user=editor, content=content, base_version=None)
    deal.refresh_from_db()
    payload = canvas_services.canvas_session_get(deal=deal, role=DealRole.EDITOR, user=editor)
    sections = payload["sections"]
    fixture = Fixture(
        deal_id=str(deal.pk),
        token=token_pair_for_user(user=editor)["access"],
        sections=len(sections),
        words=sum(word_count(s["markdown"]) for s in sections.values()),
        memo_chars=len(content),
        version=payload["version"],
    )
    if fixture.sections != 20:
        raise SystemExit(f"the bench memo has {fixture.sections} sections, expected 20")
    close_connections()
    return fixture


def drop_session_key(deal_id: str) -> None:
    from canvas_project import keys
    from canvas_project.redis_client import get_redis

    get_redis().unlink(keys.session_key(deal_id))


def session_key_exists(deal_id: str) -> bool:
    from canvas_project import keys
    from canvas_project.redis_client import get_redis

    return bool(get_redis().exists(keys.session_key(deal_id)))


def db_connection_mode() -> tuple[str, bool]:
    """How the settings hold PostgreSQL connections, and whether that leaks under ASGI (where every
    sync request runs on a fresh thread, so per-thread persistent connections pile up)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    pool = db.get("OPTIONS", {}).get("pool")
    if pool:
        size = pool.get("max_size", "default") if isinstance(pool, dict) else "default"
        return f"a psycopg pool per process (max_size {size})", False
    if db.get("CONN_MAX_AGE"):
        return f"one connection per thread, kept {db['CONN_MAX_AGE']} s (CONN_MAX_AGE)", True
    return "a new connection per request (CONN_MAX_AGE=0)", False


class ConnectionWatch:
    """The peak number of connections to the bench database while a measurement runs."""

    def __init__(self, database_url: str) -> None:
        parts = urlsplit(database_url)
        self.name = parts.path.lstrip("/")
        self.admin_url = urlunsplit(parts._replace(path="/postgres"))
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psycopg

        with contextlib.suppress(psycopg.Error), psycopg.connect(self.admin_url, autocommit=True) as conn:
            while not self._stop.is_set():
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.name,)).fetchone()
                self.peak = max(self.peak, row[0])
                self._stop.wait(0.25)

    def __enter__(self) -> ConnectionWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# --- servers ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    key: str
    interface: str  # WSGI or ASGI
    label: str
    argv: tuple[str, ...]  # with {port}


def layouts() -> list[Layout]:
    """Every layout to measure; granian's only when it is installed (the `bench` extra)."""
    py = sys.executable
    gunicorn = (
        py,
        "-m",
        "gunicorn",
        "canvas_project.wsgi:application",
        "--bind",
        "127.0.0.1:{port}",
        "--workers",
        str(WORKERS),
        "--log-level",
        "warning",
    )
    found = [
        Layout("wsgi-sync", "WSGI", f"gunicorn sync, {WORKERS} workers", gunicorn),
        Layout(
            "wsgi-gthread",
            "WSGI",
            f"gunicorn gthread, {WORKERS}x{THREADS} threads",
            (*gunicorn, "--worker-class", "gthread", "--threads", str(THREADS)),
        ),
    ]
    if importlib.util.find_spec("granian") is not None:
        found.append(
            Layout(
                "wsgi-granian",
                "WSGI",
                f"granian wsgi, {WORKERS} workers",
                (
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
                ),
            )
        )
    found.append(
        Layout(
            "asgi-uvicorn",
            "ASGI",
            f"uvicorn, {WORKERS} workers",
            (
                py,
                "-m",
                "uvicorn",
                "canvas_project.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--workers",
                str(WORKERS),
                "--no-access-log",
                "--log-level",
                "warning",
            ),
        )
    )
    return found


class Server:
    """One layout in its own process group (the server and its workers), stopped as a group."""

    def __init__(self, layout: Layout, env: dict[str, str], logdir: Path) -> None:
        self.layout = layout
        self.env = env
        self.port = free_port()
        self.log_path = logdir / f"{layout.key}.log"
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, token: str) -> Server:
        import httpx

        argv = [part.replace("{port}", str(self.port)) for part in self.layout.argv]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 60
        headers = {"Authorization": f"Bearer {token}"}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.layout.label} exited:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + BARE_PATH, headers=headers, timeout=2).status_code == 200:
                    return self
            time.sleep(0.2)
        raise RuntimeError(f"{self.layout.label} did not answer within 60 s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return log_tail(self.log_path)

    def stop(self) -> None:
        if self.process is None:
            return
        stop_process_group(self.process, grace=15)
        self.process = None


# --- load ------------------------------------------------------------------------------------------
@dataclass
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    error_detail: str
    bytes_per_response: float
    tool: str
    pg_peak: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def merge_visits(parts: list[LoadResult]) -> LoadResult:
    """The visits of one endpoint and layout as one result: requests over the summed time; p50 and
    p99 are the medians of the visits' percentiles (percentiles of separate runs do not add up)."""
    requests = sum(p.requests for p in parts)
    details = [f"visit {i}: {p.error_detail}" for i, p in enumerate(parts, start=1) if p.errors]
    return LoadResult(
        requests=requests,
        seconds=sum(p.seconds for p in parts),
        p50_ms=statistics.median(p.p50_ms for p in parts),
        p99_ms=statistics.median(p.p99_ms for p in parts),
        errors=sum(p.errors for p in parts),
        error_detail="; ".join(details) or "-",
        bytes_per_response=sum(p.bytes_per_response * p.requests for p in parts) / max(1, requests),
        tool=parts[0].tool,
    )


def run_wrk(wrk: str, url: str, token: str, duration: float, headers: dict[str, str] | None = None) -> LoadResult:
    seconds = max(1, round(duration))  # wrk takes whole seconds
    extra = [arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")]
    argv = [
        wrk,
        f"-t{WRK_THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_REPORT),
        "-H",
        f"Authorization: Bearer {token}",
        *extra,
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-1500:]} {done.stderr[-1500:]}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    kinds = ("connect", "read", "write", "status", "timeout")
    errors = sum(data[k] for k in kinds)
    detail = ", ".join(f"{k} {data[k]}" for k in kinds if data[k]) or "-"
    return LoadResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=errors,
        error_detail=detail,
        bytes_per_response=data["bytes"] / max(1, data["requests"]),
        tool="wrk",
    )


def _python_load_worker(args: tuple[str, str, float, int, dict]) -> tuple[int, int, int, list[float]]:
    """One process of the fallback load generator: `conns` threads, each a keep-alive connection."""
    import http.client
    import threading

    url, token, duration, conns, extra = args
    parts = urlsplit(url)
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
                conn.request("GET", parts.path, headers={"Authorization": f"Bearer {token}", **extra})
                response = conn.getresponse()
                body = response.read()
                if response.will_close:
                    conn.close()
                ok, bad = (ok + 1, bad) if response.status in (200, 304) else (ok, bad + 1)
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


def run_python_load(url: str, token: str, duration: float, headers: dict[str, str] | None = None) -> LoadResult:
    """Fallback when wrk cannot be installed: 2 processes x 16 threads. Slower than wrk and heavier on
    the shared cores, so its figures are not comparable with wrk's."""
    import multiprocessing

    per = CONNECTIONS // WRK_THREADS
    with multiprocessing.get_context("spawn").Pool(WRK_THREADS) as pool:
        parts = pool.map(_python_load_worker, [(url, token, duration, per, headers or {})] * WRK_THREADS)
    ok = sum(p[0] for p in parts)
    errors = sum(p[1] for p in parts)
    latencies = sorted(x for p in parts for x in p[3])
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return LoadResult(
        requests=ok + errors,
        seconds=duration,
        p50_ms=q[49] * 1000,
        p99_ms=q[98] * 1000,
        errors=errors,
        error_detail=f"non-200 or socket {errors}" if errors else "-",
        bytes_per_response=sum(p[2] for p in parts) / max(1, ok),
        tool="python",
    )


@dataclass
class Sequential:
    p50_ms: float
    p99_ms: float
    samples: list[float] = field(repr=False, default_factory=list)


def sequential_gets(
    url: str, token: str, n: int, before=None, headers: dict[str, str] | None = None, expect: int = 200
) -> Sequential:
    """n sequential GETs with httpx; `before()` runs before each one, outside the timing."""
    import httpx

    samples = []
    with httpx.Client(headers={"Authorization": f"Bearer {token}", **(headers or {})}, timeout=30) as client:
        for _ in range(n):
            if before is not None:
                before()
            started = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - started) * 1000)
            if response.status_code != expect:
                raise RuntimeError(f"GET {url} answered {response.status_code}: {response.text[:300]}")
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return Sequential(p50_ms=q[49], p99_ms=q[98], samples=samples)


# --- where the time goes ----------------------------------------------------------------------------
# (label, module, class or None, function): the steps of the cached GET's view path that are timed.
STAGES = (
    (
        "JWT authentication (loads the user: SQL 1)",
        "rest_framework_simplejwt.authentication",
        "JWTAuthentication",
        "authenticate",
    ),
    ("deal access check (deals.access: SQL 2)", "deals.viewsets", None, "resolve_deal_access"),
    ("session cache: Redis GET (no parse)", "canvas.memo.session", None, "cache_get_raw"),
    ("per-request fields spliced in (respond_bytes)", "canvas.memo.session", None, "respond_bytes"),
    ("DRF JSONRenderer.render", "rest_framework.renderers", "JSONRenderer", "render"),
)


def stage_breakdown(fixture: Fixture, n: int = 300, with_cprofile: bool = False) -> None:
    """Time the bare and the cached canvas GET through Django's WSGI handler in this process (no
    server, no sockets, one thread), with the main steps of the view path timed separately."""
    import cProfile
    import importlib
    import io
    import pstats
    import warnings

    from django.core.handlers.wsgi import WSGIHandler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. a static-files middleware missing collectstatic's folder
        app = WSGIHandler()

    def call(path: str) -> bytes:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr,
            "HTTP_AUTHORIZATION": f"Bearer {fixture.token}",
        }
        statuses: list[str] = []
        body = b"".join(app(environ, lambda status, headers, *_: statuses.append(status)))
        if not statuses[0].startswith("200"):
            raise RuntimeError(f"in-process GET {path}: {statuses[0]} {body[:300]!r}")
        return body

    spent: dict[str, float] = {}
    restore = []
    for label, module_name, class_name, name in STAGES:
        owner = importlib.import_module(module_name)
        owner = getattr(owner, class_name) if class_name else owner
        original = getattr(owner, name, None)
        if original is None:
            continue

        def timed(*args, _original=original, _label=label, **kwargs):
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_label] = spent.get(_label, 0.0) + time.perf_counter() - started

        setattr(owner, name, timed)
        restore.append((owner, name, original))

    totals: dict[str, float] = {}
    parts: dict[str, dict[str, float]] = {}
    try:
        for endpoint, path in (("bare", BARE_PATH), ("canvas", f"/api/canvas/{fixture.deal_id}")):
            for _ in range(30):
                call(path)
            spent.clear()
            started = time.perf_counter()
            for _ in range(n):
                call(path)
            totals[endpoint] = (time.perf_counter() - started) / n * 1000
            parts[endpoint] = {label: seconds / n * 1000 for label, seconds in spent.items()}
        if with_cprofile:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(n):
                call(f"/api/canvas/{fixture.deal_id}")
            profiler.disable()
    finally:
        for owner, name, original in restore:
            setattr(owner, name, original)
        close_connections()

    print(
        f"\nwhere the time goes: {n} GETs each through Django's WSGI handler in this process "
        "(no server, no sockets), ms per request:"
    )
    print(
        f"  bare GET {totals['bare']:.2f} ms; cached canvas GET {totals['canvas']:.2f} ms "
        f"(in-process ratio {totals['bare'] / totals['canvas']:.2f})"
    )
    for label, *_ in STAGES:
        if label in parts["canvas"]:
            bare_part = parts["bare"].get(label)
            also = f"   (bare: {bare_part:.2f})" if bare_part is not None else ""
            print(f"    {label:<44} {parts['canvas'][label]:6.2f}{also}")
    rest = totals["canvas"] - sum(parts["canvas"].values())
    print(f"    {'everything else (Django, DRF, middleware)':<44} {rest:6.2f}")
    if with_cprofile:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
        print("\ncProfile of the cached canvas GET, top 15 by own time:")
        print("\n".join(out.getvalue().splitlines()[4:30]))


# --- the run ---------------------------------------------------------------------------------------
def fmt_row(cells: list[str], widths: list[int]) -> str:
    pairs = enumerate(zip(cells, widths, strict=True))
    return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in pairs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration",
        type=int,
        default=12,
        help="seconds of load per endpoint and layout, split over 2 visits (default 12)",
    )
    parser.add_argument("--warmup", type=int, default=1, help="seconds of load before each measurement")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument(
        "--layouts",
        default=",".join(layout.key for layout in layouts()),
        help="comma-separated subset of: " + ", ".join(layout.key for layout in layouts()),
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="time the view path in-process and cProfile it (the timing alone runs whenever the goal is missed)",
    )
    parser.add_argument(
        "--python-load", action="store_true", help="use the Python fallback load generator even when wrk is available"
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="also serve the canvas GET on a throwaway Redis Cluster (first chosen layout) and print cluster/single",
    )
    args = parser.parse_args()
    duration = args.duration
    per_visit = max(1, duration // VISITS)

    # Ctrl-C and SIGTERM unwind through the `finally` below, which stops the servers (SIGINT is
    # re-armed because a shell may start a background job with it ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started_at = datetime.now(UTC)
    wall = time.monotonic()
    wrk = None if args.python_load else ensure_wrk()
    tool = f"wrk ({wrk})" if wrk else "the Python fallback load generator (not comparable with wrk)"
    chosen = [layout for layout in layouts() if layout.key in args.layouts.split(",")]

    print(f"bench/canvas_get  {started_at:%Y-%m-%d %H:%M} UTC  on {machine_note()}")
    print(
        f"load: {tool}, {WRK_THREADS} threads, {CONNECTIONS} connections; {per_visit * VISITS} s per endpoint "
        f"and layout, in {VISITS} visits of {per_visit} s (+{args.warmup} s warm-up each), layouts in the "
        f"order A B C D, then D C B A."
    )
    print(
        f"Client and servers share these {os.cpu_count()} cores; load average before the run "
        f"{os.getloadavg()[0]:.2f} (anything else running on the machine skews absolute figures)."
    )
    print(f"database {args.database_url}, redis {args.redis_url}")

    fixture = prepare(args.database_url, args.redis_url)
    canvas_path = f"/api/canvas/{fixture.deal_id}"
    db_mode, leaks_under_asgi = db_connection_mode()
    print(f"PostgreSQL connections: {db_mode}")
    print(
        f"memo: {fixture.sections} sections, {fixture.words:,} words, {fixture.memo_chars:,} characters "
        f"(version {fixture.version}); GET as an editor\n"
    )

    env = child_env(args.database_url, args.redis_url)
    load: dict[tuple[str, str], LoadResult] = {}
    cold: dict[str, Sequential] = {}
    cached: dict[str, Sequential] = {}
    not_modified: dict[str, Sequential] = {}
    logdir = Path(tempfile.mkdtemp(prefix="bench-canvas-get-"))
    server: Server | None = None

    def measure(url: str, seconds: float, headers: dict[str, str] | None = None) -> LoadResult:
        if wrk:
            return run_wrk(wrk, url, fixture.token, seconds, headers)
        return run_python_load(url, fixture.token, seconds, headers)

    # Each layout is visited twice, in the order A B C D then D C B A, and bare and canvas swap
    # order on the second visit: work that other processes put on the shared cores, rising or
    # falling during the run, then weighs on every layout and both endpoints alike.
    plan = [(visit, layout) for visit in range(VISITS) for layout in (chosen if visit % 2 == 0 else chosen[::-1])]
    parts: dict[tuple[str, str], list[LoadResult]] = {}
    pg_peak: dict[str, int] = {}
    try:
        for visit, layout in plan:
            print(f"[{layout.key}] visit {visit + 1} of {VISITS}: {layout.label}", flush=True)
            server_env = env
            if leaks_under_asgi and layout.interface == "ASGI":
                server_env = {**env, "DB_CONN_MAX_AGE": "0"}
                print("  with DB_CONN_MAX_AGE=0: per-thread persistent connections exhaust PostgreSQL under ASGI")
            server = Server(layout, server_env, logdir).start(fixture.token)
            canvas_url = server.base_url + canvas_path
            etag = current_etag(canvas_url, fixture.token)
            # "304": the cached canvas GET again, with If-None-Match naming the current ETag
            endpoints = [
                ("bare", server.base_url + BARE_PATH, None),
                ("canvas", canvas_url, None),
                ("304", canvas_url, {"If-None-Match": etag}),
            ]
            if visit % 2:
                endpoints.reverse()
            for endpoint, url, headers in endpoints:
                expect = 304 if headers else 200
                sequential_gets(url, fixture.token, 2, headers=headers, expect=expect)  # fills the session cache
                if endpoint != "bare" and not session_key_exists(fixture.deal_id):
                    raise RuntimeError("the canvas GET did not cache the session")
                if args.warmup:
                    measure(url, args.warmup, headers)
            with ConnectionWatch(args.database_url) as watch:
                for endpoint, url, headers in endpoints:
                    result = measure(url, per_visit, headers)
                    parts.setdefault((layout.key, endpoint), []).append(result)
                    print(
                        f"  {endpoint:<6} {result.rps:8.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
                        f"p99 {result.p99_ms:7.2f} ms  errors {result.errors}",
                        flush=True,
                    )
            pg_peak[layout.key] = max(pg_peak.get(layout.key, 0), watch.peak)
            if visit == 0:
                url = server.base_url + canvas_path
                cold[layout.key] = sequential_gets(
                    url, fixture.token, SEQUENTIAL, before=lambda: drop_session_key(fixture.deal_id)
                )
                cached[layout.key] = sequential_gets(url, fixture.token, SEQUENTIAL)
                not_modified[layout.key] = sequential_gets(
                    url, fixture.token, SEQUENTIAL, headers={"If-None-Match": etag}, expect=304
                )
                print(
                    f"  {SEQUENTIAL} sequential GETs of the memo: cold p50 {cold[layout.key].p50_ms:.1f} ms, "
                    f"cached p50 {cached[layout.key].p50_ms:.1f} ms, 304 p50 {not_modified[layout.key].p50_ms:.1f} ms",
                    flush=True,
                )
            server.stop()
            server = None
        for (key, endpoint), results in parts.items():
            load[(key, endpoint)] = merge_visits(results)
            load[(key, endpoint)].pg_peak = pg_peak[key]
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(logdir, ignore_errors=True)

    goal = report(chosen, load, cold, cached, tool)
    report_304(chosen, load, cached, not_modified)
    if args.cluster:
        cluster_phase(chosen[0], env, fixture, canvas_path, per_visit, args.warmup, measure)
    if args.profile or goal < 0.7:
        stage_breakdown(fixture, with_cprofile=args.profile)
    print(f"\ntotal {time.monotonic() - wall:.0f} s; load average at the end {os.getloadavg()[0]:.2f}")
    return 0


def cluster_phase(layout: Layout, env: dict[str, str], fixture: Fixture, path: str, seconds: int, warmup: int, measure):
    """The cached and the cold canvas GET with the session cache on a throwaway Redis Cluster (3 primaries,
    1 replica each, REDIS_CLUSTER=true, REDIS_URL naming one node) against the same layout on the single
    node, visited single, cluster, cluster, single so that the machine's noise weighs on both alike."""
    from canvas_project import keys
    from canvas_project.redis_client import cluster_client
    from tests.servers import ThrowawayRedisCluster

    print(f"\nRedis Cluster vs single node, layout [{layout.key}] {layout.label}:", flush=True)
    logdir = Path(tempfile.mkdtemp(prefix="bench-canvas-get-cluster-"))
    parts: dict[str, list[LoadResult]] = {"single": [], "cluster": []}
    cold: dict[str, Sequential] = {}
    with ThrowawayRedisCluster(primaries=3, replicas_per_primary=1) as cluster:
        # the broker stays the single node's URL: Celery cannot use a cluster (nothing is enqueued here)
        cluster_env = {**env, "REDIS_CLUSTER": "true", "REDIS_URL": cluster.url}
        dropping = {
            "single": lambda: drop_session_key(fixture.deal_id),
            "cluster": lambda: cluster_client(cluster.url).unlink(keys.session_key(fixture.deal_id)),
        }
        for turn in ("single", "cluster", "cluster", "single"):
            server = Server(layout, cluster_env if turn == "cluster" else env, logdir).start(fixture.token)
            try:
                url = server.base_url + path
                sequential_gets(url, fixture.token, 2)  # fills the session cache
                if warmup:
                    measure(url, warmup)
                result = measure(url, seconds)
                parts[turn].append(result)
                if turn not in cold:
                    cold[turn] = sequential_gets(url, fixture.token, SEQUENTIAL, before=dropping[turn])
                print(
                    f"  {turn:<7} cached GET {result.rps:8.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
                    f"p99 {result.p99_ms:7.2f} ms  errors {result.errors}",
                    flush=True,
                )
            finally:
                server.stop()
    shutil.rmtree(logdir, ignore_errors=True)
    single, clustered = merge_visits(parts["single"]), merge_visits(parts["cluster"])
    print("ratios, Redis Cluster / single node (same run, same layout):")
    print(
        f"  cached GET throughput {clustered.rps / single.rps:.2f}x  ({clustered.rps:.0f} vs {single.rps:.0f} req/s); "
        f"p50 {clustered.p50_ms / single.p50_ms:.2f}x ({clustered.p50_ms:.2f} vs {single.p50_ms:.2f} ms); "
        f"errors {clustered.errors} vs {single.errors}"
    )
    print(
        f"  cold GET ({SEQUENTIAL} sequential, session key dropped before each) p50 "
        f"{cold['cluster'].p50_ms / cold['single'].p50_ms:.2f}x  ({cold['cluster'].p50_ms:.1f} vs "
        f"{cold['single'].p50_ms:.1f} ms)"
    )


def current_etag(url: str, token: str) -> str:
    """The ETag of the canvas GET for the bench's caller (the 304 stage sends it back)."""
    import httpx

    response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    if response.status_code != 200 or not response.headers.get("ETag"):
        raise RuntimeError(f"GET {url} gave no ETag ({response.status_code})")
    return response.headers["ETag"]


def report_304(chosen: list[Layout], load: dict, cached: dict, not_modified: dict) -> None:
    """The 304 stage: If-None-Match with the current ETag against the cached 200, same run, same layout."""
    widths = [36, 12, 12, 10, 14, 14, 10]
    print(
        "\n"
        + fmt_row(
            [
                "304 vs cached 200 (same run)",
                "200 req/s",
                "304 req/s",
                "304/200",
                "200 p50 (seq)",
                "304 p50 (seq)",
                "seq ratio",
            ],
            widths,
        )
    )
    for layout in chosen:
        ok, nm = load[(layout.key, "canvas")], load[(layout.key, "304")]
        c, n = cached[layout.key], not_modified[layout.key]
        print(
            fmt_row(
                [
                    f"{layout.interface} {layout.label}",
                    f"{ok.rps:.0f}",
                    f"{nm.rps:.0f}",
                    f"{nm.rps / ok.rps:.2f}",
                    f"{c.p50_ms:.2f} ms",
                    f"{n.p50_ms:.2f} ms",
                    f"{c.p50_ms / n.p50_ms:.2f}x",
                ],
                widths,
            )
        )
    print("  304/200 above 1: a 304 answers faster than the cached 200 (no body is sent).")


def report(chosen: list[Layout], load: dict, cold: dict, cached: dict, tool: str) -> float:
    """Print the tables, the ratios and the verdict; returns canvas GET (best) / faster bare."""
    by_key = {layout.key: layout for layout in chosen}
    widths = [36, 6, 7, 8, 8, 6, 7, 8]
    header = ["layout (2 workers each)", "GET", "req/s", "p50 ms", "p99 ms", "errors", "KB/resp", "PG conns"]
    print("\n" + fmt_row(header, widths))
    for layout in chosen:
        for endpoint in ("bare", "canvas", "304"):
            r = load[(layout.key, endpoint)]
            print(
                fmt_row(
                    [
                        f"{layout.interface} {layout.label}",
                        endpoint,
                        f"{r.rps:.0f}",
                        f"{r.p50_ms:.2f}",
                        f"{r.p99_ms:.2f}",
                        str(r.errors),
                        f"{r.bytes_per_response / 1024:.1f}",
                        str(r.pg_peak),
                    ],
                    widths,
                )
            )
    errors = {f"{k[0]}/{k[1]}": r.error_detail for k, r in load.items() if r.errors}
    if errors:
        print("errors by kind: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))

    seq_widths = [36, 10, 10, 11, 11, 11]
    print(
        "\n"
        + fmt_row(
            [
                f"sequential GET x{SEQUENTIAL}, 20 sections",
                "cold p50",
                "cold p99",
                "cached p50",
                "cached p99",
                "cold/cached",
            ],
            seq_widths,
        )
    )
    for layout in chosen:
        c, h = cold[layout.key], cached[layout.key]
        print(
            fmt_row(
                [
                    f"{layout.interface} {layout.label}",
                    f"{c.p50_ms:.1f} ms",
                    f"{c.p99_ms:.1f} ms",
                    f"{h.p50_ms:.1f} ms",
                    f"{h.p99_ms:.1f} ms",
                    f"{c.p50_ms / h.p50_ms:.1f}x",
                ],
                seq_widths,
            )
        )

    def best(endpoint: str, interface: str | None = None) -> tuple[str, LoadResult]:
        rows = [(k, load[(k, endpoint)]) for k in by_key if interface is None or by_key[k].interface == interface]
        return max(rows, key=lambda row: row[1].rps)

    canvas_key, canvas = best("canvas")
    bare_key, bare = best("bare")
    goal = canvas.rps / bare.rps
    print(f"\nratios (same run; {tool}):")
    print(
        f"  canvas GET under its best layout ({canvas_key}) / faster bare baseline ({bare_key}): "
        f"{goal:.2f}   (goal >= 0.70: {'met' if goal >= 0.7 else 'NOT met'})"
    )
    for layout in chosen:
        own = load[(layout.key, "canvas")].rps / load[(layout.key, "bare")].rps
        print(f"  canvas / bare under {layout.key}: {own:.2f}")
    interfaces = {layout.interface for layout in chosen}
    verdict_ratio = None
    if interfaces == {"WSGI", "ASGI"}:
        for endpoint in ("bare", "canvas"):
            wk, w = best(endpoint, "WSGI")
            ak, a = best(endpoint, "ASGI")
            ratio = a.rps / w.rps
            if endpoint == "canvas":
                verdict_ratio = ratio
            print(f"  ASGI / WSGI, {endpoint:<6} ({ak} vs {wk}): {ratio:.2f} req/s, p99 {a.p99_ms / w.p99_ms:.2f}x")
        c_wsgi = statistics.median(cold[k].p50_ms for k in by_key if by_key[k].interface == "WSGI")
        c_asgi = statistics.median(cold[k].p50_ms for k in by_key if by_key[k].interface == "ASGI")
        print(f"  cold GET p50, ASGI / WSGI: {c_asgi / c_wsgi:.2f}")
    c = cold[canvas_key]
    h = cached[canvas_key]
    print(
        f"  cold / cached GET p50 under {canvas_key}: {c.p50_ms / h.p50_ms:.1f}x "
        f"({c.p50_ms:.1f} ms vs {h.p50_ms:.1f} ms)"
    )

    layout = by_key[canvas_key]
    if verdict_ratio is not None and layout.interface == "WSGI":
        verdict = (
            f"serve REST with {layout.label} (WSGI): sync DRF views under ASGI did "
            f"{verdict_ratio:.2f}x the WSGI throughput on the canvas GET; keep uvicorn (ASGI) for the "
            f"SSE streams only"
        )
    elif verdict_ratio is not None:
        verdict = (
            f"serve REST with {layout.label} (ASGI): it matched or beat WSGI ({verdict_ratio:.2f}x) "
            f"on the canvas GET, so one ASGI layout can serve REST and SSE"
        )
    else:
        verdict = f"best measured layout for the canvas GET: {layout.label} ({layout.interface})"
    print(
        f"\nverdict: {verdict}; canvas GET at {goal:.2f} of the bare baseline "
        f"({'goal met' if goal >= 0.7 else 'below the 0.7 goal'})."
    )
    return goal


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: every server started by the bench was stopped", file=sys.stderr)
        sys.exit(130)
    except SystemExit as exc:
        if exc.code == 143:
            print("\nterminated: every server started by the bench was stopped", file=sys.stderr)
        raise
