"""Instructions the service's Python process executes per request, counted by valgrind.

    python bench/instructions.py [--db postgres|sqlite] [--requests 200]
                                 [--kinds health,check,cycle] [--no-valgrind]

On a shared machine a wall or CPU clock moves by a third from one minute to the next, so a
change that saves 5 % cannot be seen in bench/api.py's figures. valgrind's callgrind counts
the instructions a process executes instead, and gives the same count run after run.

For each kind (health, check, and a cycle: dispatch then job_completed) a child process sets
up Django against a throwaway database loaded like bench/api.py's, sends 30 requests through
the WSGI handler to warm up, then ``--requests`` more; it runs under callgrind twice, once
with none of the measured requests, and the difference divided by ``--requests`` is printed.
The count covers the Python process only (Django, DRF, psycopg and this project's code), not
PostgreSQL's work, nor gunicorn's. A run takes a few minutes (Python under callgrind runs
about 50 times slower). --no-valgrind runs the children without it, to check the script: it
prints how many operations each of a kind's two children had answered as expected (warm-up
included), then 0 as the kind's instruction count.
"""

import argparse
import io
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import api

WARM_UP = 30
KINDS = ("health", "check", "cycle")


def main() -> None:
    options = parse_options()
    if options.child:
        child(options.child, options.requests)
        return
    if options.valgrind and shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    workdir = Path(tempfile.mkdtemp(prefix="quotas-bench-instructions-"))
    database = None
    try:
        if options.db == "sqlite":
            url = f"sqlite:///{workdir}/bench.sqlite3"
        else:
            database = f"quotas_instructions_{os.getpid()}"
            api.postgres_admin(options.postgres, f'CREATE DATABASE "{database}"')
            url = f"{options.postgres.rstrip('/')}/{database}"
        environment = api.configure(url)
        environment["QUOTAS_BENCH_KEY"] = api.prepare_database()
        from django.db import connections

        connections.close_all()
        for kind in options.kinds:
            measured = count(options, environment, kind, workdir)
            print(f"{kind:8} {measured:>12,} instructions per operation", flush=True)
    finally:
        if database:
            from django.db import connections

            connections.close_all()
            api.postgres_admin(
                options.postgres, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'
            )
        shutil.rmtree(workdir, ignore_errors=True)


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--requests", type=int, default=200, help="measured operations")
    parser.add_argument("--kinds", default=",".join(KINDS), help="default: health,check,cycle")
    parser.add_argument("--no-valgrind", dest="valgrind", action="store_false")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    options.kinds = [kind.strip() for kind in options.kinds.split(",") if kind.strip()]
    if not set(options.kinds) <= set(KINDS) or not options.kinds:
        parser.error(f"--kinds takes some of {', '.join(KINDS)}")
    if not options.child and not 1 <= options.requests <= 100_000:
        parser.error("--requests must be in [1, 100000]")
    return options


def count(options, environment: dict, kind: str, workdir: Path) -> int:
    """Instructions per operation of ``kind``: the difference of two runs, over --requests."""
    if not options.valgrind:
        for requests in (0, options.requests):
            answered = run_child(environment, kind, requests, [])
            print(f"{kind:8} {answered:>12,} operations answered as expected", flush=True)
        return 0
    totals = []
    for requests in (0, options.requests):
        out = workdir / f"callgrind-{kind}-{requests}.out"
        valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        run_child(environment, kind, requests, valgrind)
        totals.append(callgrind_total(out))
    return (totals[1] - totals[0]) // options.requests


def run_child(environment: dict, kind: str, requests: int, prefix: list[str]) -> int:
    """Run one child to its end; the number of operations it had answered as expected."""
    # A fixed hash seed: dictionaries and sets then do the same work in every run.
    env = {**environment, "PYTHONHASHSEED": "0"}
    script = Path(__file__).resolve()
    command = [*prefix, sys.executable, str(script), "--child", kind, "--requests", str(requests)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{kind} ({requests} requests) failed:\n{result.stderr[-3000:]}")
    answered = re.search(r"^(\d+) operations answered$", result.stdout, re.MULTILINE)
    if answered is None:
        raise SystemExit(f"{kind} ({requests} requests) did not say what it sent")
    return int(answered[1])


def callgrind_total(path: Path) -> int:
    found = re.search(r"^(?:summary|totals): (\d+)", path.read_text(), re.MULTILINE)
    if found is None:
        raise SystemExit(f"no instruction total in {path}")
    return int(found[1])


def child(kind: str, requests: int) -> None:
    """Set up Django on DATABASE_URL, warm up, then send ``requests`` operations of ``kind``."""
    sys.path.insert(0, str(api.ROOT))
    import django

    django.setup()
    import logging

    from django.core.wsgi import get_wsgi_application

    logging.getLogger("quotas.api").setLevel(logging.WARNING)  # one line a request: noise
    application = get_wsgi_application()
    key = os.environ["QUOTAS_BENCH_KEY"]
    tag = secrets.token_hex(4)
    operations = {"health": _health, "check": _check, "cycle": _cycle}[kind]
    answered = 0
    for number in range(WARM_UP + requests):
        operations(application, key, f"{tag}-{number}", number)  # exits on a wrong answer
        answered += 1
    print(f"{answered} operations answered", flush=True)


def _call(application, key: str, method: str, path: str, body: dict | None = None) -> str:
    raw = json.dumps(body).encode() if body is not None else b""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_AUTHORIZATION": f"Bearer {key}",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(raw)),
        "wsgi.input": io.BytesIO(raw),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
    }
    status = []
    b"".join(application(environ, lambda line, headers, info=None: status.append(line)))
    return status[0]


def _expect(status: str, wanted: str, what: str) -> None:
    if not status.startswith(wanted):
        raise SystemExit(f"{what} answered {status}, not {wanted}")


def _health(application, key: str, tag: str, number: int) -> None:
    _expect(_call(application, key, "GET", "/api/v1/health"), "200", "health")


def _subject(number: int) -> dict:
    return {
        "agent_id": f"agent-{number % api.AGENTS:06}",
        "model": api.MODELS[number % len(api.MODELS)],
        "repo": api.REPOS[number % len(api.REPOS)],
    }


def _check(application, key: str, tag: str, number: int) -> None:
    status = _call(application, key, "POST", "/api/v1/check", _subject(number))
    _expect(status, "200", "check")


def _cycle(application, key: str, tag: str, number: int) -> None:
    job = {**_subject(number), "job_id": f"instructions-{tag}"}
    _expect(_call(application, key, "POST", "/api/v1/dispatch", job), "201", "dispatch")
    report = {
        "agent_id": job["agent_id"],
        "job_id": job["job_id"],
        "model": job["model"],
        "event": "job_completed",
        "tokens_in": 1000 + number,
        "tokens_out": 200,
    }
    _expect(_call(application, key, "POST", "/api/v1/usage", report), "200", "job_completed")


if __name__ == "__main__":
    main()
