#!/usr/bin/env python3
"""Benchmark of ingestion + synthesis: 20 documents (about 300 pages) uploaded, ingested and drafted.

    .venv/bin/python bench/synthesis.py                 # about 1-2 minutes
    .venv/bin/python bench/synthesis.py --rounds 2      # alternate the order twice (noisy machines)

In one run, against a dedicated PostgreSQL database (deal_canvas_bench_synthesis, created when missing)
and Redis database number (13); nothing shared is flushed or dropped:

1. builds 20 real documents with the test builders' libraries: 16 PDFs of 18 pages (reportlab) and 4
   workbooks of 3 sheets (openpyxl), 300 pages of deal text with figures, deterministic;
2. starts the service as production runs it, each as its own process: a Celery worker
   (`celery -A canvas_project worker`, prefork, concurrency 2 = the machine's 2 cores) and the ASGI
   app under uvicorn (SSE);
3. per round, on two fresh deals, over HTTP as a client would:
   - ingest only (the baseline): upload the 20 files, wait until every document is ready;
   - ingest + generate: upload the 20 files, wait until ready, POST /generate, follow the run's SSE
     stream to `done`;
4. prints total times, the time from POST /generate to the first SSE event and to the first drafted
   text (`message`), the generate share, and peak memory (RSS, summed over the worker's process tree,
   and the largest single worker process) sampled every 50 ms; then the ratio
   (ingest + generate) / ingest-only of the same round.

Client and servers share the 2 cores, so absolute figures mean little: read the ratios.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import ensure_database  # noqa: E402 - after the path setup

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/deal_canvas_bench_synthesis"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
PDFS, PDF_PAGES, WORKBOOKS, SHEETS = 16, 18, 4, 3
SEED = 20261122

TOPICS = [
    (
        "Investment thesis",
        "The investment thesis rests on in-place cash flow, a discount to replacement cost and "
        "rent growth; the purchase price is ${price:,} and returns exceed the fund target.",
    ),
    (
        "Property description",
        "The property comprises {units} units built in {year} on {acres} acres, totalling "
        "{sf:,} square feet, with a pool, fitness centre and covered parking.",
    ),
    (
        "Market overview",
        "Submarket vacancy is {vac}% and average rents grew {growth}% last year; new supply is "
        "limited while demand from job growth absorbed {absorb:,} units.",
    ),
    (
        "Rent roll",
        "The rent roll shows occupancy of {occ}% with lease expirations spread evenly; tenants are "
        "predominantly young professionals.",
    ),
    (
        "Financial summary",
        "Net operating income is ${noi:,} on revenue of ${rev:,}; operating expenses of "
        "${opex:,} include taxes, insurance and payroll.",
    ),
    (
        "Underwriting",
        "The model projects a levered IRR of {irr}% and an equity multiple of {em}x over a five year "
        "hold, with cash on cash averaging {coc}% and an exit cap rate of {exitcap}%.",
    ),
    ("Financing", "The senior loan is ${loan:,} at {rate}% fixed; debt service coverage is {dscr}x in year one."),
    (
        "Risks",
        "The key risk is rising insurance cost; the mitigant is a fixed policy. Downside sensitivity shows "
        "the IRR falling to {down}% if rents stay flat.",
    ),
    (
        "Recommendation",
        "We recommend that the committee approve the acquisition subject to conditions: a "
        "property condition report and a loan commitment. Next steps are legal diligence.",
    ),
]


# --- the corpus -----------------------------------------------------------------------------------------
def _facts(rng: random.Random) -> dict:
    price = rng.randrange(30, 90) * 500_000
    noi = int(price * rng.uniform(0.05, 0.065))
    return {
        "price": price,
        "units": rng.randrange(120, 400),
        "year": rng.randrange(1975, 2015),
        "acres": rng.randrange(5, 20),
        "sf": rng.randrange(100, 400) * 1000,
        "vac": round(rng.uniform(3, 8), 1),
        "growth": round(rng.uniform(1, 6), 1),
        "absorb": rng.randrange(500, 3000),
        "occ": rng.randrange(88, 98),
        "noi": noi,
        "rev": int(noi * 1.7),
        "opex": int(noi * 0.7),
        "irr": round(rng.uniform(11, 18), 1),
        "em": round(rng.uniform(1.6, 2.3), 2),
        "coc": round(rng.uniform(5, 9), 1),
        "exitcap": round(rng.uniform(5.5, 7), 2),
        "loan": int(price * 0.65),
        "rate": round(rng.uniform(4, 7), 2),
        "dscr": round(rng.uniform(1.2, 1.8), 2),
        "down": round(rng.uniform(6, 10), 1),
    }


def _wrap(text: str, width: int = 92) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines


def build_pdf(rng: random.Random, facts: dict, pages: int) -> bytes:
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=letter)
    _, height = letter
    for page in range(pages):
        title, template = TOPICS[page % len(TOPICS)]
        pdf.setFont("Helvetica-Bold", 14)
        pdf.drawString(60, height - 60, f"{title} ({page + 1})")
        pdf.setFont("Helvetica", 9)
        y = height - 84
        paragraphs = [template.format(**facts)] + [
            " ".join(
                rng.choice(("The", "Our", "This"))
                + " "
                + rng.choice(TOPICS)[0].lower()
                + " review notes "
                + rng.choice(("stable", "improving", "resilient", "competitive"))
                + " conditions."
                for _ in range(6)
            )
            for _ in range(5)
        ]
        for paragraph in paragraphs:
            for line in _wrap(paragraph):
                pdf.drawString(60, y, line)
                y -= 12
            y -= 6
        pdf.showPage()
    pdf.save()
    return out.getvalue()


def build_xlsx(rng: random.Random, facts: dict) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    returns = book.active
    returns.title = "Returns"
    returns.append(["Metric", "Value", "Note"])
    for row in (
        ("Purchase price", facts["price"], "Asking"),
        ("Levered IRR", f"{facts['irr']}%", "5-year hold"),
        ("Equity multiple", f"{facts['em']}x", ""),
        ("LTV", "65%", "Senior loan"),
        ("DSCR", f"{facts['dscr']}x", "Year 1"),
    ):
        returns.append(list(row))
    for name in ("Cash flow", "Rent roll")[: SHEETS - 1]:
        sheet = book.create_sheet(name)
        sheet.append(["Year", "Revenue", "NOI", "Debt service"])
        for year in range(1, 31):
            sheet.append(
                [
                    year,
                    facts["rev"] + year * rng.randrange(1000, 9000),
                    facts["noi"] + year * 1000,
                    int(facts["loan"] * 0.06),
                ]
            )
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def build_corpus() -> list[tuple[str, bytes]]:
    rng = random.Random(SEED)
    facts = _facts(rng)
    files = [(f"Offering Memorandum {n + 1}.pdf", build_pdf(rng, facts, PDF_PAGES)) for n in range(PDFS)]
    files += [(f"Underwriting Model {n + 1}.xlsx", build_xlsx(rng, facts)) for n in range(WORKBOOKS)]
    return files


# --- the environment ------------------------------------------------------------------------------------
def child_env(database_url: str, redis_url: str, media: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "LANGGRAPH_DATABASE_URL": "",
        "MEDIA_ROOT": media,
        "DJANGO_DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Processes:
    """Children started in their own process groups; all stopped on exit, Ctrl-C or SIGTERM."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen] = []

    def start(self, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        child = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
        )
        self.children.append(child)
        return child

    def stop(self) -> None:
        for child in self.children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait(5)


class MemoryWatch:
    """Peak RSS of a process tree (summed) and of its largest process, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.peak_total = 0
        self.peak_single = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                rss = [p.memory_info().rss for p in [self.root, *self.root.children(recursive=True)]]
            except psutil.Error:
                rss = []
            if rss:
                self.peak_total = max(self.peak_total, sum(rss))
                self.peak_single = max(self.peak_single, max(rss))
            time.sleep(0.05)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(2)


# --- one deal -------------------------------------------------------------------------------------------
def new_deal(name: str) -> tuple[str, str]:
    from deals.models import Deal, DealAccess, Org, OrgMembership, OrgRole, User
    from deals.tokens import token_pair_for_user

    user = User.objects.filter(username="bench-synthesis").first()
    if user is None:
        user = User.objects.create_user(username="bench-synthesis", password="bench-synthesis-pass")
    org = Org.objects.filter(name="Bench synthesis").first() or Org.objects.create(name="Bench synthesis")
    OrgMembership.objects.get_or_create(org=org, user=user, defaults={"role": OrgRole.ADMIN})
    deal = Deal.objects.create(org=org, name=name, created_by=user)
    DealAccess.objects.create(deal=deal, user=user, role="owner")
    return str(deal.pk), token_pair_for_user(user=user)["access"]


def upload_and_ingest(base: str, deal_id: str, token: str, files: list[tuple[str, bytes]]) -> float:
    import httpx

    from deals.models import Document

    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    with httpx.Client(timeout=60) as client:
        for name, content in files:
            response = client.post(
                f"{base}/api/deals/{deal_id}/documents", headers=headers, files={"file": (name, content)}
            )
            response.raise_for_status()
    while True:
        states = list(Document.objects.filter(deal_id=deal_id).values_list("state", flat=True))
        if len(states) == len(files) and all(s in ("ready", "failed") for s in states):
            failed = states.count("failed")
            if failed:
                raise SystemExit(f"{failed} document(s) failed to ingest")
            return time.perf_counter() - started
        time.sleep(0.05)


def generate_and_follow(base: str, deal_id: str, token: str) -> dict:
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    run = httpx.post(f"{base}/api/canvas/{deal_id}/generate", json={}, headers=headers, timeout=30)
    run.raise_for_status()
    first_event = first_message = None
    count = 0
    with httpx.stream(
        "GET",
        base + run.json()["stream_url"],
        headers={**headers, "Accept": "text/event-stream"},
        timeout=httpx.Timeout(30, read=300),
    ) as stream:
        event = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
                count += 1
                now = time.perf_counter() - started
                first_event = first_event if first_event is not None else now
                if event == "message" and first_message is None:
                    first_message = now
            elif line.startswith("data:") and event == "done":
                status = json.loads(line.split(":", 1)[1])["status"]
                return {
                    "generate": time.perf_counter() - started,
                    "first_event": first_event,
                    "first_message": first_message,
                    "events": count,
                    "status": status,
                    "run_id": run.json()["run_id"],
                }
    raise SystemExit("the run stream ended without `done`")


# --- main -----------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    args = parser.parse_args()

    media = tempfile.mkdtemp(prefix="bench-synthesis-media-")
    logs = Path(tempfile.mkdtemp(prefix="bench-synthesis-logs-"))
    env = child_env(args.database_url, args.redis_url, media)
    ensure_database(args.database_url)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=env, check=True)
    os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
    import django

    django.setup()
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()  # the bench's own database number only

    built = time.perf_counter()
    files = build_corpus()
    pages = PDFS * PDF_PAGES + WORKBOOKS * SHEETS
    print(
        f"corpus: {len(files)} documents, {pages} pages, {sum(len(c) for _, c in files) / 1e6:.1f} MB "
        f"(built in {time.perf_counter() - built:.1f} s)",
        flush=True,
    )

    processes = Processes()
    signal.signal(signal.SIGTERM, lambda *_: (processes.stop(), sys.exit(143)))
    port = free_port()
    celery = str(Path(sys.executable).parent / "celery")
    try:
        worker = processes.start(
            [
                celery,
                "-A",
                "canvas_project",
                "worker",
                "--concurrency",
                "2",
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
            ],
            env,
            logs / "worker.log",
        )
        processes.start(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "canvas_project.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env,
            logs / "uvicorn.log",
        )
        base = f"http://127.0.0.1:{port}"
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/api/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the service did not start; see {logs}") from None
                time.sleep(0.2)
        time.sleep(3)  # let the worker's pool come up

        results = []
        for round_number in range(args.rounds):
            order = ("ingest", "full") if round_number % 2 == 0 else ("full", "ingest")
            row: dict = {}
            for phase in order:
                deal_id, token = new_deal(f"bench {phase} {round_number}")
                with MemoryWatch(worker.pid) as memory:
                    started = time.perf_counter()
                    ingest = upload_and_ingest(base, deal_id, token, files)
                    generated = generate_and_follow(base, deal_id, token) if phase == "full" else None
                    total = time.perf_counter() - started
                row[phase] = {
                    "total": total,
                    "ingest": ingest,
                    "peak_total_mb": memory.peak_total / 2**20,
                    "peak_single_mb": memory.peak_single / 2**20,
                    **(generated or {}),
                }
                detail = ""
                if generated:
                    detail = (
                        f", generate {generated['generate']:5.2f} s, first SSE event "
                        f"{generated['first_event'] * 1000:6.0f} ms, first text "
                        f"{generated['first_message'] * 1000:6.0f} ms, {generated['events']} events, "
                        f"{generated['status']}"
                    )
                print(
                    f"round {round_number + 1} {phase:6}: total {total:6.2f} s, ingest {ingest:6.2f} s{detail}, "
                    f"worker peak RSS {memory.peak_total / 2**20:6.0f} MB (largest process "
                    f"{memory.peak_single / 2**20:4.0f} MB)",
                    flush=True,
                )
            results.append(row)
    finally:
        processes.stop()

    def median(phase: str, key: str) -> float:
        return statistics.median(r[phase][key] for r in results)

    full, ingest_only = median("full", "total"), median("ingest", "total")
    print()
    print(f"ingest only          : {ingest_only:6.2f} s for {len(files)} documents / {pages} pages")
    print(f"ingest + generate    : {full:6.2f} s  (ratio to ingest only {full / ingest_only:4.2f}x)")
    print(
        f"generate (9 sections): {median('full', 'generate'):6.2f} s  "
        f"({median('full', 'generate') / ingest_only:4.2f}x the ingest-only time)"
    )
    print(
        f"POST /generate -> first SSE event {median('full', 'first_event') * 1000:5.0f} ms, "
        f"first drafted text {median('full', 'first_message') * 1000:5.0f} ms"
    )
    print(
        f"worker peak RSS (process tree): ingest only {median('ingest', 'peak_total_mb'):5.0f} MB, "
        f"ingest + generate {median('full', 'peak_total_mb'):5.0f} MB "
        f"({median('full', 'peak_total_mb') / median('ingest', 'peak_total_mb'):4.2f}x); largest process "
        f"{median('full', 'peak_single_mb'):4.0f} MB"
    )
    print(f"logs: {logs}")


if __name__ == "__main__":
    main()
