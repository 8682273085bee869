"""Faults under load: PostgreSQL stopping and a gunicorn worker dying mid-request.

Each test runs gunicorn against a PostgreSQL cluster of its own, made in a temporary folder
(never the machine's shared cluster), so that the database can be stopped and started at will.
Clients keep checking, dispatching and reporting while the fault happens; afterwards the books
must still agree with the event log.
"""

import contextlib
import http.client
import os
import random
import signal
import threading
import time
import uuid
from dataclasses import dataclass

import pytest

from tests.live_servers import (
    Client,
    Gunicorn,
    TempCluster,
    create_dispatcher_key,
    manage,
    prepare_database,
    reconcile,
)

pytestmark = pytest.mark.postgres_only

AGENT, MODEL = "bot-faults", "faults/model-1"
CLIENT_TIMEOUT = 5  # seconds; a request that takes longer counts as a hang
SETUP = f"""
from quotas.models import AgentAllowance, ModelQuota
AgentAllowance.objects.create(agent_id={AGENT!r})
ModelQuota.objects.create(model={MODEL!r}, input_price_per_mtok=3, output_price_per_mtok=15)
"""


@pytest.fixture(scope="module")
def cluster():
    cluster = TempCluster()
    try:
        cluster.init().start()
        yield cluster
    finally:
        cluster.destroy()


@contextlib.contextmanager
def live_service(cluster: TempCluster):
    """A migrated database in the cluster with an agent and a dispatcher key, served by one
    gunicorn with two workers; all of it gone afterwards."""
    db = cluster.database(f"quotas_faults_{uuid.uuid4().hex[:10]}")
    server = None
    try:
        prepare_database(db)
        setup = manage(db.url, "shell", "-c", SETUP)
        assert setup.returncode == 0, setup.stderr
        key = create_dispatcher_key(db.url)
        server = Gunicorn(db.url, workers=2).start()
        yield db, server, key
    finally:
        if server is not None:
            server.stop()
            server.remove_log()
        if cluster.is_running():
            db.drop()


@dataclass(frozen=True)
class Outcome:
    sent_at: float  # time.monotonic() when the request went out
    path: str
    status: int | None  # None: no answer (timeout, connection reset)
    content_type: str = ""
    retry_after: str | None = None
    seconds: float = 0.0
    error: str = ""


class Load:
    """Client threads that check, dispatch and complete jobs until stopped (or a bound is
    reached), recording every request's outcome."""

    def __init__(self, port: int, key: str, *, threads: int = 4, retry_broken: bool = False):
        self.port, self.key, self.retry_broken = port, key, retry_broken
        self.outcomes: list[Outcome] = []
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)
        ]

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=3 * CLIENT_TIMEOUT)
        assert not any(thread.is_alive() for thread in self.threads), "a client thread hung"

    def _run(self, n: int) -> None:
        rng = random.Random(n)
        client = Client(self.port, self.key, timeout=CLIENT_TIMEOUT)
        try:
            for i in range(5000):  # a bound; stopping ends the run long before
                if self.stopping.is_set():
                    return
                job = {"agent_id": AGENT, "job_id": f"job-{n}-{i}", "model": MODEL}
                self._send(client, "/api/v1/check", {"agent_id": AGENT, "model": MODEL})
                if self._send(client, "/api/v1/dispatch", job) in (200, 201):
                    tokens = {"tokens_in": rng.randint(1, 5000), "tokens_out": rng.randint(0, 999)}
                    self._send(client, "/api/v1/usage", {**job, "event": "job_completed", **tokens})
        finally:
            client.close()

    def _send(self, client: Client, path: str, body: dict) -> int | None:
        """Send once (or, with retry_broken, up to three times while the connection breaks:
        dispatch and reports are idempotent by job_id); return the status, None if none."""
        for _ in range(3 if self.retry_broken else 1):
            sent_at = time.monotonic()
            try:
                answer = client.post(path, body)
            except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, refusals
                seconds = time.monotonic() - sent_at
                self.outcomes.append(Outcome(sent_at, path, None, seconds=seconds, error=repr(exc)))
                continue
            self.outcomes.append(
                Outcome(
                    sent_at,
                    path,
                    answer.status,
                    answer.content_type,
                    answer.retry_after,
                    answer.seconds,
                )
            )
            return answer.status
        return None

    def successes_since(self, moment: float) -> int:
        return sum(o.sent_at >= moment and o.status in (200, 201) for o in list(self.outcomes))


def wait_for(condition, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def half_written_jobs(db) -> dict[str, list]:
    """Ledger rows and log events that do not match each other, by kind of mismatch."""
    event_of = """SELECT 1 FROM quotas_usageevent e
        WHERE e.agent_id = j.agent_id AND e.job_id = j.job_id AND e.event = %s"""
    return {
        "completed without its event": db.query(
            f"SELECT job_id FROM quotas_job j WHERE state = 'completed'"
            f" AND NOT EXISTS ({event_of})",
            ("job_completed",),
        ),
        "started without its event": db.query(
            f"SELECT job_id FROM quotas_job j WHERE started_at IS NOT NULL"
            f" AND NOT EXISTS ({event_of})",
            ("job_started",),
        ),
        "event without its job": db.query(
            "SELECT event, job_id FROM quotas_usageevent e WHERE job_id <> '' AND NOT EXISTS"
            " (SELECT 1 FROM quotas_job j WHERE j.agent_id = e.agent_id AND j.job_id = e.job_id)"
        ),
        "charge differs from its event": db.query(
            "SELECT j.job_id FROM quotas_job j JOIN quotas_usageevent e"
            " ON e.agent_id = j.agent_id AND e.job_id = j.job_id AND e.event = 'job_completed'"
            " WHERE j.tokens_charged <> e.tokens_delta OR j.state <> 'completed'"
        ),
    }


NO_MISMATCH = {
    "completed without its event": [],
    "started without its event": [],
    "event without its job": [],
    "charge differs from its event": [],
}


def test_requests_answer_json_503_while_postgres_is_down_and_recover_after_it_returns(cluster):
    with live_service(cluster) as (db, server, key):
        with Load(server.port, key) as load:
            assert wait_for(lambda: load.successes_since(0) >= 20, within=20)
            cluster.stop()
            stopped_at = time.monotonic()
            time.sleep(4)  # the outage: clients keep sending
            cluster.start()
            restarted_at = time.monotonic()
            recovered = wait_for(lambda: load.successes_since(restarted_at) >= 20, within=20)
            time.sleep(1)
        outcomes = load.outcomes
        statuses = [o.status for o in outcomes]
        first_success = min(
            (o.sent_at for o in outcomes if o.sent_at > restarted_at and o.status in (200, 201)),
            default=None,
        )
        print(
            f"{len(outcomes)} requests, {statuses.count(503)} answered 503, slowest "
            f"{max(o.seconds for o in outcomes):.2f} s, first success "
            f"{(first_success or restarted_at) - restarted_at:.2f} s after the restart"
        )

        assert [o for o in outcomes if o.status is None] == []  # no timeouts, no resets
        assert max(o.seconds for o in outcomes) < CLIENT_TIMEOUT
        assert {o.content_type for o in outcomes} == {"application/json"}  # never HTML
        assert {o.status for o in outcomes} <= {200, 201, 503}  # no 500
        unavailable = [o for o in outcomes if o.status == 503]
        assert {o.retry_after for o in unavailable} == {"5"}
        outage = [o for o in outcomes if stopped_at + 0.5 < o.sent_at < restarted_at - 0.5]
        assert len(outage) > 10
        assert {o.status for o in outage} == {503}
        assert recovered, "no request succeeded within 20 s of PostgreSQL's restart"
        last_second = [o for o in outcomes if o.sent_at > outcomes[-1].sent_at - 1]
        assert {o.status for o in last_second} <= {200, 201}
        assert server.process.poll() is None  # recovered without a restart

        books = reconcile(db.url)
        assert books.returncode == 0, books.stdout + books.stderr
        assert half_written_jobs(db) == NO_MISMATCH


MAX_KILLS = 5  # a kill that finds its worker between requests cuts nothing off: try again


def kill_a_worker(server: Gunicorn, load: Load) -> float:
    """SIGKILL one of gunicorn's two workers, wait until gunicorn has replaced it and the load
    runs again; the moment of the kill."""
    workers = server.worker_pids()
    assert len(workers) == 2
    victim = workers[0]
    # Read before the kill: a client it cuts off may record its failure before we run again.
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    replaced = wait_for(
        lambda: len(server.worker_pids()) == 2 and victim not in server.worker_pids(),
        within=15,
    )
    assert replaced, "gunicorn did not replace the killed worker within 15 s"
    assert wait_for(lambda: load.successes_since(killed_at + 0.5) >= 50, within=20)
    return killed_at


def cut_off(load: Load, kills: list[float]) -> list[Outcome]:
    """Requests in flight at a kill (sent before it, given up after it) that got no answer."""
    return [
        o
        for o in list(load.outcomes)
        if o.status is None and any(o.sent_at < kill <= o.sent_at + o.seconds for kill in kills)
    ]


def test_a_worker_killed_mid_load_leaves_no_drift_and_no_half_written_job(cluster):
    with live_service(cluster) as (db, server, key):
        with Load(server.port, key, retry_broken=True) as load:
            assert wait_for(lambda: load.successes_since(0) >= 50, within=20)
            kills = [kill_a_worker(server, load)]
            while not cut_off(load, kills) and len(kills) < MAX_KILLS:
                kills.append(kill_a_worker(server, load))

        broken = cut_off(load, kills)
        print(
            f"{len(load.outcomes)} requests, {len(kills)} kills, "
            f"{len(broken)} requests cut off: {broken[:3]}"
        )
        assert len(broken) >= 1, f"none of {len(kills)} kills cut a request off"
        assert server.process.poll() is None
        answered = [o for o in load.outcomes if o.status is not None]
        assert {o.status for o in answered} <= {200, 201}
        assert all(o.content_type == "application/json" for o in answered)
        books = reconcile(db.url)
        assert books.returncode == 0, books.stdout + books.stderr
        assert half_written_jobs(db) == NO_MISMATCH
