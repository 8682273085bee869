"""POST check, dispatch, usage and repo-events: answers, status codes, and bad input."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from quotas.models import AgentUsage, Job, ModelUsage, RepoUsage, UsageEvent

CHECK, DISPATCH, USAGE, REPO_EVENTS = (
    "/api/v1/check",
    "/api/v1/dispatch",
    "/api/v1/usage",
    "/api/v1/repo-events",
)
RESULT_FIELDS = {
    "allowed",
    "status",
    "remaining_tokens",
    "remaining_jobs",
    "reason",
    "retry_after",
    "reason_code",
}


def books():
    """Everything a request could have changed."""
    return (
        list(Job.objects.values_list("job_id", "state", "tokens_charged")),
        list(AgentUsage.objects.values_list("agent_id", "tokens_used", "jobs_started")),
        list(ModelUsage.objects.values_list("model", "tokens_used", "requests")),
        list(RepoUsage.objects.values_list("repo", "prs_opened", "last_failure_at")),
        UsageEvent.objects.count(),
    )


# check


def test_check_answers_the_go_shape(api, make_allowance):
    make_allowance(daily_token_limit=1000, daily_job_limit=10)
    response = api.post(CHECK, {"agent_id": "agent-1"}, format="json")
    assert response.status_code == 200
    assert response.json() == {
        "allowed": True,
        "status": "ok",
        "remaining_tokens": 1000,
        "remaining_jobs": 10,
        "reason": "",
        "retry_after": None,
        "reason_code": "",
    }


def test_a_refused_check_is_still_200_and_says_why(api, make_allowance, make_repo_limit):
    make_allowance()
    make_repo_limit(max_daily_prs=1)
    api.post(REPO_EVENTS, {"repo": "octo-org/api", "kind": "pr_opened"}, format="json")
    response = api.post(
        CHECK, {"agent_id": "agent-1", "repo": "octo-org/api", "action": "pr"}, format="json"
    )
    body = response.json()
    assert response.status_code == 200
    assert (body["allowed"], body["status"], body["reason"], body["reason_code"]) == (
        False,
        "exceeded",
        "daily PR limit reached for: octo-org/api",
        "repo_pr_limit",
    )
    assert 0 < body["retry_after"] <= 24 * 3600


def test_check_of_an_unknown_agent_is_404(api, db):
    response = api.post(CHECK, {"agent_id": "ghost"}, format="json")
    assert (response.status_code, response.json()) == (
        404,
        {"detail": "allowance not found for agent: ghost"},
    )


def test_trailing_slash_and_unknown_fields_are_accepted(api, make_allowance):
    make_allowance()
    response = api.post(CHECK + "/", {"agent_id": "agent-1", "colour": "blue"}, format="json")
    assert (response.status_code, response.json()["allowed"]) == (200, True)


# dispatch


def test_admitted_dispatch_is_201_with_the_job_id(api, make_allowance):
    make_allowance(daily_job_limit=3)
    response = api.post(DISPATCH, {"agent_id": "agent-1", "job_id": "job-1"}, format="json")
    body = response.json()
    assert response.status_code == 201
    assert set(body) == RESULT_FIELDS | {"job_id", "duplicate"}
    assert (body["allowed"], body["job_id"], body["duplicate"], body["remaining_jobs"]) == (
        True,
        "job-1",
        False,
        2,
    )
    assert Job.objects.get().state == "running"


def test_the_same_job_again_is_200_with_the_first_decision(api, make_allowance):
    make_allowance(daily_job_limit=3)
    first = api.post(DISPATCH, {"agent_id": "agent-1", "job_id": "job-1"}, format="json").json()
    again = api.post(DISPATCH, {"agent_id": "agent-1", "job_id": "job-1"}, format="json")
    assert again.status_code == 200
    assert again.json() == {**first, "duplicate": True}
    assert AgentUsage.objects.get().jobs_started == 1


def test_a_refusal_that_waiting_clears_is_429_with_retry_after(api, make_allowance):
    make_allowance(daily_job_limit=1)
    api.post(DISPATCH, {"agent_id": "agent-1", "job_id": "job-1"}, format="json")
    before = books()
    response = api.post(DISPATCH, {"agent_id": "agent-1", "job_id": "job-2"}, format="json")
    body = response.json()
    assert response.status_code == 429
    assert (body["allowed"], body["reason"], body["job_id"]) == (
        False,
        "daily job limit exceeded",
        None,
    )
    assert int(response["Retry-After"]) == body["retry_after"] > 0
    assert books() == before


def test_a_concurrency_refusal_without_a_known_end_suggests_a_wait(api, make_allowance, settings):
    settings.QUOTAS_DEFAULT_RETRY_AFTER = 17
    make_allowance(concurrent_jobs=1)
    api.post(DISPATCH, {"agent_id": "agent-1", "job_id": "job-1"}, format="json")
    response = api.post(DISPATCH, {"agent_id": "agent-1", "job_id": "job-2"}, format="json")
    assert (response.status_code, response["Retry-After"], response.json()["retry_after"]) == (
        429,
        "17",
        None,
    )


@pytest.mark.parametrize(
    ("limits", "model", "reason"),
    [
        ({"paused": True}, "", "agent paused"),
        ({"model_allowlist": ["claude-haiku"]}, "gpt-5", "model not in allowlist: gpt-5"),
    ],
)
def test_a_refusal_that_waiting_cannot_clear_is_403(api, make_allowance, limits, model, reason):
    make_allowance(**limits)
    response = api.post(
        DISPATCH, {"agent_id": "agent-1", "job_id": "job-1", "model": model}, format="json"
    )
    assert response.status_code == 403
    assert "Retry-After" not in response
    assert (response.json()["allowed"], response.json()["reason"]) == (False, reason)
    assert books() == ([], [], [], [], 0)


# usage reports


def test_usage_report_answers_the_usage_record(api, make_allowance):
    make_allowance(daily_token_limit=100)
    api.post(DISPATCH, {"agent_id": "agent-1", "job_id": "job-1"}, format="json")
    response = api.post(
        USAGE,
        {
            "agent_id": "agent-1",
            "job_id": "job-1",
            "event": "job_completed",
            "tokens_in": 50,
            "tokens_out": 30,
            "timestamp": "2026-11-29T10:00:00+01:00",
        },
        format="json",
    )
    body = response.json()
    assert response.status_code == 200
    assert body["duplicate"] is False
    usage = body["usage"]
    assert (usage["tokens_used"], usage["jobs_started"], usage["active_jobs"], usage["status"]) == (
        80,
        1,
        0,
        "warning",
    )
    event = UsageEvent.objects.get(event="job_completed")
    assert event.timestamp == datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def test_the_same_report_again_is_a_duplicate(api, make_allowance):
    make_allowance()
    report = {"agent_id": "agent-1", "job_id": "job-1", "event": "job_failed", "tokens_in": 7}
    api.post(USAGE, report, format="json")
    response = api.post(USAGE, report, format="json")
    assert (response.status_code, response.json()["duplicate"]) == (200, True)
    assert response.json()["usage"]["tokens_used"] == 4


def test_a_different_final_report_for_an_ended_job_is_409(api, make_allowance):
    make_allowance()
    report = {"agent_id": "agent-1", "job_id": "job-1", "event": "job_completed", "tokens_in": 9}
    api.post(USAGE, report, format="json")
    before = books()
    response = api.post(USAGE, {**report, "event": "job_cancelled"}, format="json")
    assert response.status_code == 409
    assert "already ended as completed" in response.json()["detail"]
    assert books() == before


# repository events


def test_repo_event_answers_the_repos_usage_today(api, make_repo_limit):
    make_repo_limit(cooldown_after_failure=timedelta(minutes=10))
    response = api.post(REPO_EVENTS, {"repo": "octo-org/api", "kind": "failure"}, format="json")
    body = response.json()
    assert response.status_code == 201
    assert (body["repo"], body["prs_opened"], body["issues_opened"]) == ("octo-org/api", 0, 0)
    assert body["cooldown_until"] is not None


# bad input: always a 4xx naming the problem, never a change


def report(**changes):
    return {"agent_id": "agent-1", "job_id": "job-1", "event": "job_completed", **changes}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (USAGE, report(tokens_in=-1), "tokens_in"),
        (USAGE, report(tokens_in=1.5), "tokens_in"),
        (USAGE, report(tokens_in="12"), "tokens_in"),
        (USAGE, report(tokens_out=True), "tokens_out"),
        (USAGE, report(tokens_out=2**63), "tokens_out"),
        (USAGE, report(tokens_in=10**40), "tokens_in"),
        (USAGE, report(tokens_in=2**63 - 1, tokens_out=1), "tokens_out"),
        (USAGE, report(event="job_exploded"), "event"),
        (USAGE, report(agent_id=""), "agent_id"),
        (USAGE, report(job_id=""), "job_id"),
        (USAGE, report(job_id=None), "job_id"),
        (USAGE, report(agent_id=12), "agent_id"),
        (USAGE, report(agent_id="bad\u0000id"), "agent_id"),
        (USAGE, report(model="x" * 201), "model"),
        (USAGE, report(timestamp="yesterday"), "timestamp"),
        (USAGE, report(timestamp="9999-12-31T23:59:59-10:00"), "timestamp"),
        (USAGE, {"agent_id": "agent-1", "event": "job_completed"}, "job_id"),
        (DISPATCH, {"agent_id": "agent-1", "job_id": "j", "repo": "not-a-repo"}, "repo"),
        (DISPATCH, {"agent_id": "agent-1 ", "job_id": "j"}, "agent_id"),
        (CHECK, {"agent_id": "agent-1", "action": "merge"}, "action"),
        (CHECK, {"agent_id": "agent-1", "model": ["a"]}, "model"),
        (REPO_EVENTS, {"repo": "octo-org/api", "kind": "merged"}, "kind"),
        (REPO_EVENTS, {"repo": "<script>/x", "kind": "pr_opened"}, "repo"),
    ],
)
def test_malformed_fields_are_400_keyed_by_field_and_change_nothing(
    api, make_allowance, path, body, field
):
    make_allowance()
    response = api.post(path, body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert books() == ([], [], [], [], 0)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("{bad json", "application/json"),
        ("[1, 2]", "application/json"),
        ('"agent-1"', "application/json"),
        ("null", "application/json"),
        ("", "application/json"),
        ("NaN", "application/json"),
        ("[" * 50_000 + "]" * 50_000, "application/json"),
        ("agent_id=agent-1&job_id=j", "application/x-www-form-urlencoded"),
        ('{"agent_id": "agent-1", "job_id": "j"}', "text/plain"),
        ("\xff\xfe", "application/json"),
    ],
    ids=[
        "malformed",
        "list",
        "string",
        "null",
        "empty",
        "nan",
        "deeply-nested",
        "form",
        "text",
        "not-utf8",
    ],
)
def test_bodies_that_are_not_a_json_object_are_400(api, make_allowance, body, content_type):
    make_allowance()
    response = api.post(DISPATCH, body, content_type=content_type)
    assert response.status_code == 400
    assert response.json()
    assert books() == ([], [], [], [], 0)


def test_a_ten_megabyte_body_is_refused(api, make_allowance):
    make_allowance()
    body = json.dumps({"agent_id": "agent-1", "job_id": "j", "padding": "x" * 10_000_000})
    response = api.post(DISPATCH, body, content_type="application/json")
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body too large: at most 2621440 bytes."}
    assert books() == ([], [], [], [], 0)
