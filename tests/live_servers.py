"""Real processes for the live PostgreSQL tests: gunicorn servers, throwaway databases, a
throwaway PostgreSQL cluster and a small keep-alive HTTP client.

The servers run in other processes and must see committed data, so these tests never use
pytest-django's test database: each makes its own database (and drops it afterwards). Every
wait here is bounded in time, and everything started here is stopped by its own id.
"""

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
# Debian keeps each PostgreSQL version's server programs (initdb, pg_ctl) off PATH.
PG_BIN = max(
    Path("/usr/lib/postgresql").glob("*/bin"),
    key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    default=Path("/usr/lib/postgresql/15/bin"),
)
SECRET_KEY = "insecure-key-for-live-tests-only"
# An empty GUNICORN_ACCESSLOG turns gunicorn's access log off.
ACCESS_LOG = ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Databases


@dataclass(frozen=True)
class Database:
    host: str
    port: int
    user: str
    name: str

    @property
    def url(self) -> str:
        return f"postgres://{self.user}@{self.host}:{self.port}/{self.name}"

    def _args(self) -> list[str]:
        return ["-h", self.host, "-p", str(self.port), "-U", self.user]

    def create(self) -> None:
        run([str(PG_BIN / "createdb"), *self._args(), self.name], timeout=30)

    def drop(self) -> None:
        run([str(PG_BIN / "dropdb"), *self._args(), "--if-exists", "--force", self.name], 30)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url, connect_timeout=5, autocommit=True) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []


def run(args: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """Run a command to its end within ``timeout`` seconds; fail with its output if it fails."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{args} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


def service_env(database_url: str, **extra: str) -> dict[str, str]:
    """A clean environment: nothing of the developer's (.env, CACHE_URL, ...) leaks in."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "ENV_FILE": "/dev/null",
        "SECRET_KEY": SECRET_KEY,
        "DEBUG": "off",
        "DATABASE_URL": database_url,
        **extra,
    }


def manage(database_url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``manage.py`` against that database; the caller checks the exit status."""
    return subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", *args],
        cwd=ROOT,
        env=service_env(database_url),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def prepare_database(db: Database) -> None:
    db.create()
    result = manage(db.url, "migrate", "--no-input")
    assert result.returncode == 0, result.stdout + result.stderr


def create_dispatcher_key(database_url: str) -> str:
    result = manage(database_url, "create_api_key", "live test dispatcher", "--role", "dispatcher")
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().splitlines()[-1]


def reconcile(database_url: str) -> subprocess.CompletedProcess:
    return manage(database_url, "reconcile_usage", timeout=60)


# gunicorn


@dataclass
class Gunicorn:
    """One gunicorn server (master and workers, in their own process group)."""

    database_url: str
    workers: int = 2
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    def start(self, ready_within: float = 30) -> "Gunicorn":
        fd, log_name = tempfile.mkstemp(prefix="quotas-gunicorn-", suffix=".log")
        self.log_path = Path(log_name)
        env = service_env(
            self.database_url,
            GUNICORN_BIND=f"127.0.0.1:{self.port}",
            GUNICORN_WORKERS=str(self.workers),
            GUNICORN_ACCESSLOG=ACCESS_LOG,
            LOG_LEVEL="WARNING",
        )
        with os.fdopen(fd, "w") as log:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "gunicorn"), "--config", "gunicorn.conf.py", "project.wsgi"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so that stop() gets workers too
            )
        try:
            self.wait_ready(ready_within)
        except BaseException:
            self.stop()
            self.remove_log()
            raise
        return self

    def wait_ready(self, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited {self.process.returncode}:\n{self.log()}")
            # Only once this master holds the port: a free port can be taken by another
            # process before gunicorn binds it, and that one's health must not count.
            if f"Listening at: http://127.0.0.1:{self.port} ({self.process.pid})" in self.log():
                with contextlib.suppress(OSError, http.client.HTTPException):
                    health = Client(self.port, timeout=2).request("GET", "/api/v1/health")
                    if health.status == 200:
                        return
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn not ready within {within} s:\n{self.log()}")

    def worker_pids(self) -> list[int]:
        return children_of(self.process.pid)

    def stop(self) -> None:
        if self.process is None:
            return
        pgid = self.process.pid  # the master leads its own session and process group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)  # any worker the master left behind

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace")
        return text if len(text) < 8000 else text[:2000] + "\n...\n" + text[-4000:]

    def remove_log(self) -> None:
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)


def children_of(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name (field 2) may hold spaces; the parent id follows its ')'.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                children.append(int(stat.parent.name))
    return sorted(children)


# A throwaway PostgreSQL cluster


class TempCluster:
    """A PostgreSQL cluster in a temporary folder, on its own port; never the machine's."""

    def __init__(self):
        self.port = free_port()
        # Short, because the Unix socket's path must fit in 107 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="quotas-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        # initdb and postgres refuse to run as root; then they run as the postgres user.
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            shutil.chown(self.root, self.user)

    def _pg(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return run(list(args), timeout, user=self.user, cwd=self.root)

    def init(self) -> "TempCluster":
        self._pg(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._pg(
            *[str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options],
            *["-l", str(self.log), "-w", "-t", "30", "start"],
        )

    def stop(self) -> None:
        self._pg(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", "30", "-m", "fast", "stop"
        )

    def is_running(self) -> bool:
        status = subprocess.run(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True,
            timeout=10,
            user=self.user,
        )
        return status.returncode == 0

    def database(self, name: str) -> Database:
        return Database("127.0.0.1", self.port, "postgres", name)

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            if self.data.exists() and self.is_running():
                self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# HTTP


@dataclass
class Answer:
    status: int
    content_type: str
    retry_after: str | None
    body: dict | list | None
    raw: bytes
    seconds: float


class Client:
    """A keep-alive HTTP/1.1 client for one server, speaking JSON with a Bearer key."""

    def __init__(self, port: int, key: str = "", timeout: float = 5):
        self.port, self.key, self.timeout = port, key, timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: dict | None = None) -> Answer:
        """One request; a broken connection is closed (the next request opens a new one) and
        its error raised."""
        headers = {"Accept": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        started = time.monotonic()
        try:
            self.conn.request(method, path, body=payload, headers=headers)
            response = self.conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        content_type = response.getheader("Content-Type", "")
        parsed = None
        if content_type.startswith("application/json"):
            with contextlib.suppress(ValueError):
                parsed = json.loads(raw)
        return Answer(
            response.status,
            content_type,
            response.getheader("Retry-After"),
            parsed,
            raw,
            time.monotonic() - started,
        )

    def post(self, path: str, body: dict) -> Answer:
        return self.request("POST", path, body)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
