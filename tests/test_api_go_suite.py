"""The upstream Go package's test cases, asked of the service through its HTTP API only.

Limits are set up with fixtures or the admin API; usage is put on the books with usage reports
and dispatches (where Go wrote to its store directly); every figure checked comes back from
the API. The clock is frozen at a Tuesday noon so that "until midnight" is exactly 12 hours.
Where the service deliberately differs from Go, the test says so.
"""

import pytest
import time_machine

from tests.conftest import NOON

CHECK = "/api/v1/check"
DISPATCH = "/api/v1/dispatch"
USAGE = "/api/v1/usage"
UNTIL_MIDNIGHT = 12 * 60 * 60


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOON, tick=False):
        yield


def check(api, agent_id, model=""):
    response = api.post(CHECK, {"agent_id": agent_id, "model": model}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def dispatch(api, agent_id, job_id, model=""):
    return api.post(
        DISPATCH, {"agent_id": agent_id, "job_id": job_id, "model": model}, format="json"
    )


def report(api, agent_id, job_id, event, *, tokens_in=0, tokens_out=0, model=""):
    return api.post(
        USAGE,
        {
            "agent_id": agent_id,
            "job_id": job_id,
            "event": event,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "model": model,
        },
        format="json",
    )


def use_tokens(api, agent_id, tokens, *, job_id="spent", model=""):
    """Charge tokens through a completed job's report (Go: store.IncrementUsage(id, n, 0))."""
    response = report(api, agent_id, job_id, "job_completed", tokens_in=tokens, model=model)
    assert response.status_code == 200, response.json()


def start_jobs(api, agent_id, count, *, prefix="job"):
    """Start jobs that keep running (Go: store.IncrementUsage(id, 0, count))."""
    for n in range(1, count + 1):
        response = report(api, agent_id, f"{prefix}-{n}", "job_started")
        assert response.status_code == 200, response.json()


def agent_usage(api, agent_id):
    response = api.get(f"/api/v1/usage/agents/{agent_id}")
    assert response.status_code == 200, response.json()
    return response.json()


def model_tokens(api, model):
    response = api.get(f"/api/v1/usage/models/{model}")
    assert response.status_code == 200, response.json()
    return response.json()["tokens_used"]


def allowed(status="ok", *, tokens=-1, jobs=-1):
    return {
        "allowed": True,
        "status": status,
        "remaining_tokens": tokens,
        "remaining_jobs": jobs,
        "reason": "",
        "retry_after": None,
        "reason_code": "",
    }


def refused(reason, code, *, tokens=-1, jobs=-1, retry_after=None):
    return {
        "allowed": False,
        "status": "exceeded",
        "remaining_tokens": tokens,
        "remaining_jobs": jobs,
        "reason": reason,
        "retry_after": retry_after,
        "reason_code": code,
    }


# AllowanceService.Check


def test_fresh_agent_is_allowed_with_its_whole_allowance(api, make_allowance):
    make_allowance("agent-1", daily_token_limit=100_000, daily_job_limit=10, concurrent_jobs=2)
    assert check(api, "agent-1") == allowed(tokens=100_000, jobs=10)


def test_exactly_at_the_daily_token_limit_is_refused(api, make_allowance):
    make_allowance("edge-agent", daily_token_limit=10_000)
    use_tokens(api, "edge-agent", 10_000)
    assert check(api, "edge-agent") == refused(
        "daily token limit exceeded",
        "daily_token_limit",
        tokens=0,
        retry_after=UNTIL_MIDNIGHT,
    )


def test_one_token_under_the_daily_token_limit_is_allowed_with_a_warning(api, make_allowance):
    make_allowance("edge-agent", daily_token_limit=10_000)
    use_tokens(api, "edge-agent", 9_999)
    assert check(api, "edge-agent") == allowed("warning", tokens=1)


def test_one_token_over_the_daily_token_limit_is_refused_with_nothing_remaining(
    api, make_allowance
):
    # Go answered a negative remaining_tokens here; remaining counts never go below 0.
    make_allowance("edge-agent", daily_token_limit=10_000)
    use_tokens(api, "edge-agent", 10_001)
    assert check(api, "edge-agent") == refused(
        "daily token limit exceeded",
        "daily_token_limit",
        tokens=0,
        retry_after=UNTIL_MIDNIGHT,
    )


def test_exactly_at_the_daily_job_limit_is_refused(api, make_allowance):
    make_allowance("edge-agent", daily_job_limit=5)
    start_jobs(api, "edge-agent", 5)
    assert check(api, "edge-agent") == refused(
        "daily job limit exceeded", "daily_job_limit", jobs=0, retry_after=UNTIL_MIDNIGHT
    )


def test_one_job_under_the_daily_job_limit_is_allowed(api, make_allowance):
    make_allowance("edge-agent", daily_job_limit=5)
    start_jobs(api, "edge-agent", 4)
    assert check(api, "edge-agent") == allowed(jobs=1)


def test_at_the_concurrent_job_limit_a_check_and_a_dispatch_are_refused(
    api, make_allowance, settings
):
    make_allowance("edge-agent", concurrent_jobs=2)
    for job_id in ("job-1", "job-2"):
        assert dispatch(api, "edge-agent", job_id).status_code == 201
    assert check(api, "edge-agent") == refused("concurrent job limit reached", "concurrent_jobs")
    response = dispatch(api, "edge-agent", "job-3")
    assert response.status_code == 429
    # No max_job_duration, so nobody knows when a slot frees: the configured default.
    assert response["Retry-After"] == str(settings.QUOTAS_DEFAULT_RETRY_AFTER) == "30"
    assert response.json() == {
        **refused("concurrent job limit reached", "concurrent_jobs"),
        "job_id": None,
        "duplicate": False,
    }
    assert agent_usage(api, "edge-agent")["active_jobs"] == 2


def test_completing_a_job_frees_its_concurrent_slot(api, make_allowance):
    make_allowance("edge-agent", concurrent_jobs=2)
    for job_id in ("job-1", "job-2"):
        assert dispatch(api, "edge-agent", job_id).status_code == 201
    assert dispatch(api, "edge-agent", "job-3").status_code == 429

    done = report(api, "edge-agent", "job-1", "job_completed", tokens_in=100, tokens_out=50)
    assert done.json()["usage"]["active_jobs"] == 1
    assert check(api, "edge-agent") == allowed()
    response = dispatch(api, "edge-agent", "job-3")
    assert response.status_code == 201
    assert response.json() == {**allowed(), "job_id": "job-3", "duplicate": False}


def test_one_slot_under_the_concurrent_job_limit_is_allowed(api, make_allowance):
    make_allowance("edge-agent", concurrent_jobs=3)
    start_jobs(api, "edge-agent", 2)
    assert check(api, "edge-agent") == allowed()


def test_a_started_job_holds_the_only_slot_until_it_completes(api, make_allowance):
    make_allowance("edge-agent", concurrent_jobs=1)
    start_jobs(api, "edge-agent", 1)
    assert check(api, "edge-agent")["reason"] == "concurrent job limit reached"
    report(api, "edge-agent", "job-1", "job_completed", tokens_in=100, tokens_out=50)
    assert check(api, "edge-agent") == allowed()


@pytest.mark.parametrize(
    ("limit", "used", "expected"),
    [
        (100, 79, allowed("ok", tokens=21)),
        (100, 80, allowed("warning", tokens=20)),
        (10_000, 7_900, allowed("ok", tokens=2_100)),
        (10_000, 8_000, allowed("warning", tokens=2_000)),
        (10_000, 9_000, allowed("warning", tokens=1_000)),
        (10_000, 9_999, allowed("warning", tokens=1)),
        (
            10_000,
            10_000,
            refused(
                "daily token limit exceeded",
                "daily_token_limit",
                tokens=0,
                retry_after=UNTIL_MIDNIGHT,
            ),
        ),
    ],
    ids=["79%-of-100", "80%-of-100", "79%", "80%", "90%", "99.99%", "100%"],
)
def test_status_turns_to_warning_at_80_percent_of_the_token_limit(
    api, make_allowance, limit, used, expected
):
    make_allowance("threshold-agent", daily_token_limit=limit)
    use_tokens(api, "threshold-agent", used)
    assert check(api, "threshold-agent") == expected


def test_checks_follow_usage_as_it_grows(api, make_allowance):
    make_allowance("incremental-agent", daily_token_limit=1_000)
    assert check(api, "incremental-agent") == allowed(tokens=1_000)
    use_tokens(api, "incremental-agent", 500, job_id="job-1")
    assert check(api, "incremental-agent") == allowed(tokens=500)
    use_tokens(api, "incremental-agent", 300, job_id="job-2")
    assert check(api, "incremental-agent") == allowed("warning", tokens=200)
    use_tokens(api, "incremental-agent", 200, job_id="job-3")
    assert check(api, "incremental-agent") == refused(
        "daily token limit exceeded",
        "daily_token_limit",
        tokens=0,
        retry_after=UNTIL_MIDNIGHT,
    )


def test_limits_of_zero_mean_unlimited(api, make_allowance):
    make_allowance("unlimited-agent", daily_token_limit=0, daily_job_limit=0, concurrent_jobs=0)
    use_tokens(api, "unlimited-agent", 999_999_999)
    start_jobs(api, "unlimited-agent", 5)
    assert check(api, "unlimited-agent") == allowed(tokens=-1, jobs=-1)
    assert dispatch(api, "unlimited-agent", "one-more").json() == {
        **allowed(tokens=-1, jobs=-1),
        "job_id": "one-more",
        "duplicate": False,
    }


# Model allowlist and the order of the rules


def test_model_not_in_the_allowlist_is_refused(api, make_allowance):
    make_allowance("agent-1", model_allowlist=["claude-sonnet-4-5-20250929"])
    assert check(api, "agent-1", "claude-opus-4-6") == refused(
        "model not in allowlist: claude-opus-4-6", "model_not_allowed"
    )


def test_model_in_the_allowlist_is_allowed(api, make_allowance):
    make_allowance(
        "agent-1", model_allowlist=["claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"]
    )
    assert check(api, "agent-1", "claude-sonnet-4-5-20250929") == allowed()


def test_a_check_without_a_model_skips_the_allowlist(api, make_allowance):
    make_allowance("agent-1", model_allowlist=["claude-sonnet-4-5-20250929"])
    assert check(api, "agent-1") == allowed()


def test_an_empty_allowlist_permits_every_model(api, make_allowance):
    make_allowance("any-model-agent", model_allowlist=[])
    assert check(api, "any-model-agent", "any-model-at-all") == allowed()


def test_allowlist_is_checked_before_the_token_limit(api, make_allowance):
    make_allowance(
        "order-agent", daily_token_limit=1_000, model_allowlist=["claude-haiku"], paused=False
    )
    use_tokens(api, "order-agent", 2_000)
    assert check(api, "order-agent", "claude-opus-4-6") == refused(
        "model not in allowlist: claude-opus-4-6", "model_not_allowed", tokens=0
    )
    # Waiting cannot clear this refusal, so dispatch says 403 rather than 429.
    response = dispatch(api, "order-agent", "job-1", "claude-opus-4-6")
    assert response.status_code == 403
    assert "Retry-After" not in response
    assert response.json()["reason"] == "model not in allowlist: claude-opus-4-6"


def test_a_paused_agent_is_refused_before_anything_else(api, make_allowance):
    make_allowance(
        "order-agent", daily_token_limit=1_000, model_allowlist=["claude-haiku"], paused=True
    )
    use_tokens(api, "order-agent", 2_000)
    assert check(api, "order-agent", "claude-opus-4-6") == refused(
        "agent paused", "agent_paused", tokens=0
    )
    response = dispatch(api, "order-agent", "job-1", "claude-opus-4-6")
    assert response.status_code == 403
    assert "Retry-After" not in response
    assert response.json() == {
        **refused("agent paused", "agent_paused", tokens=0),
        "job_id": None,
        "duplicate": False,
    }


# Global model budget


@pytest.mark.parametrize(
    ("used", "expected"),
    [
        (49_999, allowed("warning")),
        (
            50_000,
            refused(
                "global model token budget exceeded for: claude-opus-4-6",
                "model_token_budget",
                retry_after=UNTIL_MIDNIGHT,
            ),
        ),
        (
            50_001,
            refused(
                "global model token budget exceeded for: claude-opus-4-6",
                "model_token_budget",
                retry_after=UNTIL_MIDNIGHT,
            ),
        ),
    ],
    ids=["one-under", "exactly-at", "one-over"],
)
def test_global_model_budget_refuses_at_its_limit(api, admin_api, make_allowance, used, expected):
    make_allowance("model-edge-agent")
    created = admin_api.post(
        "/api/v1/model-quotas",
        {"model": "claude-opus-4-6", "daily_token_budget": 50_000},
        format="json",
    )
    assert created.status_code == 201, created.json()
    use_tokens(api, "model-edge-agent", used, model="claude-opus-4-6")
    assert model_tokens(api, "claude-opus-4-6") == used
    assert check(api, "model-edge-agent", "claude-opus-4-6") == expected


def test_global_model_budget_counts_every_agents_usage(api, make_allowance, make_model_quota):
    make_allowance("agent-1")
    make_allowance("agent-2")
    make_model_quota("claude-opus-4-6", daily_token_budget=1_000)
    use_tokens(api, "agent-1", 999, model="claude-opus-4-6")
    assert check(api, "agent-2", "claude-opus-4-6") == allowed("warning")
    use_tokens(api, "agent-2", 1, model="claude-opus-4-6")
    assert check(api, "agent-1", "claude-opus-4-6") == refused(
        "global model token budget exceeded for: claude-opus-4-6",
        "model_token_budget",
        retry_after=UNTIL_MIDNIGHT,
    )


# Unknown agents


def test_an_unknown_agent_is_refused_everywhere(api):
    expected = {"detail": "allowance not found for agent: unknown-agent"}
    responses = [
        api.post(CHECK, {"agent_id": "unknown-agent"}, format="json"),
        dispatch(api, "unknown-agent", "job-1"),
        report(api, "unknown-agent", "job-1", "job_started"),
        api.get("/api/v1/usage/agents/unknown-agent"),
    ]
    assert [(r.status_code, r.json()) for r in responses] == [(404, expected)] * 4


def test_an_unknown_agent_gets_its_allowance_from_the_default(api, make_allowance):
    make_allowance("*", daily_token_limit=5_000, daily_job_limit=3, concurrent_jobs=1)
    # Reading usage never creates an allowance; the first check does.
    assert api.get("/api/v1/usage/agents/new-agent").status_code == 404
    assert check(api, "new-agent") == allowed(tokens=5_000, jobs=3)
    usage = agent_usage(api, "new-agent")
    assert {key: usage[key] for key in ("agent_id", "daily_token_limit", "daily_job_limit")} == {
        "agent_id": "new-agent",
        "daily_token_limit": 5_000,
        "daily_job_limit": 3,
    }
    assert usage["concurrent_jobs"] == 1


# AllowanceService.RecordUsage


def test_a_started_job_counts_a_job_and_no_tokens(api, make_allowance):
    # Go recorded usage for agents without an allowance; here the agent needs one.
    make_allowance("agent-1")
    response = report(api, "agent-1", "job-1", "job_started")
    assert response.status_code == 200
    usage = response.json()["usage"]
    assert (usage["jobs_started"], usage["active_jobs"], usage["tokens_used"]) == (1, 1, 0)


def test_a_completed_job_charges_the_agent_and_the_model(api, make_allowance):
    make_allowance("agent-1")
    assert dispatch(api, "agent-1", "job-1", "claude-sonnet").status_code == 201
    response = report(
        api,
        "agent-1",
        "job-1",
        "job_completed",
        tokens_in=1_000,
        tokens_out=500,
        model="claude-sonnet",
    )
    usage = response.json()["usage"]
    assert (usage["tokens_used"], usage["active_jobs"]) == (1_500, 0)
    assert model_tokens(api, "claude-sonnet") == 1_500


def test_a_completed_job_is_charged_to_the_model_its_report_names(api, make_allowance):
    # Go's own case: the start report carries no model, the completion report does.
    make_allowance("agent-1")
    report(api, "agent-1", "job-1", "job_started")
    report(
        api,
        "agent-1",
        "job-1",
        "job_completed",
        tokens_in=1_000,
        tokens_out=500,
        model="claude-sonnet",
    )
    assert agent_usage(api, "agent-1")["tokens_used"] == 1_500
    assert model_tokens(api, "claude-sonnet") == 1_500


def test_a_completed_job_without_a_model_charges_only_the_agent(api, make_allowance):
    make_allowance("no-model-agent")
    report(api, "no-model-agent", "job-1", "job_started")
    response = report(
        api, "no-model-agent", "job-1", "job_completed", tokens_in=500, tokens_out=200
    )
    usage = response.json()["usage"]
    assert (usage["tokens_used"], usage["active_jobs"]) == (700, 0)


@pytest.mark.parametrize(
    ("tokens_in", "tokens_out", "charged"),
    [(100, 0, 50), (1_000, 1_000, 1_000), (600, 400, 500), (0, 0, 0)],
)
def test_a_failed_job_gets_half_its_tokens_back(
    api, make_allowance, tokens_in, tokens_out, charged
):
    make_allowance("agent-1")
    assert dispatch(api, "agent-1", "job-1", "claude-sonnet").status_code == 201
    response = report(
        api,
        "agent-1",
        "job-1",
        "job_failed",
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        model="claude-sonnet",
    )
    usage = response.json()["usage"]
    assert (usage["tokens_used"], usage["active_jobs"]) == (charged, 0)
    assert model_tokens(api, "claude-sonnet") == charged


def test_a_failed_job_with_an_odd_token_count_is_charged_the_odd_token(api, make_allowance):
    # 7 tokens: Go returned 7 // 2 = 3 and kept 4, for the agent and the model alike.
    make_allowance("odd-agent")
    assert dispatch(api, "odd-agent", "job-1", "claude-sonnet").status_code == 201
    response = report(
        api, "odd-agent", "job-1", "job_failed", tokens_in=4, tokens_out=3, model="claude-sonnet"
    )
    assert response.json()["usage"]["tokens_used"] == 4
    assert model_tokens(api, "claude-sonnet") == 4


def test_a_cancelled_job_is_charged_nothing(api, make_allowance):
    make_allowance("agent-1")
    assert dispatch(api, "agent-1", "job-1", "claude-sonnet").status_code == 201
    response = report(
        api,
        "agent-1",
        "job-1",
        "job_cancelled",
        tokens_in=500,
        tokens_out=500,
        model="claude-sonnet",
    )
    usage = response.json()["usage"]
    assert (usage["tokens_used"], usage["jobs_started"], usage["active_jobs"]) == (0, 1, 0)
    assert model_tokens(api, "claude-sonnet") == 0


def test_cancelling_a_job_never_subtracts_another_jobs_tokens(api, make_allowance):
    # Deliberate difference from Go, which subtracted a cancelled job's reported tokens
    # from the agent's total (here 700 - 700 = 0) though they had never been charged.
    make_allowance("agent-1")
    for job_id in ("job-a", "job-b"):
        assert dispatch(api, "agent-1", job_id).status_code == 201
    report(api, "agent-1", "job-a", "job_completed", tokens_in=500, tokens_out=200)
    response = report(api, "agent-1", "job-b", "job_cancelled", tokens_in=500, tokens_out=200)
    usage = response.json()["usage"]
    assert (usage["tokens_used"], usage["active_jobs"]) == (700, 0)
    assert agent_usage(api, "agent-1")["tokens_used"] == 700


# Duplicates and conflicts


def test_the_same_completed_report_twice_is_counted_once(api, make_allowance):
    make_allowance("agent-1")
    assert dispatch(api, "agent-1", "job-1").status_code == 201
    first = report(api, "agent-1", "job-1", "job_completed", tokens_in=300, tokens_out=200)
    again = report(api, "agent-1", "job-1", "job_completed", tokens_in=300, tokens_out=200)
    assert (first.status_code, first.json()["duplicate"]) == (200, False)
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    assert again.json()["usage"]["tokens_used"] == 500
    assert agent_usage(api, "agent-1")["tokens_used"] == 500


def test_a_failed_report_after_completion_is_a_conflict_and_changes_nothing(api, make_allowance):
    make_allowance("agent-1")
    assert dispatch(api, "agent-1", "job-1", "claude-sonnet").status_code == 201
    report(
        api,
        "agent-1",
        "job-1",
        "job_completed",
        tokens_in=300,
        tokens_out=200,
        model="claude-sonnet",
    )
    before = agent_usage(api, "agent-1")
    response = report(
        api, "agent-1", "job-1", "job_failed", tokens_in=300, tokens_out=200, model="claude-sonnet"
    )
    assert response.status_code == 409
    assert response.json() == {
        "detail": "job job-1 already ended as completed; job_failed cannot change that"
    }
    assert agent_usage(api, "agent-1") == before
    assert before["tokens_used"] == 500
    assert model_tokens(api, "claude-sonnet") == 500


# AllowanceService.ResetAgent


def test_reset_restores_capacity(api, admin_api, make_allowance):
    make_allowance("reset-agent", daily_token_limit=10_000, daily_job_limit=5)
    start_jobs(api, "reset-agent", 5)
    use_tokens(api, "reset-agent", 10_000, job_id="job-1")
    assert check(api, "reset-agent")["allowed"] is False

    assert api.post("/api/v1/agents/reset-agent/reset").status_code == 403
    response = admin_api.post("/api/v1/agents/reset-agent/reset")
    assert response.status_code == 200
    usage = response.json()
    # Running jobs keep running (and keep their slots); only today's counters start afresh.
    assert (usage["tokens_used"], usage["jobs_started"], usage["active_jobs"]) == (0, 0, 4)
    assert usage["status"] == "ok"
    assert check(api, "reset-agent") == allowed(tokens=10_000, jobs=5)


def test_resetting_an_unknown_agent_is_not_found(admin_api, db):
    response = admin_api.post("/api/v1/agents/ghost/reset")
    assert (response.status_code, response.json()) == (
        404,
        {"detail": "allowance not found for agent: ghost"},
    )
