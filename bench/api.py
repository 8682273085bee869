"""How fast the dispatcher API answers under load: a real gunicorn against a real database.

    python bench/api.py [--db postgres|sqlite] [--seconds 10] [--rounds 5]
                        [--connections 32] [--workers N] [--processes 2] [--scale]
                        [--postgres postgres://postgres@127.0.0.1:5432]

Creates a throwaway database (a fresh PostgreSQL database quotas_bench_<pid>, dropped at the
end, or with --db sqlite a temporary file), migrates it, loads 1,000 agents with large
limits, 8 model quotas with prices, 50 repository limits and a dispatcher API key, and starts
gunicorn with the project's own gunicorn.conf.py on a free loopback port. Separate load
processes (bench/loadgen.py) then drive, for --seconds each and over --connections
connections: POST /api/v1/check, POST /api/v1/dispatch (every job admitted: unique job ids,
large limits) and a full job cycle (dispatch, then a job_completed report), each in --rounds
slices with a slice of GET /api/v1/health (the baseline) before and after every one; then
check rate-limited at half its peak and check over one connection (latency without
queueing). Each slice's throughput is compared with the baseline's on either side of it, and
an endpoint's ratio is the median over its slices: on a shared machine the speed drifts by a
third within minutes, which would otherwise decide the ratio. It prints one line per
endpoint (operations per second, p50/p95/p99 latency, throughput relative to the baseline
with the range over the slices); then one line per endpoint measured in slices (how many
slices, the operations they counted over their own time and, but for the baseline, each
slice's ratio to the baseline around it); then PASS or FAIL against the targets (check
throughput >= 0.6 x the baseline, check p99 at half peak < 25 ms); a missed target is
reported, not an error. Each endpoint's line
also says where the CPU went, in milliseconds per operation: "load" in the load processes,
"app" in gunicorn's processes, "db" in PostgreSQL's (every one on the machine; Linux only).

--scale (PostgreSQL) runs everything twice: once near-empty, then again in a second database
loaded with the same data plus 100,000 agents, 1,000,000 jobs and 90 days of agent, model
and repository usage (vacuumed and checkpointed, as after any bulk load). Then both databases
are served at once and a check's latency is measured on each in alternating slices (over one
connection and saturated), and the check's p50 at scale is reported relative to near-empty.
"""

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path

import loadgen

ROOT = Path(__file__).resolve().parent.parent
AGENTS = 1_000
MODELS = tuple(
    f"{vendor}/{name}"
    for vendor, name in [
        ("anthropic", "claude-sonnet-4"),
        ("anthropic", "claude-opus-4"),
        ("anthropic", "claude-haiku-4"),
        ("openai", "gpt-5"),
        ("openai", "gpt-5-mini"),
        ("google", "gemini-2.5-pro"),
        ("google", "gemini-2.5-flash"),
        ("mistral", "devstral"),
    ]
)
REPOS = tuple(f"octo-org/service-{i:02}" for i in range(50))
LABELS = {
    "health": "GET /api/v1/health",
    "check": "POST /api/v1/check",
    "dispatch": "POST /api/v1/dispatch",
    "cycle": "dispatch + job_completed",
}
TARGETS = {"check": 0.6}  # throughput relative to the health baseline
HALF_PEAK_P99_MS = 25.0
SCALE_P50_RATIO = 1.3
SCALE = {"agents": 100_000, "jobs": 1_000_000, "days": 90}


def main() -> None:
    options = parse_options()
    sys.stdout.reconfigure(line_buffering=True)
    workdir = Path(tempfile.mkdtemp(prefix="quotas-bench-api-"))
    databases = []
    try:
        if options.db == "sqlite":
            url = f"sqlite:///{workdir}/bench.sqlite3"
        else:
            url = new_postgres_database(options, f"quotas_bench_{os.getpid()}", databases)
        environment = configure(url)
        key = prepare_database()
        print_header(options)
        results = run_all(options, environment, key, workdir, tag="near-empty")
        if options.scale:
            started = time.monotonic()
            # A database of its own, beside the near-empty one: the two are compared side by
            # side at the end, slice by slice, so that the machine's drift cancels out.
            scale_url = new_postgres_database(
                options, f"quotas_bench_{os.getpid()}_scale", databases
            )
            use_database(databases[-1])
            scale_key = prepare_database()
            counts = load_scale()
            print(f"\nloaded {counts} in {time.monotonic() - started:.0f} s; the same run again:")
            scale_environment = {**environment, "DATABASE_URL": scale_url}
            scaled = run_all(options, scale_environment, scale_key, workdir, tag="scale")
            servers = {"near-empty": (environment, key), "scale": (scale_environment, scale_key)}
            report_scale(results, scaled, side_by_side(options, servers, workdir))
    finally:
        from django.db import connections

        connections.close_all()
        for database in databases:
            postgres_admin(options.postgres, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(workdir, ignore_errors=True)


def new_postgres_database(options, name: str, databases: list[str]) -> str:
    """Create a throwaway database (dropped at the end) and return its URL."""
    postgres_admin(options.postgres, f'CREATE DATABASE "{name}"')
    databases.append(name)
    return f"{options.postgres.rstrip('/')}/{name}"


def use_database(name: str) -> None:
    """Point this process's own connection (which loads the data) at another database."""
    from django.db import connections

    connections.close_all()
    connections["default"].settings_dict["NAME"] = name


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--seconds", type=float, default=10.0, help="per endpoint (default 10)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--workers", type=int, default=0, help="gunicorn workers (default: gunicorn.conf.py's)"
    )
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="slices each endpoint is measured in, between slices of the baseline (default 5)",
    )
    parser.add_argument("--scale", action="store_true", help="PostgreSQL only; see above")
    parser.add_argument(
        "--postgres",
        default="postgres://postgres@127.0.0.1:5432",
        help="server for the throwaway database, without a database name",
    )
    options = parser.parse_args()
    if not 0 < options.seconds <= 600 or not 0 < options.connections <= 1000:
        parser.error("--seconds must be in (0, 600] and --connections in [1, 1000]")
    if options.workers < 0 or not 0 < options.processes <= 16:
        parser.error("--workers must be positive and --processes in [1, 16]")
    if not 1 <= options.rounds <= 50:
        parser.error("--rounds must be in [1, 50]")
    if options.scale and options.db != "postgres":
        parser.error("--scale needs --db postgres (it loads with generate_series)")
    return options


def postgres_admin(server: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(f"{server.rstrip('/')}/postgres", autocommit=True) as admin:
        admin.execute(statement)


def configure(url: str) -> dict[str, str]:
    """Settings for this process (which loads the data) and for gunicorn alike."""
    settings = {
        "DATABASE_URL": url,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ENV_FILE": os.devnull,
        "DEBUG": "off",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SETTINGS_MODULE": "project.settings",
    }
    os.environ.update(settings)
    sys.path.insert(0, str(ROOT))
    import django

    warnings.filterwarnings("ignore", message="No directory at")  # static files not collected
    django.setup()
    return {**os.environ, **settings}


def prepare_database() -> str:
    """Migrate, load the near-empty data set and return a dispatcher API key."""
    from django.core.management import call_command

    from quotas.models import AgentAllowance, APIKey, ModelQuota, RepoLimit

    call_command("migrate", verbosity=0)
    AgentAllowance.objects.bulk_create(
        AgentAllowance(
            agent_id=f"agent-{i:06}",
            daily_token_limit=10**12,
            daily_job_limit=10**9,
            concurrent_jobs=10**9,
        )
        for i in range(AGENTS)
    )
    ModelQuota.objects.bulk_create(
        ModelQuota(
            model=model,
            daily_token_budget=10**15,
            hourly_rate_limit=10**9,
            cost_ceiling=10**12,
            input_price_per_mtok=[3, 15, 1, 2, 0.5, 1.25, 0.3, 0.4][i],
            output_price_per_mtok=[15, 75, 5, 8, 2, 10, 2.5, 2][i],
        )
        for i, model in enumerate(MODELS)
    )
    RepoLimit.objects.bulk_create(
        RepoLimit(repo=repo, max_daily_prs=10**6, max_daily_issues=10**6) for repo in REPOS
    )
    _, key = APIKey.objects.create_key(name="bench", role=APIKey.Role.DISPATCHER)
    return key


def print_header(options: argparse.Namespace) -> None:
    from django.db import connection

    workers = options.workers or os.cpu_count() * 2 + 1
    print(
        f"{connection.vendor}, {workers} gunicorn workers, {options.connections} connections "
        f"from {options.processes} load processes, {options.seconds:g} s per endpoint"
    )


def run_all(options, environment, key, workdir, *, tag: str) -> dict:
    """Start gunicorn, measure every endpoint, print the report; gunicorn always stops."""
    from django.db import connections

    connections.close_all()  # gunicorn's workers open their own
    port = free_port()
    server = start_gunicorn(options, environment, port, workdir / f"gunicorn-{tag}.log")
    try:
        wait_until_healthy(server, port, workdir / f"gunicorn-{tag}.log")
        return measure_all(options, key, port, tag, server.pid)
    finally:
        stop(server)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gunicorn(options, environment, port: int, log: Path) -> subprocess.Popen:
    env = {**environment, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_ACCESSLOG": os.devnull}
    if options.workers:
        env["GUNICORN_WORKERS"] = str(options.workers)
    command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "project.wsgi"]
    with log.open("wb") as output:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so that stop() ends every worker
        )


def wait_until_healthy(server: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            break
        url = f"http://127.0.0.1:{port}/api/v1/health"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2):
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:]
    raise SystemExit(f"gunicorn did not become healthy on port {port}:\n{tail}")


def stop(server: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=5)


def measure_all(options, key: str, port: int, tag: str, server_pid: int) -> dict:
    def workload(kind: str, phase: str) -> loadgen.Workload:
        return loadgen.Workload(kind, key, "127.0.0.1", port, AGENTS, MODELS, REPOS, phase)

    def drive(kind, phase, seconds, rate=0.0, connections=0) -> tuple[loadgen.Outcome, dict]:
        before = cpu_seconds(server_pid)
        outcome = loadgen.drive(
            workload(kind, phase),
            connections=connections or options.connections,
            processes=options.processes,
            seconds=seconds,
            rate=rate,
        )
        after = cpu_seconds(server_pid)
        spent = {"load": outcome.cpu_seconds}
        for (part, pid), seconds in after.items():
            # A process that ended meanwhile is left out rather than counted as negative.
            spent[part] = spent.get(part, 0.0) + seconds - before.get((part, pid), 0.0)
        # On SQLite the database's work is done inside the workers; "db" would only be noise.
        return outcome, {
            part: spent[part] for part in spent if part != "db" or options.db != "sqlite"
        }

    warm_up = min(2.0, max(0.5, options.seconds / 5))
    for kind in ("check", "cycle"):  # every worker imports and connects before it is timed
        drive(kind, f"{tag}-warm-up", warm_up)
    results = interleaved(drive, options, tag)
    half_rate = results["check"]["rps"] / 2
    results["half"] = summary(*drive("check", tag, options.seconds, rate=half_rate))
    # One connection: the latency of a check without queueing, which is what --scale compares
    # (a saturated run's p50 is mostly time spent waiting for a worker).
    results["single"] = summary(*drive("check", tag, min(5.0, options.seconds), connections=1))
    print_report(results, half_rate)
    return results


def interleaved(drive, options, tag: str) -> dict:
    """Each endpoint for --seconds, in --rounds slices, with a slice of the baseline before
    and after each one: H C H D H Y H C ... On a shared machine the speed drifts by a third
    within minutes, so each slice's throughput is compared with the baseline's on either side
    of it, and an endpoint's ratio is the median of its slices' ratios."""
    slice_seconds = options.seconds / options.rounds
    slices = {kind: [] for kind in LABELS}
    ratios = {kind: [] for kind in LABELS if kind != "health"}
    baseline = drive("health", tag, slice_seconds)
    slices["health"].append(baseline)
    for number in range(options.rounds):
        for kind in ratios:
            measured = drive(kind, f"{tag}-{number}", slice_seconds)
            after = drive("health", tag, slice_seconds)
            around = (_rps(baseline[0]) + _rps(after[0])) / 2
            ratios[kind].append(_rps(measured[0]) / around if around else 0.0)
            slices[kind].append(measured)
            slices["health"].append(after)
            baseline = after
    results = {kind: summary(*_merged(parts)) for kind, parts in slices.items()}
    results["health"]["ratio"], results["health"]["spread"] = 1.0, (1.0, 1.0)
    for kind, parts in slices.items():
        results[kind]["slices"] = len(parts)
    for kind, found in ratios.items():
        results[kind]["ratio"] = statistics.median(found)
        results[kind]["spread"] = (min(found), max(found))
        results[kind]["slice_ratios"] = found
    return results


def _rps(outcome: loadgen.Outcome) -> float:
    elapsed = outcome.last_end - outcome.first_start
    return len(outcome.latencies) / elapsed if outcome.latencies and elapsed > 0 else 0.0


def _merged(parts: list[tuple[loadgen.Outcome, dict]]) -> tuple[loadgen.Outcome, dict]:
    """One outcome of several slices: their operations and errors, over their own time only
    (the gaps between slices, when other endpoints ran, are not counted)."""
    merged, cpu, busy = loadgen.Outcome(), {}, 0.0
    for outcome, spent in parts:
        merged.latencies += outcome.latencies
        for name, count in outcome.errors.items():
            merged.errors[name] = merged.errors.get(name, 0) + count
        if outcome.latencies:
            busy += outcome.last_end - outcome.first_start
        for part, seconds in spent.items():
            cpu[part] = cpu.get(part, 0.0) + seconds
    merged.first_start, merged.last_end = 0.0, busy
    return merged, cpu


def cpu_seconds(server_pid: int) -> dict[tuple[str, int], float]:
    """CPU time so far, by (part, process id), of gunicorn (the arbiter and its workers) and
    of every PostgreSQL process on the machine, from Linux's /proc (nothing where it does not
    exist). The load processes count their own, without their start-up (loadgen.Outcome)."""
    spent = {}
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return spent
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:  # it ended while we looked
            continue
        cpu = (int(stat[11]) + int(stat[12])) / ticks  # utime + stime
        if server_pid in (int(entry.name), int(stat[1])):
            spent["app", int(entry.name)] = cpu
        elif command.startswith(b"postgres"):
            spent["db", int(entry.name)] = cpu
    return spent


def summary(outcome: loadgen.Outcome, cpu: dict[str, float]) -> dict:
    ms = sorted(seconds * 1000 for seconds in outcome.latencies)
    elapsed = outcome.last_end - outcome.first_start
    if not ms or elapsed <= 0:
        return {"rps": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "errors": outcome.errors}

    def percentile(share: float) -> float:
        return ms[min(len(ms) - 1, round(share * (len(ms) - 1)))]

    return {
        "rps": len(ms) / elapsed,
        "p50": statistics.median(ms),
        "p95": percentile(0.95),
        "p99": percentile(0.99),
        "count": len(ms),
        "seconds": elapsed,
        "errors": outcome.errors,
        # CPU milliseconds per operation in each part of the system.
        "cpu": {part: 1000 * seconds / len(ms) for part, seconds in cpu.items()},
    }


def line(label: str, result: dict, baseline: float) -> str:
    """One endpoint: throughput, latency, the ratio to the baseline (the median of its slices'
    where it was interleaved, else of the whole run), errors and CPU per operation."""
    ratio = result.get("ratio", result["rps"] / baseline if baseline else 0.0)
    errors = sum(result["errors"].values())
    detail = f" {result['errors']}" if errors else ""
    cpu = " ".join(f"{part} {ms:.2f}" for part, ms in result.get("cpu", {}).items())
    low, high = result.get("spread", (ratio, ratio))
    spread = f" ({low:.2f}-{high:.2f})" if "spread" in result else ""
    return (
        f"{label:32} rps {result['rps']:8.1f}  p50 {result['p50']:7.1f} ms  "
        f"p95 {result['p95']:7.1f} ms  p99 {result['p99']:7.1f} ms  "
        f"{ratio:5.2f} x baseline{spread}  {errors} errors{detail}  cpu ms/op: {cpu}"
    )


def slices_line(label: str, result: dict) -> str:
    """An endpoint's slices: how many, the operations they counted and their own time (the
    endpoint's rps is the first over the second), and each slice's ratio to the baseline."""
    ratios = " ".join(f"{ratio:.3f}" for ratio in result.get("slice_ratios", []))
    return (
        f"{label:32} {result['slices']} slices, {result.get('count', 0)} operations in "
        f"{result.get('seconds', 0.0):.3f} s" + (f"; x baseline: {ratios}" if ratios else "")
    )


def print_report(results: dict, half_rate: float) -> None:
    baseline = results["health"]["rps"]
    for kind, label in LABELS.items():
        print(line(label, results[kind], baseline))
    print(line(f"check at half peak ({half_rate:.0f}/s)", results["half"], baseline))
    print(line("check, 1 connection", results["single"], baseline))
    for kind, label in LABELS.items():
        print(slices_line(label, results[kind]))
    for kind, target in TARGETS.items():
        ratio = results[kind]["ratio"]
        verdict = "PASS" if ratio >= target else "FAIL"
        low, high = results[kind]["spread"]
        print(
            f"{verdict}  {kind} throughput {ratio:.2f} x baseline (target >= {target} x; "
            f"slices {low:.2f} to {high:.2f})"
        )
    p99 = results["half"]["p99"]
    verdict = "PASS" if 0 < p99 < HALF_PEAK_P99_MS else "FAIL"
    print(f"{verdict}  check p99 at half peak {p99:.1f} ms (target < {HALF_PEAK_P99_MS:g} ms)")


def load_scale() -> str:
    """100,000 agents, 1,000,000 finished jobs and 90 days of usage history, in SQL."""
    from django.db import connection
    from django.utils import timezone

    from quotas.models import AgentAllowance, AgentUsage, Job, ModelUsage, RepoUsage
    from quotas.periods import day_start

    today = day_start(timezone.now())
    tables = {m.__name__: m._meta.db_table for m in (AgentAllowance, AgentUsage, Job)}
    tables |= {m.__name__: m._meta.db_table for m in (ModelUsage, RepoUsage)}
    models = "ARRAY[" + ", ".join(f"'{m}'" for m in MODELS) + "]"
    repos = "ARRAY[" + ", ".join(f"'{r}'" for r in REPOS) + "]"
    agent = "'agent-' || lpad(a::text, 6, '0')"
    statements = [
        f"""INSERT INTO {tables["AgentAllowance"]} (agent_id, daily_token_limit,
            daily_job_limit, concurrent_jobs, max_job_duration, model_allowlist, paused,
            created_at, updated_at)
            SELECT {agent}, 10000000, 500, 10, interval '0', '[]', false, now(), now()
            FROM generate_series({AGENTS}, {SCALE["agents"] - 1}) a""",
        f"""INSERT INTO {tables["AgentUsage"]} (agent_id, period_start, closed_at, updated_at,
            tokens_used, jobs_started, tokens_consumed, cost_microcents, jobs_run)
            SELECT {agent}, %(today)s - d * interval '1 day', now(), now(), t, j, t, t * 300, j
            FROM generate_series(1, {SCALE["days"]}) d,
                 generate_series(0, {SCALE["agents"] - 1}) a,
                 LATERAL (SELECT (a * 7919 + d * 104729) %% 2000000 AS t, (a + d) %% 40 AS j) u""",
        f"""INSERT INTO {tables["Job"]} (agent_id, job_id, model, repo, state, started_at,
            ended_at, tokens_in, tokens_out, tokens_charged, cost_charged_microcents,
            decision, created_at)
            SELECT 'agent-' || lpad((j %% {SCALE["agents"]})::text, 6, '0'), 'history-' || j,
                   ({models})[1 + j %% {len(MODELS)}], ({repos})[1 + j %% {len(REPOS)}],
                   CASE WHEN j %% 20 = 0 THEN 'failed' ELSE 'completed' END,
                   started, started + interval '7 minutes', j %% 50000, j %% 9000,
                   j %% 59000, (j %% 59000) * 300, NULL, started
            FROM generate_series(1, {SCALE["jobs"]}) j,
                 LATERAL (SELECT now() - (j * {SCALE["days"] * 86400 / SCALE["jobs"]})
                          * interval '1 second' - interval '1 hour' AS started) s""",
        f"""INSERT INTO {tables["ModelUsage"]} (model, period_start, closed_at, updated_at,
            tokens_used, cost_microcents, requests)
            SELECT m, %(today)s - d * interval '1 day', now(), now(), 90000000, 400000000000, 12000
            FROM generate_series(1, {SCALE["days"]}) d, unnest({models}) m""",
        f"""INSERT INTO {tables["RepoUsage"]} (repo, period_start, closed_at, updated_at,
            prs_opened, issues_opened, last_failure_at)
            SELECT r, %(today)s - d * interval '1 day', now(), now(), d %% 7, d %% 3,
                   %(today)s - d * interval '1 day' + interval '5 hours'
            FROM generate_series(1, {SCALE["days"]}) d, unnest({repos}) r""",
    ]
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement, {"today": today})
        # As after any bulk load: otherwise autovacuum works through the nine million new rows,
        # and the checkpointer writes them out, during the measured run, on the same cores.
        for table in tables.values():
            cursor.execute(f"VACUUM (ANALYZE) {table}")
        cursor.execute("CHECKPOINT")  # needs a superuser or pg_checkpoint, as does the load
    rows = SCALE["agents"] * SCALE["days"]
    return (
        f"{SCALE['agents']:,} agents, {SCALE['jobs']:,} jobs, {rows:,} agent usage rows "
        f"({SCALE['days']} days)"
    )


def side_by_side(options, servers: dict, workdir: Path) -> dict:
    """A check's latency on each database, both served at once and measured in alternating
    slices (one connection, then saturated), so that both see the same minutes of this
    shared machine. Returns {(label, "single" or "check"): summary}."""
    started, measured = {}, {}
    try:
        for label, (environment, _) in servers.items():
            port = free_port()
            log = workdir / f"gunicorn-side-{label}.log"
            started[label] = (start_gunicorn(options, environment, port, log), port)
            wait_until_healthy(started[label][0], port, log)
        slice_seconds = max(0.5, min(2.0, options.seconds / 5))
        for number in range(options.rounds):
            for kind, connections in (("single", 1), ("check", options.connections)):
                for label, (_, key) in servers.items():
                    port = started[label][1]
                    workload = loadgen.Workload(
                        "check", key, "127.0.0.1", port, AGENTS, MODELS, REPOS, f"side-{number}"
                    )
                    outcome = loadgen.drive(
                        workload,
                        connections=connections,
                        processes=min(options.processes, connections),
                        seconds=slice_seconds,
                    )
                    measured.setdefault((label, kind), []).append((outcome, {}))
    finally:
        for server, _ in started.values():
            stop(server)
    return {key: summary(*_merged(parts)) for key, parts in measured.items()}


def report_scale(empty: dict, scaled: dict, side: dict) -> None:
    for kind, what in (("single", "1 connection"), ("check", "saturated")):
        before, after = empty[kind]["p50"], scaled[kind]["p50"]
        print(
            f"       check p50 ({what}) in the runs above: {after:.1f} ms at scale, "
            f"{before:.1f} ms near-empty ({after / before if before else 0.0:.2f} x, minutes apart)"
        )
    for kind, what in (("single", "1 connection"), ("check", "saturated")):
        before, after = side["near-empty", kind]["p50"], side["scale", kind]["p50"]
        ratio = after / before if before else 0.0
        verdict = "PASS" if 0 < ratio <= SCALE_P50_RATIO else "FAIL"
        print(
            f"{verdict}  check p50 ({what}) at scale {after:.1f} ms vs near-empty "
            f"{before:.1f} ms, side by side: {ratio:.2f} x (target <= {SCALE_P50_RATIO} x)"
        )


if __name__ == "__main__":
    main()
