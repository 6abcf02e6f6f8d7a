"""What every bench script shares: its own database (created, migrated, Django set up), spare ports, wrk, a note on
the machine, and stopping the servers it starts (process groups) with their log tails."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent


def ensure_database(database_url: str) -> None:
    """CREATE DATABASE for the bench when missing (through the server's `postgres` database)."""
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")


def migrate_and_setup_django(env: dict[str, str]) -> None:
    """Create the bench database when missing and migrate it (a child process with the bench's environment),
    then take that environment (all but PYTHONPATH) in this process and set Django up.
    Exits with migrate's output when it fails."""
    ensure_database(env["DATABASE_URL"])
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"migrate failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
    os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
    import django  # lazy: the settings module is chosen by the environment set just above

    django.setup()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_wrk() -> str | None:
    """wrk's path; installs the Debian package when missing. None when that is impossible."""
    found = shutil.which("wrk")
    if found or shutil.which("apt-get") is None or os.geteuid() != 0:
        return found
    print("wrk is missing: apt-get install -y wrk ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        subprocess.run(install, env=env, capture_output=True)
    return shutil.which("wrk")


def machine_note() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, load average {load}"
    )


def close_connections() -> None:
    """Close Django's and the Store's connections before forking or handing the database to servers."""
    from django.db import connections

    from canvas_project.store import close_pool

    connections.close_all()
    close_pool()


def log_tail(path: Path, chars: int = 3000) -> str:
    """The end of a server's log; empty while there is none."""
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-chars:]
    return ""


def stop_process_group(process: subprocess.Popen, *, grace: float, kill_wait: float = 5.0) -> None:
    """Stop a server started with start_new_session: SIGTERM to its process group, SIGKILL after `grace` s,
    then SIGKILL to the group once more for workers that outlived their parent."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=kill_wait)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


class JsonLinesChild:
    """A child process (its own session) that writes one JSON object per line on stdout, read by a thread;
    commands go to its stdin one per line. `label` names it in errors."""

    def __init__(self, argv: list[str], *, cwd, label: str, env: dict[str, str] | None = None) -> None:
        self.label = label
        self.lines: queue.Queue = queue.Queue()
        self.process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            with contextlib.suppress(ValueError):
                self.lines.put(json.loads(line))
        self.lines.put({"event": "exit"})

    def expect(self, event: str, timeout: float) -> dict:
        """The next line whose `event` is `event` (others are skipped). Raises when the child exits first."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.label}: no {event!r} within {timeout:.0f} s")
            try:
                message = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if message.get("event") == event:
                return message
            if message.get("event") == "exit":
                raise RuntimeError(f"{self.label} exited (code {self.process.wait()}) before {event!r}")

    def send(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        with contextlib.suppress(OSError):
            self.process.stdin.close()
