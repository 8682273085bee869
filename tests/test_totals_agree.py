"""The dashboard's tiles, its chart and the three exports agree at any moment, whatever resets
happened in between: each counts what was consumed, a fact no reset changes.

Issue 12: after one reset the tokens tile fell by 176,595 while spend stayed, and the per-agent
and per-model exports disagreed. Here a day of dispatches, reports (on models and without) and
resets, through the API and through the admin's reset action, is checked after every step.
"""

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine

from quotas.dashboard import dashboard_context
from quotas.models import MICROCENTS_PER_CENT, AgentAllowance, AgentUsage, Job
from quotas.periods import day_start

DISPATCH, USAGE = "/api/v1/dispatch", "/api/v1/usage"
AGENTS_PAGE = "/admin/quotas/agentallowance/"
EXPORTS = {
    "agent": "/admin/export/agent-usage.csv",
    "model": "/admin/export/model-usage.csv",
    "agent_model": "/admin/export/agent-model-usage.csv",
}
TODAY, YESTERDAY = "2026-03-10", "2026-03-09"
# Each row's cost is rounded to the cent: a total may differ by half a cent per row.
HALF_CENT = MICROCENTS_PER_CENT // 2


@pytest.fixture
def clock(now):
    with time_machine.travel(now, tick=False) as traveller:
        yield traveller


@pytest.fixture
def fleet(make_allowance, make_model_quota):
    make_allowance("agent-a", daily_token_limit=1_000_000)
    make_allowance("agent-b", daily_token_limit=1_000_000)
    make_allowance("agent-c", daily_job_limit=2)
    make_model_quota("m-1", input_price_per_mtok=Decimal("3"), output_price_per_mtok=Decimal("15"))
    make_model_quota(
        "m-2", input_price_per_mtok=Decimal("1.25"), output_price_per_mtok=Decimal("10")
    )


def dispatch(api, agent_id, job_id, model=""):
    """Whether the job was admitted (201) or refused (403, 429)."""
    body = {"agent_id": agent_id, "job_id": job_id, "model": model}
    response = api.post(DISPATCH, body, format="json")
    assert response.status_code in (201, 403, 429), response.content
    return response.json()["allowed"]


def report(api, agent_id, job_id, event="job_completed", model="", tokens_in=0, tokens_out=0):
    body = {
        "agent_id": agent_id,
        "job_id": job_id,
        "event": event,
        "model": model,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
    }
    response = api.post(USAGE, body, format="json")
    assert response.status_code == 200, response.content


def admin_reset(client, *agent_ids):
    """The agents list's reset action, as a person runs it: asked first, then confirmed."""
    pks = [str(AgentAllowance.objects.get(agent_id=agent_id).pk) for agent_id in agent_ids]
    chosen = {"action": "reset_today", "_selected_action": pks}
    asked = client.post(AGENTS_PAGE, chosen)
    assert asked.status_code == 200 and "Yes, reset today" in asked.content.decode()
    done = client.post(AGENTS_PAGE, {**chosen, "confirmed": "yes", "reason": "issue 12"})
    assert done.status_code == 302


def export(client, kind, query):
    response = client.get(f"{EXPORTS[kind]}?{query}")
    assert response.status_code == 200, response.content[:300]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    return rows


def summed(rows):
    """Tokens, cost in microcents (from the rounded dollars) and jobs of export rows."""
    cost = sum(Decimal(row["cost_usd"]) for row in rows) * 100 * MICROCENTS_PER_CENT
    return sum(int(row["tokens"]) for row in rows), int(cost), sum(int(r["jobs"]) for r in rows)


def tiles(client):
    """The four numbers of the dashboard page's tiles, as shown."""
    page = client.get("/admin/").content.decode()
    return re.findall(r'<span class="qd-number">([^<]*)</span>', page)


def ledger(now):
    """What the job ledger says was charged and started today: an independent source."""
    today = day_start(now)
    ended = Job.objects.filter(ended_at__gte=today)
    started = Job.objects.filter(started_at__gte=today).count()
    tokens = sum(ended.values_list("tokens_charged", flat=True))
    return tokens, sum(ended.values_list("cost_charged_microcents", flat=True)), started


def assert_books_agree(client, now):
    context = dashboard_context(now=now)
    totals = context["totals"]
    tokens, cost, jobs = totals["tokens"], totals["cost_microcents"], totals["jobs_run"]
    assert (tokens, cost, jobs) == ledger(now)
    # The tiles as the page shows them.
    shown = tiles(client)
    assert shown[:3] == [f"{tokens:,}", _dollars(cost), f"{jobs:,}"]
    # The chart's data: today's bar, its stacks, the cost line and the table of numbers.
    history = context["history"]
    point = history["days"][-1]
    assert (point["tokens"], point["cost_microcents"]) == (tokens, cost)
    stacked = sum(agent["tokens"][-1] for agent in history["agents"])
    assert stacked + history["other_agent_tokens"][-1] == tokens
    assert sum(model["cost_microcents"][-1] for model in history["models"]) == cost
    numbers = context["charts"][0]["numbers"]
    assert numbers["rows"][-1]["cells"][-2:] == [f"{tokens:,}", _dollars(cost)]
    # Every export of today: to the token and the job, and to the cent within rounding.
    today = f"first_day={TODAY}&last_day={TODAY}"
    for kind in EXPORTS:
        for rows in (export(client, kind, today), export(client, kind, f"{today}&rows=range")):
            got_tokens, got_cost, got_jobs = summed(rows)
            assert (got_tokens, got_jobs) == (tokens, jobs), kind
            assert abs(got_cost - cost) <= HALF_CENT * len(rows), kind
    return context


def _dollars(microcents):
    cents = (microcents + HALF_CENT) // MICROCENTS_PER_CENT
    return f"${cents // 100:,}.{cents % 100:02d}"


def test_tiles_chart_and_exports_agree_through_dispatches_reports_and_resets(
    clock, fleet, api, admin_api, login, now
):
    client = login()
    # Yesterday: a job on a model and one without.
    clock.move_to(now - timedelta(days=1))
    assert dispatch(api, "agent-a", "a0", "m-1")
    report(api, "agent-a", "a0", model="m-1", tokens_in=10_000, tokens_out=2_000)
    report(api, "agent-b", "b0", tokens_in=5_000)
    clock.move_to(now)
    assert_books_agree(client, now)

    # Today: on a model, reported without a dispatch, failed without a model, cancelled.
    assert dispatch(api, "agent-a", "a1", "m-1")
    report(api, "agent-a", "a1", model="m-1", tokens_in=100_000, tokens_out=20_000)
    report(api, "agent-b", "b1", model="m-2", tokens_in=333_333, tokens_out=7_777)
    assert dispatch(api, "agent-b", "b2")
    report(api, "agent-b", "b2", event="job_failed", tokens_in=1_001)
    assert dispatch(api, "agent-c", "c1", "m-2")
    report(api, "agent-c", "c1", event="job_cancelled", model="m-2", tokens_in=9_999)
    before_reset = assert_books_agree(client, now)["totals"]
    # 120,000 + 341,110 + 501 (half of 1,001, rounded up) + nothing for the cancelled job.
    assert before_reset["tokens"] == 461_611

    # The API's reset gives agent-a its day back; what it consumed stays.
    response = admin_api.post("/api/v1/agents/agent-a/reset", {"reason": "test"}, format="json")
    assert (response.status_code, response.json()["tokens_used"]) == (200, 0)
    after_reset = assert_books_agree(client, now)["totals"]
    assert after_reset == before_reset

    # More work, then the admin's reset of two agents, then work without a model.
    report(api, "agent-a", "a2", model="m-2", tokens_in=50_000, tokens_out=5_000)
    admin_reset(client, "agent-a", "agent-b")
    assert AgentUsage.objects.filter(period_start=day_start(now), tokens_used__gt=0).count() == 0
    assert dispatch(api, "agent-c", "c2")
    report(api, "agent-c", "c2", tokens_in=777)
    # A job still running counts as started; a refused one only as a refusal.
    assert dispatch(api, "agent-a", "a3", "m-1")
    assert not dispatch(api, "agent-c", "c3")
    context = assert_books_agree(client, now)

    assert context["totals"] == {
        "tokens": 461_611 + 55_000 + 777,
        # $0.60 + $0.49443625 + half of nothing + $0.1125, in microcents.
        "cost_microcents": 60_000_000 + 49_443_625 + 11_250_000,
        # Started: a1, b2, c1, c2 and a3; b1 and a2 were reported without a dispatch.
        "jobs_run": 5,
        "refusals": 1,
    }
    assert tiles(client) == ["517,388", "$1.21", "5", "1"]
    model_rows = export(client, "model", f"first_day={TODAY}&last_day={TODAY}")
    assert [(row["model"], row["tokens"], row["cost_usd"], row["jobs"]) for row in model_rows] == [
        ("m-1", "120000", "0.60", "2"),
        ("m-2", "396110", "0.61", "1"),
        ("(no model)", "1278", "0.00", "2"),
    ]

    # Both days, per day and as one range: the exports agree with the chart's two bars.
    both_days = f"first_day={YESTERDAY}&last_day={TODAY}"
    chart_tokens = sum(day["tokens"] for day in context["history"]["days"])
    chart_cost = sum(day["cost_microcents"] for day in context["history"]["days"])
    assert chart_tokens == 517_388 + 17_000
    for kind in EXPORTS:
        for rows in (
            export(client, kind, both_days),
            export(client, kind, f"{both_days}&rows=range"),
        ):
            got_tokens, got_cost, got_jobs = summed(rows)
            assert (got_tokens, got_jobs) == (chart_tokens, 5 + 1), kind
            assert abs(got_cost - chart_cost) <= HALF_CENT * len(rows), kind
