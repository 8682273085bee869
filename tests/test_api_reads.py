"""The read side of the API: usage of agents, models and repositories, the job ledger, and
the admin's reset of an agent's day.

The API reads the real clock, so every test here runs at a frozen NOON.
"""

from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import pytest
import time_machine

from quotas import services
from quotas.models import AgentAllowance, AgentUsage, Job, UsageEvent
from quotas.periods import day_start
from tests.conftest import run_job

MODEL = "anthropic/claude-sonnet-4.5"
TODAY = "2026-03-10T00:00:00Z"


@pytest.fixture(autouse=True)
def frozen_clock(now):
    with time_machine.travel(now, tick=False):
        yield now


def start(job_id, agent_id="agent-1", model="", repo="", now=None):
    outcome = services.dispatch(agent_id=agent_id, job_id=job_id, model=model, repo=repo, now=now)
    assert outcome.result.allowed, outcome.result
    return outcome.job


def finish(job_id, event="job_completed", agent_id="agent-1", tokens_in=0, tokens_out=0, now=None):
    return services.record_usage(
        agent_id=agent_id,
        job_id=job_id,
        event=event,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        now=now,
    )


# Agent usage


def test_agent_usage_shows_todays_tokens_jobs_and_running_jobs(api, make_allowance):
    make_allowance("agent-1", daily_token_limit=10_000, daily_job_limit=10, concurrent_jobs=3)
    start("job-1")
    start("job-2")
    finish("job-1", tokens_in=100, tokens_out=50)
    response = api.get("/api/v1/usage/agents/agent-1")
    assert response.status_code == 200
    assert response.json() == {
        "agent_id": "agent-1",
        "tokens_used": 150,
        "jobs_started": 2,
        "active_jobs": 1,
        "period_start": TODAY,
        "daily_token_limit": 10_000,
        "daily_job_limit": 10,
        "concurrent_jobs": 3,
        "status": "ok",
    }


@pytest.mark.parametrize("slash", ["", "/"])
def test_agent_usage_answers_with_or_without_a_trailing_slash(api, make_allowance, slash):
    make_allowance("agent.one:2")
    response = api.get(f"/api/v1/usage/agents/agent.one:2{slash}")
    assert (response.status_code, response.json()["agent_id"]) == (200, "agent.one:2")


def test_agent_usage_of_an_agent_without_usage_is_all_zero(api, make_allowance):
    make_allowance("agent-1", daily_token_limit=1000)
    data = api.get("/api/v1/usage/agents/agent-1").json()
    assert (data["tokens_used"], data["jobs_started"], data["active_jobs"], data["status"]) == (
        0,
        0,
        0,
        "ok",
    )


@pytest.mark.parametrize(
    "tokens, status",
    [(0, "ok"), (799, "ok"), (800, "warning"), (999, "warning"), (1000, "exceeded")],
)
def test_agent_status_warns_at_80_percent_of_the_daily_token_limit(
    api, make_allowance, tokens, status
):
    make_allowance("agent-1", daily_token_limit=1000)
    if tokens:
        run_job("agent-1", "spend", tokens_in=tokens)
    data = api.get("/api/v1/usage/agents/agent-1").json()
    assert (data["tokens_used"], data["status"]) == (tokens, status)


def test_agent_status_never_warns_without_a_token_limit(api, make_allowance):
    make_allowance("agent-1", daily_token_limit=0)
    run_job("agent-1", "spend", tokens_in=10**9)
    data = api.get("/api/v1/usage/agents/agent-1").json()
    assert (data["tokens_used"], data["status"]) == (10**9, "ok")


def test_agent_status_is_exceeded_at_the_daily_job_limit(api, make_allowance):
    make_allowance("agent-1", daily_job_limit=2)
    start("job-1")
    start("job-2")
    data = api.get("/api/v1/usage/agents/agent-1").json()
    assert (data["jobs_started"], data["status"]) == (2, "exceeded")


def test_a_paused_agent_reads_as_exceeded(api, make_allowance):
    make_allowance("agent-1", paused=True)
    assert api.get("/api/v1/usage/agents/agent-1").json()["status"] == "exceeded"


def test_yesterdays_usage_does_not_count_today(api, make_allowance, now):
    make_allowance("agent-1", daily_token_limit=1000)
    run_job("agent-1", "yesterday", tokens_in=900, now=now - timedelta(days=1))
    run_job("agent-1", "today", tokens_in=100)
    data = api.get("/api/v1/usage/agents/agent-1").json()
    assert (data["tokens_used"], data["jobs_started"], data["period_start"]) == (100, 1, TODAY)


def test_agent_usage_does_not_count_a_job_past_its_maximum_duration_as_active(
    api, make_allowance, now
):
    make_allowance("agent-1", concurrent_jobs=1, max_job_duration=timedelta(minutes=30))
    start("job-1", now=now - timedelta(hours=1))
    before_any_check = api.get("/api/v1/usage/agents/agent-1").json()["active_jobs"]
    services.check(agent_id="agent-1")  # expires job-1 on the way
    after_a_check = api.get("/api/v1/usage/agents/agent-1").json()["active_jobs"]
    assert (before_any_check, after_a_check) == (0, 0)


def test_agent_usage_counts_only_that_agents_jobs(api, make_allowance):
    make_allowance("agent-1")
    make_allowance("agent-2")
    start("job-1", agent_id="agent-2")
    run_job("agent-2", "spend", tokens_in=500)
    data = api.get("/api/v1/usage/agents/agent-1").json()
    assert (data["tokens_used"], data["jobs_started"], data["active_jobs"]) == (0, 0, 0)


def test_agent_usage_of_an_unknown_agent_is_404(api, make_allowance):
    make_allowance("agent-1")
    response = api.get("/api/v1/usage/agents/ghost")
    assert response.status_code == 404
    assert response.json() == {"detail": "allowance not found for agent: ghost"}


def test_reading_usage_does_not_create_an_allowance_from_the_default(api, make_allowance):
    make_allowance("*", daily_token_limit=1000)
    response = api.get("/api/v1/usage/agents/newcomer")
    assert response.status_code == 404
    assert response.json() == {"detail": "allowance not found for agent: newcomer"}
    assert AgentUsage.objects.count() == 0
    assert list(AgentAllowance.objects.values_list("agent_id", flat=True)) == ["*"]


def test_agent_usage_of_a_malformed_agent_id_is_400(api):
    response = api.get("/api/v1/usage/agents/bad%20agent")
    assert response.status_code == 400
    assert list(response.json()) == ["agent_id"]


def test_an_admin_key_may_read_agent_usage_too(admin_api, make_allowance):
    make_allowance("agent-1")
    assert admin_api.get("/api/v1/usage/agents/agent-1").status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/usage/agents/agent-1",
        f"/api/v1/usage/models/{MODEL}",
        "/api/v1/usage/repos/octo-org/api",
        "/api/v1/jobs",
    ],
)
def test_reads_without_a_key_are_401_with_a_bearer_challenge(client, make_allowance, url):
    make_allowance("agent-1")
    response = client.get(url)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


# Model usage


@pytest.fixture
def priced_model(make_model_quota):
    # $3 per million input tokens, $15 per million output tokens.
    return make_model_quota(
        MODEL, input_price_per_mtok=Decimal("3"), output_price_per_mtok=Decimal("15")
    )


@pytest.mark.parametrize("slash", ["", "/"])
def test_model_usage_shows_tokens_cost_in_cents_and_requests(
    api, make_allowance, priced_model, slash
):
    make_allowance("agent-1")
    run_job("agent-1", "job-1", model=MODEL, tokens_in=100_000, tokens_out=50_000)
    response = api.get(f"/api/v1/usage/models/{MODEL}{slash}")
    assert response.status_code == 200
    # 0.1 M x $3 + 0.05 M x $15 = $1.05
    assert response.json() == {
        "model": MODEL,
        "tokens_used": 150_000,
        "cost_cents": 105.0,
        "requests_last_hour": 1,
        "period_start": TODAY,
    }
    assert b'"cost_cents":105.0' in response.content


def test_model_cost_keeps_fractions_of_a_cent(api, make_allowance, priced_model):
    make_allowance("agent-1")
    run_job("agent-1", "job-1", model=MODEL, tokens_in=1)  # $3 per million: 0.0003 cents
    data = api.get(f"/api/v1/usage/models/{MODEL}").json()
    assert (data["tokens_used"], data["cost_cents"]) == (1, 0.0003)


def test_model_cost_adds_up_across_agents_and_halves_for_a_failed_job(
    api, make_allowance, priced_model
):
    make_allowance("agent-1")
    make_allowance("agent-2")
    start("job-1", model=MODEL)
    start("job-1", agent_id="agent-2", model=MODEL)
    finish("job-1", tokens_in=1_000_000)  # $3.00
    finish("job-1", event="job_failed", agent_id="agent-2", tokens_out=1_000_000)  # $15.00 / 2
    data = api.get(f"/api/v1/usage/models/{MODEL}").json()
    assert (data["tokens_used"], data["cost_cents"], data["requests_last_hour"]) == (
        1_500_000,
        1050.0,
        2,
    )


def test_model_requests_count_only_jobs_started_in_the_last_sixty_minutes(api, make_allowance, now):
    make_allowance("agent-1")
    start("old", model=MODEL, now=now - timedelta(minutes=61))
    start("edge", model=MODEL, now=now - timedelta(minutes=60))
    start("recent", model=MODEL, now=now - timedelta(minutes=59))
    start("now", model=MODEL)
    start("other", model="openai:gpt-4o")
    data = api.get(f"/api/v1/usage/models/{MODEL}").json()
    assert data["requests_last_hour"] == 2


def test_model_usage_of_an_unused_model_without_quota_is_all_zero(api):
    response = api.get("/api/v1/usage/models/openai:gpt-4o")
    assert response.status_code == 200
    assert response.json() == {
        "model": "openai:gpt-4o",
        "tokens_used": 0,
        "cost_cents": 0.0,
        "requests_last_hour": 0,
        "period_start": TODAY,
    }


def test_model_usage_of_yesterday_reads_as_zero_today(api, make_allowance, priced_model, now):
    make_allowance("agent-1")
    yesterday = now - timedelta(days=1)
    run_job("agent-1", "job-1", model=MODEL, tokens_in=1000, now=yesterday)
    data = api.get(f"/api/v1/usage/models/{MODEL}").json()
    assert (data["tokens_used"], data["cost_cents"], data["requests_last_hour"]) == (0, 0.0, 0)


def test_model_usage_tells_apart_models_that_share_a_prefix(api, make_allowance):
    make_allowance("agent-1")
    run_job("agent-1", "job-1", model="anthropic/claude-sonnet-4", tokens_in=70)
    run_job("agent-1", "job-2", model=MODEL, tokens_in=30)
    assert api.get("/api/v1/usage/models/anthropic/claude-sonnet-4").json()["tokens_used"] == 70
    assert api.get(f"/api/v1/usage/models/{MODEL}/").json()["tokens_used"] == 30


@pytest.mark.parametrize("model", ["bad%20model", "/leading-slash", "-/x/"])
def test_model_usage_of_a_malformed_model_is_400(api, model):
    response = api.get(f"/api/v1/usage/models/{model}")
    assert response.status_code == 400
    assert list(response.json()) == ["model"]


# Repository usage


@pytest.mark.parametrize("slash", ["", "/"])
def test_repo_usage_counts_todays_prs_and_issues(api, now, slash):
    services.record_repo_event(repo="octo-org/api.v2", kind="pr_opened")
    services.record_repo_event(repo="octo-org/api.v2", kind="pr_opened")
    services.record_repo_event(repo="octo-org/api.v2", kind="issue_opened")
    services.record_repo_event(
        repo="octo-org/api.v2", kind="pr_opened", now=now - timedelta(days=1)
    )
    services.record_repo_event(repo="octo-org/api", kind="pr_opened")
    response = api.get(f"/api/v1/usage/repos/octo-org/api.v2{slash}")
    assert response.status_code == 200
    assert response.json() == {
        "repo": "octo-org/api.v2",
        "prs_opened": 2,
        "issues_opened": 1,
        "cooldown_until": None,
        "period_start": TODAY,
    }


def test_repo_usage_shows_when_a_running_cooldown_ends(api, make_repo_limit, now):
    make_repo_limit("octo-org/api", cooldown_after_failure=timedelta(minutes=30))
    services.record_repo_event(repo="octo-org/api", kind="failure", now=now - timedelta(minutes=10))
    data = api.get("/api/v1/usage/repos/octo-org/api").json()
    assert data["cooldown_until"] == "2026-03-10T12:20:00Z"


def test_repo_usage_shows_no_cooldown_once_it_is_over(api, make_repo_limit, now):
    make_repo_limit("octo-org/api", cooldown_after_failure=timedelta(minutes=30))
    services.record_repo_event(repo="octo-org/api", kind="failure", now=now - timedelta(minutes=31))
    assert api.get("/api/v1/usage/repos/octo-org/api").json()["cooldown_until"] is None


def test_a_cooldown_that_began_yesterday_still_shows_after_midnight(api, make_repo_limit, now):
    make_repo_limit("octo-org/api", cooldown_after_failure=timedelta(minutes=30))
    midnight = day_start(now)
    services.record_repo_event(
        repo="octo-org/api", kind="failure", now=midnight - timedelta(minutes=10)
    )
    with time_machine.travel(midnight + timedelta(minutes=5), tick=False):
        data = api.get("/api/v1/usage/repos/octo-org/api").json()
    assert (data["cooldown_until"], data["period_start"]) == ("2026-03-10T00:20:00Z", TODAY)


def test_a_failed_job_on_a_repo_starts_its_cooldown(api, make_allowance, make_repo_limit, now):
    make_allowance("agent-1")
    make_repo_limit("octo-org/api", cooldown_after_failure=timedelta(hours=1))
    run_job(
        "agent-1", "job-1", repo="octo-org/api", event="job_failed", now=now - timedelta(minutes=5)
    )
    data = api.get("/api/v1/usage/repos/octo-org/api").json()
    assert data["cooldown_until"] == "2026-03-10T12:55:00Z"


def test_repo_usage_of_an_untouched_repo_is_all_zero(api):
    response = api.get("/api/v1/usage/repos/octo-org/quiet")
    assert response.status_code == 200
    assert (response.json()["prs_opened"], response.json()["issues_opened"]) == (0, 0)


@pytest.mark.parametrize("repo", ["-octo/api", "octo--org/api", "octo-org/.."])
def test_repo_usage_of_a_malformed_repo_is_400(api, repo):
    response = api.get(f"/api/v1/usage/repos/{repo}")
    assert response.status_code == 400
    assert list(response.json()) == ["repo"]


# The job ledger


def job_ids(response) -> list[str]:
    return [job["job_id"] for job in response.json()["results"]]


def test_jobs_lists_the_ledger_newest_first_with_every_field(api, make_allowance, priced_model):
    make_allowance("agent-1")
    run_job("agent-1", "job-1", model=MODEL, repo="octo-org/api", tokens_in=1000, tokens_out=2000)
    start("job-2")
    response = api.get("/api/v1/jobs")
    assert response.status_code == 200
    data = response.json()
    assert (data["next"], data["previous"]) == (None, None)
    assert data["results"] == [
        {
            "agent_id": "agent-1",
            "job_id": "job-2",
            "model": "",
            "repo": "",
            "state": "running",
            "started_at": "2026-03-10T12:00:00Z",
            "ended_at": None,
            "tokens_in": 0,
            "tokens_out": 0,
            "tokens_charged": 0,
            "cost_charged_microcents": 0,
        },
        {
            "agent_id": "agent-1",
            "job_id": "job-1",
            "model": MODEL,
            "repo": "octo-org/api",
            "state": "completed",
            "started_at": "2026-03-10T12:00:00Z",
            "ended_at": "2026-03-10T12:00:00Z",
            "tokens_in": 1000,
            "tokens_out": 2000,
            "tokens_charged": 3000,
            # 1000 x $3 / M + 2000 x $15 / M = $0.033 = 3.3 cents
            "cost_charged_microcents": 3_300_000,
        },
    ]


def test_jobs_of_an_empty_ledger_is_an_empty_page(api):
    response = api.get("/api/v1/jobs/")
    assert response.status_code == 200
    assert response.json() == {"next": None, "previous": None, "results": []}


@pytest.fixture
def ledger(make_allowance):
    """agent-1: a1 completed, a2 running, a3 failed; agent-2: b1 running, b2 cancelled."""
    make_allowance("agent-1")
    make_allowance("agent-2")
    for agent_id, job_id in [("agent-1", "a1"), ("agent-1", "a2"), ("agent-1", "a3")]:
        start(job_id, agent_id=agent_id)
    start("b1", agent_id="agent-2")
    start("b2", agent_id="agent-2")
    finish("a1", tokens_in=10)
    finish("a3", event="job_failed", tokens_in=10)
    finish("b2", event="job_cancelled", agent_id="agent-2")


@pytest.mark.parametrize(
    "query, expected",
    [
        ("", ["b2", "b1", "a3", "a2", "a1"]),
        ("?agent_id=agent-1", ["a3", "a2", "a1"]),
        ("?agent_id=agent-2", ["b2", "b1"]),
        ("?agent_id=nobody", []),
        ("?state=running", ["b1", "a2"]),
        ("?state=completed", ["a1"]),
        ("?state=failed", ["a3"]),
        ("?state=cancelled", ["b2"]),
        ("?state=expired", []),
        ("?agent_id=agent-1&state=running", ["a2"]),
        ("?agent_id=agent-2&state=failed", []),
        ("?agent_id=&state=", ["b2", "b1", "a3", "a2", "a1"]),
    ],
)
def test_jobs_filter_by_agent_and_state(api, ledger, query, expected):
    response = api.get(f"/api/v1/jobs{query}")
    assert response.status_code == 200
    assert job_ids(response) == expected


@pytest.mark.parametrize(
    "query, field",
    [("?state=done", "state"), ("?state=RUNNING", "state"), ("?agent_id=bad%20agent", "agent_id")],
)
def test_jobs_with_a_bad_filter_is_400_keyed_by_the_filter(api, ledger, query, field):
    response = api.get(f"/api/v1/jobs{query}")
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_an_expired_job_is_listed_as_expired(api, make_allowance, now):
    make_allowance("agent-1", max_job_duration=timedelta(minutes=30))
    start("job-1", now=now - timedelta(hours=1))
    start("job-2")  # expires job-1 on the way
    response = api.get("/api/v1/jobs?state=expired")
    assert job_ids(response) == ["job-1"]
    assert response.json()["results"][0]["ended_at"] == "2026-03-10T12:00:00Z"


@pytest.mark.parametrize("page_size, pages", [(1, 7), (2, 4), (3, 3), (7, 1), (50, 1)])
def test_jobs_next_links_walk_every_job_exactly_once(api, make_allowance, page_size, pages):
    make_allowance("agent-1")
    for n in range(7):
        start(f"job-{n}")
    url = f"/api/v1/jobs?page_size={page_size}"
    seen, visited = [], 0
    while url:
        response = api.get(url)
        assert response.status_code == 200
        assert len(response.json()["results"]) <= page_size
        seen += job_ids(response)
        url = response.json()["next"]
        visited += 1
    assert visited == pages
    assert seen == [f"job-{n}" for n in reversed(range(7))]


def test_jobs_next_links_keep_the_filters(api, ledger):
    first = api.get("/api/v1/jobs?agent_id=agent-1&page_size=2")
    next_url = first.json()["next"]
    assert parse_qs(urlparse(next_url).query)["agent_id"] == ["agent-1"]
    second = api.get(next_url)
    assert job_ids(first) + job_ids(second) == ["a3", "a2", "a1"]
    assert second.json()["next"] is None
    previous = api.get(second.json()["previous"])
    assert job_ids(previous) == ["a3", "a2"]


def test_jobs_without_page_size_answers_up_to_100_per_page(api, make_allowance):
    make_allowance("agent-1")
    for n in range(101):
        start(f"job-{n:03}")
    first = api.get("/api/v1/jobs")
    assert len(first.json()["results"]) == 100
    assert job_ids(api.get(first.json()["next"])) == ["job-000"]


def test_jobs_with_a_malformed_cursor_is_404(api, ledger):
    response = api.get("/api/v1/jobs?cursor=not-a-cursor")
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor"}


# Resetting an agent's day


@pytest.fixture
def busy_agent(make_allowance, now):
    """agent-1 today: 3 jobs started, one still running, 700 tokens used."""
    make_allowance("agent-1", daily_token_limit=1000, daily_job_limit=5, concurrent_jobs=3)
    start("job-1")
    start("job-2")
    start("job-3")
    finish("job-1", tokens_in=500)
    finish("job-2", event="job_failed", tokens_in=400)


@pytest.mark.parametrize("slash", ["", "/"])
def test_an_admin_key_resets_an_agents_day_and_running_jobs_keep_running(
    admin_api, busy_agent, now, slash
):
    response = admin_api.post(f"/api/v1/agents/agent-1/reset{slash}")
    assert response.status_code == 200
    assert response.json() == {
        "agent_id": "agent-1",
        "tokens_used": 0,
        "jobs_started": 0,
        "active_jobs": 1,
        "period_start": TODAY,
        "daily_token_limit": 1000,
        "daily_job_limit": 5,
        "concurrent_jobs": 3,
        "status": "ok",
    }
    usage = AgentUsage.objects.get(agent_id="agent-1", period_start=day_start(now))
    assert (usage.tokens_used, usage.jobs_started) == (0, 0)
    assert Job.objects.get(job_id="job-3").state == "running"
    event = UsageEvent.objects.get(event="usage_reset")
    assert (event.agent_id, event.tokens_delta, event.jobs_delta) == ("agent-1", -700, -3)


def test_a_reset_leaves_other_agents_alone(admin_api, busy_agent, make_allowance):
    make_allowance("agent-2")
    run_job("agent-2", "spend", tokens_in=300)
    assert admin_api.post("/api/v1/agents/agent-1/reset").status_code == 200
    data = admin_api.get("/api/v1/usage/agents/agent-2").json()
    assert (data["tokens_used"], data["jobs_started"]) == (300, 1)


def test_a_reset_shows_through_agent_usage(admin_api, api, busy_agent):
    assert api.get("/api/v1/usage/agents/agent-1").json()["tokens_used"] == 700
    admin_api.post("/api/v1/agents/agent-1/reset")
    data = api.get("/api/v1/usage/agents/agent-1").json()
    assert (data["tokens_used"], data["jobs_started"], data["active_jobs"]) == (0, 0, 1)


def test_a_dispatcher_key_cannot_reset_and_usage_stays(api, busy_agent):
    response = api.post("/api/v1/agents/agent-1/reset")
    assert response.status_code == 403
    assert response.json() == {"detail": "This action needs an API key with the admin role."}
    usage = AgentUsage.objects.get(agent_id="agent-1")
    assert (usage.tokens_used, usage.jobs_started) == (700, 3)
    assert not UsageEvent.objects.filter(event="usage_reset").exists()


def test_a_reset_without_a_key_is_401_and_usage_stays(client, busy_agent):
    response = client.post("/api/v1/agents/agent-1/reset")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert AgentUsage.objects.get(agent_id="agent-1").tokens_used == 700


def test_a_reset_of_an_unknown_agent_is_404(admin_api, busy_agent):
    response = admin_api.post("/api/v1/agents/ghost/reset")
    assert response.status_code == 404
    assert response.json() == {"detail": "allowance not found for agent: ghost"}
    assert AgentUsage.objects.get(agent_id="agent-1").tokens_used == 700


def test_a_reset_of_a_malformed_agent_id_is_400(admin_api):
    response = admin_api.post("/api/v1/agents/bad%20agent/reset")
    assert (response.status_code, list(response.json())) == (400, ["agent_id"])


def test_a_reset_of_an_agent_without_usage_today_is_all_zero(admin_api, make_allowance):
    make_allowance("agent-1")
    response = admin_api.post("/api/v1/agents/agent-1/reset")
    assert response.status_code == 200
    assert (response.json()["tokens_used"], response.json()["jobs_started"]) == (0, 0)
    assert not UsageEvent.objects.filter(event="usage_reset").exists()


def test_a_second_reset_changes_nothing_more(admin_api, busy_agent):
    admin_api.post("/api/v1/agents/agent-1/reset")
    response = admin_api.post("/api/v1/agents/agent-1/reset")
    assert (response.status_code, response.json()["tokens_used"]) == (200, 0)
    assert UsageEvent.objects.filter(event="usage_reset").count() == 1


def test_reset_answers_only_to_post(admin_api, busy_agent):
    response = admin_api.get("/api/v1/agents/agent-1/reset")
    assert response.status_code == 405
    assert AgentUsage.objects.get(agent_id="agent-1").tokens_used == 700
