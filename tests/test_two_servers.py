"""Two gunicorn servers sharing one PostgreSQL database hold an agent's limits together.

Eight client processes send 2,000 dispatches for one agent, alternating between the servers,
and complete every admitted job with a random token count. The servers only share the
database, so the limits can only hold through its row locks.
"""

import multiprocessing
import random
import time
import uuid

import pytest
from django.conf import settings

from tests.live_servers import Client, Database, Gunicorn, create_dispatcher_key, manage, reconcile
from tests.live_servers import prepare_database as migrate_database

pytestmark = pytest.mark.postgres_only

AGENT, MODEL = "bot-live", "live/model-1"
CONCURRENT_JOBS, DAILY_JOB_LIMIT = 5, 500
CLIENTS, DISPATCHES = 8, 2000
# Every client gives up after this long, so that a stuck run fails instead of hanging.
CLIENT_BUDGET = 150

SETUP = f"""
from quotas.models import AgentAllowance, ModelQuota
AgentAllowance.objects.create(
    agent_id={AGENT!r}, concurrent_jobs={CONCURRENT_JOBS}, daily_job_limit={DAILY_JOB_LIMIT}
)
ModelQuota.objects.create(model={MODEL!r}, input_price_per_mtok=3, output_price_per_mtok=15)
"""


@pytest.fixture(scope="module")
def live_database():
    """A database of its own on the suite's PostgreSQL server, migrated, dropped at the end."""
    default = settings.DATABASES["default"]
    db = Database(
        default.get("HOST") or "127.0.0.1",
        int(default.get("PORT") or 5432),
        default.get("USER") or "postgres",
        f"quotas_live_{uuid.uuid4().hex[:12]}",
    )
    try:
        migrate_database(db)
        # Durability across a crash is not under test; commits that skip the WAL flush keep
        # the per-agent lock short, so the 2,000 dispatches fit the time budget.
        db.query(f"ALTER DATABASE {db.name} SET synchronous_commit = off")
        yield db
    finally:
        db.drop()


@pytest.fixture(scope="module")
def two_servers(live_database):
    servers = []
    try:
        for _ in range(2):
            servers.append(Gunicorn(live_database.url, workers=2).start())
        yield servers
    finally:
        for server in servers:
            server.stop()
            server.remove_log()


def run_client(index: int, ports: list[int], key: str, job_ids: list[str]) -> dict:
    """Dispatch each job, alternating servers request by request; complete each admitted job
    with a random token count. A 429 for concurrency is retried after a short pause; a 429
    for the daily job limit is final (it clears at midnight)."""
    rng = random.Random(index)
    clients = [Client(port, key) for port in ports]
    sent = retries = 0
    admitted, refused, unexpected = {}, 0, []
    deadline = time.monotonic() + CLIENT_BUDGET

    def post(path, body):
        nonlocal sent
        sent += 1
        return clients[sent % 2].post(path, body)

    for job_id in job_ids:
        while time.monotonic() < deadline:
            answer = post("/api/v1/dispatch", {"agent_id": AGENT, "job_id": job_id, "model": MODEL})
            code = (answer.body or {}).get("reason_code") if answer.status == 429 else None
            if code == "concurrent_jobs":
                retries += 1
                time.sleep(rng.uniform(0.05, 0.1))
                continue
            if code == "daily_job_limit":
                refused += 1
            elif answer.status == 201:
                tokens = (rng.randint(1, 5000), rng.randint(0, 2000))
                time.sleep(rng.uniform(0, 0.005))  # the job runs a little while
                report = post(
                    "/api/v1/usage",
                    {
                        "agent_id": AGENT,
                        "job_id": job_id,
                        "model": MODEL,
                        "event": "job_completed",
                        "tokens_in": tokens[0],
                        "tokens_out": tokens[1],
                    },
                )
                if report.status == 200:
                    admitted[job_id] = sum(tokens)
                else:
                    unexpected.append(("usage", job_id, report.status, report.raw[:200]))
            else:
                unexpected.append(("dispatch", job_id, answer.status, answer.raw[:200]))
            break
        else:
            unexpected.append(("gave up", job_id))
    for client in clients:
        client.close()
    return {
        "admitted": admitted,
        "refused": refused,
        "unexpected": unexpected,
        "sent": sent,
        "retries": retries,
    }


def max_running(intervals: list[tuple]) -> int:
    """The most jobs running at one moment: a sweep over start (+1) and end (-1) times, ends
    first at equal times (a job that ends frees its slot for one starting that instant)."""
    points = [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals]
    running = most = 0
    for _, step in sorted(points):
        running += step
        most = max(most, running)
    return most


def test_two_servers_admit_exactly_the_daily_job_limit_and_keep_exact_books(
    live_database, two_servers
):
    db = live_database
    setup = manage(db.url, "shell", "-c", SETUP)
    assert setup.returncode == 0, setup.stderr
    key = create_dispatcher_key(db.url)
    ports = [server.port for server in two_servers]
    job_ids = [[f"job-{c}-{n}" for n in range(DISPATCHES // CLIENTS)] for c in range(CLIENTS)]

    started = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(CLIENTS) as pool:
        pending = pool.starmap_async(
            run_client, [(c, ports, key, job_ids[c]) for c in range(CLIENTS)]
        )
        results = pending.get(timeout=CLIENT_BUDGET + 30)
    seconds = time.monotonic() - started

    sent = sum(r["sent"] for r in results)
    retries = sum(r["retries"] for r in results)
    print(f"{sent} requests ({retries} retries) in {seconds:.1f} s")
    reported = {job: tokens for r in results for job, tokens in r["admitted"].items()}
    unexpected = [u for r in results for u in r["unexpected"]]
    assert unexpected == [], unexpected[:10]
    assert len(reported) == DAILY_JOB_LIMIT
    assert sum(r["refused"] for r in results) == DISPATCHES - DAILY_JOB_LIMIT

    jobs = db.query(
        "SELECT job_id, state, started_at, ended_at, tokens_charged FROM quotas_job"
        " WHERE agent_id = %s",
        (AGENT,),
    )
    assert len(jobs) == DAILY_JOB_LIMIT
    assert {job_id: charged for job_id, *_, charged in jobs} == reported
    assert {state for _, state, *_ in jobs} == {"completed"}
    assert max_running([(start, end) for _, _, start, end, _ in jobs]) <= CONCURRENT_JOBS

    agent_days = db.query(
        "SELECT tokens_used, jobs_started FROM quotas_agentusage WHERE agent_id = %s", (AGENT,)
    )
    assert agent_days == [(sum(reported.values()), DAILY_JOB_LIMIT)]
    model_days = db.query(
        "SELECT tokens_used, requests FROM quotas_modelusage WHERE model = %s", (MODEL,)
    )
    assert model_days == [(sum(reported.values()), DAILY_JOB_LIMIT)]

    books = reconcile(db.url)
    assert books.returncode == 0, books.stdout + books.stderr
