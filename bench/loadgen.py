"""A small HTTP/1.1 load generator for bench/api.py: asyncio and raw sockets, no dependencies.

Each process runs many connections; each connection sends one operation at a time and keeps
its socket open unless the server closes it (gunicorn's sync workers answer every request
with ``Connection: close``, so then every operation pays a loopback connect, as any client
of that server would). An operation is one request, or several in a row (a job cycle);
its latency runs from the moment it was due to its last response byte.

Closed loop (``rate`` 0): each connection sends again as soon as it has an answer. Open loop
(``rate`` > 0): operations are due on a fixed schedule, so a slow answer delays the ones
behind it and shows in their latency instead of quietly lowering the load.

Every run is bounded twice: by its duration and by ``max_operations`` per connection; every
request by ``REQUEST_TIMEOUT``.
"""

import asyncio
import json
import multiprocessing
import time
from dataclasses import dataclass, field

REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class Workload:
    """What to send: ``kind`` is health, check, dispatch or cycle; the rest fills the bodies."""

    kind: str
    key: str
    host: str
    port: int
    agents: int
    models: tuple[str, ...]
    repos: tuple[str, ...]
    tag: str = ""  # makes job ids unique across runs


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    first_start: float = float("inf")
    last_end: float = 0.0
    cpu_seconds: float = 0.0  # spent by the load processes on the run, not on starting up


EXPECTED = {"health": (200,), "check": (200,), "dispatch": (201,), "cycle": (201, 200)}


def _post(workload: Workload, path: str, body: dict) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {workload.host}:{workload.port}\r\n"
        f"Authorization: Bearer {workload.key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def operation(workload: Workload, worker: int, connection: int, n: int) -> list[bytes]:
    """The request(s) of operation ``n`` on one connection: varied agents, models, repos."""
    if workload.kind == "health":
        return [f"GET /api/v1/health HTTP/1.1\r\nHost: {workload.host}\r\n\r\n".encode()]
    spread = worker * 7919 + connection * 104729 + n * 31
    agent = f"agent-{spread % workload.agents:06}"
    model = workload.models[spread % len(workload.models)]
    repo = workload.repos[(spread // 7) % len(workload.repos)]
    if workload.kind == "check":
        action = ("", "pr", "issue", "")[n % 4]
        body = {"agent_id": agent, "model": model, "repo": repo, "action": action}
        return [_post(workload, "/api/v1/check", body)]
    job_id = f"bench-{workload.tag}-{workload.kind}-{worker}-{connection}-{n}"
    dispatch = {"agent_id": agent, "job_id": job_id, "model": model, "repo": repo}
    requests = [_post(workload, "/api/v1/dispatch", dispatch)]
    if workload.kind == "cycle":
        report = {
            "agent_id": agent,
            "job_id": job_id,
            "model": model,
            "event": "job_completed",
            "tokens_in": 1000 + n % 5000,
            "tokens_out": 200 + n % 900,
        }
        requests.append(_post(workload, "/api/v1/usage", report))
    return requests


async def _exchange(reader, writer, request: bytes) -> tuple[int, bool]:
    """Send one request, read its whole answer; return the status and whether to reconnect."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            close = True
    if length:
        await reader.readexactly(length)
    return status, close


async def _connection(workload, worker, number, deadline, interval, offset, limit, outcome):
    reader = writer = None
    due = time.monotonic() + offset
    expected = EXPECTED[workload.kind]
    for n in range(limit):
        if interval:
            if due >= deadline:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            started, due = due, due + interval
        else:
            started = time.monotonic()
            if started >= deadline:
                break
        try:
            for request, wanted in zip(
                operation(workload, worker, number, n), expected, strict=True
            ):
                if writer is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(workload.host, workload.port), REQUEST_TIMEOUT
                    )
                status, close = await asyncio.wait_for(
                    _exchange(reader, writer, request), REQUEST_TIMEOUT
                )
                if close:
                    writer.close()
                    writer = None
                if status != wanted:
                    raise ValueError(f"HTTP {status}")
        except (OSError, ValueError, EOFError, asyncio.LimitOverrunError) as exc:
            name = str(exc) if isinstance(exc, ValueError) else type(exc).__name__
            outcome.errors[name] = outcome.errors.get(name, 0) + 1
            if writer is not None:
                writer.close()
                writer = None
            continue
        ended = time.monotonic()
        outcome.latencies.append(ended - started)
        outcome.first_start = min(outcome.first_start, started)
        outcome.last_end = max(outcome.last_end, ended)
    if writer is not None:
        writer.close()


async def _run(workload, worker, connections, start_at, seconds, rate, limit) -> Outcome:
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    outcome = Outcome()
    deadline = start_at + seconds
    interval = connections / rate if rate else 0.0
    await asyncio.gather(
        *(
            _connection(
                workload,
                worker,
                i,
                deadline,
                interval,
                interval * i / connections,
                limit,
                outcome,
            )
            for i in range(connections)
        )
    )
    return outcome


def _worker(workload, worker, connections, start_at, seconds, rate, limit, results) -> None:
    started = time.process_time()
    outcome = asyncio.run(_run(workload, worker, connections, start_at, seconds, rate, limit))
    outcome.cpu_seconds = time.process_time() - started
    results.put(outcome)


def drive(
    workload: Workload,
    *,
    connections: int,
    processes: int,
    seconds: float,
    rate: float = 0.0,
    max_operations: int = 1_000_000,
) -> Outcome:
    """Run the workload from ``processes`` separate processes; merge what they measured.

    ``rate`` (operations per second over all connections) 0 means as fast as answers come.
    """
    processes = max(1, min(processes, connections))
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.monotonic() + 0.3 + 0.2 * processes  # lets every process get going first
    workers = []
    for worker in range(processes):
        share = connections // processes + (worker < connections % processes)
        worker_rate = rate * share / connections
        args = (workload, worker, share, start_at, seconds, worker_rate, max_operations, results)
        workers.append(context.Process(target=_worker, args=args, daemon=True))
    for process in workers:
        process.start()
    merged = Outcome()
    try:
        for _ in workers:
            part = results.get(timeout=seconds + 2 * REQUEST_TIMEOUT + 30)
            merged.latencies += part.latencies
            for name, count in part.errors.items():
                merged.errors[name] = merged.errors.get(name, 0) + count
            merged.first_start = min(merged.first_start, part.first_start)
            merged.last_end = max(merged.last_end, part.last_end)
            merged.cpu_seconds += part.cpu_seconds
    finally:
        for process in workers:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
    return merged
