"""The admin for budget managers, through the Django test client."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from quotas import services
from quotas.models import AgentAllowance, AgentUsage, APIKey, ChangeLog, Job
from tests.conftest import run_job

AGENTS = "/admin/quotas/agentallowance/"
MODELS = "/admin/quotas/modelquota/"
REPOS = "/admin/quotas/repolimit/"
JOBS = "/admin/quotas/job/"
EVENTS = "/admin/quotas/usageevent/"
KEYS = "/admin/quotas/apikey/"


def cells(response, field):
    """The text of every cell of one column of a change list."""
    html = response.content.decode()
    return [
        re.sub(r"<[^>]+>", "", cell).strip()
        for cell in re.findall(rf'<t[dh] class="field-{field}[^"]*">(.*?)</t[dh]>', html, re.S)
    ]


def use(agent_id, tokens=0, jobs=0):
    """Start ``jobs`` jobs (left running) and charge ``tokens`` through a job never dispatched:
    a final report first seen counts no start, so the agent's jobs today stay ``jobs``. Not
    ``run_job``, whose completed job would count one more job and leave one fewer running."""
    for i in range(jobs):
        services.dispatch(agent_id=agent_id, job_id=f"run-{i}")
    if tokens:
        services.record_usage(
            agent_id=agent_id, job_id="done", event="job_completed", tokens_in=tokens
        )


def allowance_form(**changes):
    data = {
        "agent_id": "agent-1",
        "daily_token_limit": "0",
        "daily_job_limit": "0",
        "concurrent_jobs": "0",
        "max_job_duration": "0",
    }
    return {**data, **changes}


# Roles


def test_the_two_roles_exist_with_their_permissions(db):
    assert sorted(Group.objects.values_list("name", flat=True)) == ["Budget managers", "Viewers"]
    managers = set(
        Group.objects.get(name="Budget managers").permissions.values_list("codename", flat=True)
    )
    viewers = set(Group.objects.get(name="Viewers").permissions.values_list("codename", flat=True))
    assert {
        "change_agentallowance",
        "add_modelquota",
        "delete_repolimit",
        "reset_usage",
        "export_usage",
    } <= managers
    assert viewers == {codename for codename in managers if codename.startswith("view_")}
    assert len(viewers) == 10  # the limits, the books and the change log (0009)


@pytest.mark.parametrize("role", ["superuser", "Budget managers", "Viewers"])
@pytest.mark.parametrize(
    "page", ["/admin/", AGENTS, MODELS, REPOS, JOBS, EVENTS, AGENTS + "{pk}/change/"]
)
def test_every_role_sees_every_page(login, make_allowance, role, page):
    allowance = make_allowance()
    assert login(role).get(page.format(pk=allowance.pk)).status_code == 200


def test_anonymous_visitors_are_sent_to_the_login_page(client, db):
    response = client.get(AGENTS)
    assert (response.status_code, response["Location"]) == (302, f"/admin/login/?next={AGENTS}")


def test_a_viewer_cannot_change_a_limit_by_posting_the_form(login, make_allowance):
    pk = make_allowance(daily_token_limit=10).pk
    client = login("Viewers")
    response = client.post(f"{AGENTS}{pk}/change/", allowance_form(daily_token_limit="99"))
    assert response.status_code == 403
    assert AgentAllowance.objects.get().daily_token_limit == 10
    assert client.post(f"{AGENTS}add/", allowance_form(agent_id="new")).status_code == 403
    assert client.post(f"{AGENTS}{pk}/delete/", {"post": "yes"}).status_code == 403
    assert AgentAllowance.objects.count() == 1


@pytest.mark.parametrize("action", ["reset_today", "pause", "resume"])
def test_a_viewer_cannot_run_an_action(login, make_allowance, action):
    pk = make_allowance(daily_token_limit=100).pk
    use("agent-1", tokens=50)
    client = login("Viewers")
    page = client.get(AGENTS)
    assert 'name="action"' not in page.content.decode()
    client.post(AGENTS, {"action": action, "_selected_action": [str(pk)]})
    allowance = AgentAllowance.objects.get()
    assert (allowance.paused, AgentUsage.objects.get().tokens_used) == (False, 50)


# The agents list


def test_agent_list_shows_standing_and_usage_in_plain_figures(login, make_allowance):
    make_allowance("busy", daily_token_limit=10_000, daily_job_limit=4, concurrent_jobs=3)
    make_allowance("free")
    make_allowance("stopped", paused=True)
    use("busy", tokens=8_500, jobs=2)
    page = login().get(f"{AGENTS}?o=1")
    assert cells(page, "agent_id") == ["busy", "free", "stopped"]
    assert cells(page, "status") == ["Warning", "OK", "Paused"]
    assert cells(page, "tokens_today") == [
        "8,500 of 10,000 (85 %)",
        "0 of unlimited",
        "0 of unlimited",
    ]
    assert cells(page, "jobs_today") == ["2 of 4", "0 of unlimited", "0 of unlimited"]
    assert cells(page, "running") == ["2 of 3", "0 of unlimited", "0 of unlimited"]
    assert cells(page, "last_activity")[1:] == ["never", "never"]
    html = page.content.decode()
    assert '<progress class="quota-bar quota-bar-warning" value="8500" max="10000"' in html
    assert '<span class="quota-badge quota-warning">Warning</span>' in html


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("ok", ["fine"]),
        ("warning", ["near"]),
        ("exceeded", ["jobs-out", "over"]),
        ("paused", ["stopped"]),
    ],
)
def test_agent_list_filters_by_status(login, make_allowance, status, expected):
    make_allowance("fine", daily_token_limit=100)
    make_allowance("near", daily_token_limit=100)
    make_allowance("over", daily_token_limit=100)
    make_allowance("jobs-out", daily_job_limit=1)
    make_allowance("stopped", paused=True, daily_token_limit=100)
    use("fine", tokens=79)
    use("near", tokens=80)
    use("over", tokens=100)
    use("jobs-out", jobs=1)
    use("stopped", tokens=100)
    page = login().get(f"{AGENTS}?status={status}")
    assert sorted(cells(page, "agent_id")) == expected


def test_agent_list_filters_by_paused_searches_and_sorts(login, make_allowance):
    for name, tokens in (("alpha", 5), ("beta", 50), ("gamma", 500)):
        make_allowance(name, paused=name == "beta")
        use(name, tokens=tokens)
    client = login()
    assert cells(client.get(f"{AGENTS}?paused__exact=1"), "agent_id") == ["beta"]
    assert cells(client.get(f"{AGENTS}?q=amm"), "agent_id") == ["gamma"]
    by_tokens = client.get(f"{AGENTS}?o=-3")  # third column: tokens today, descending
    assert cells(by_tokens, "agent_id") == ["gamma", "beta", "alpha"]


def test_agent_list_costs_the_same_queries_for_200_agents_as_for_3(
    login, make_allowance, django_assert_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = login()
    for i in range(3):
        make_allowance(f"agent-{i:03}", daily_token_limit=1000)
        use(f"agent-{i:03}", tokens=10, jobs=1)
    client.get("/admin/")  # on PostgreSQL, the first admin request switches the planning
    with CaptureQueriesContext(connection) as few:
        three = client.get(f"{AGENTS}?all=")
    assert (three.status_code, len(cells(three, "agent_id"))) == (200, 3)
    for i in range(3, 200):
        make_allowance(f"agent-{i:03}", daily_token_limit=1000)
    AgentUsage.objects.bulk_create(
        AgentUsage(
            agent_id=f"agent-{i:03}",
            period_start=AgentUsage.objects.first().period_start,
            tokens_used=i,
        )
        for i in range(3, 200)
    )
    with django_assert_num_queries(len(few)):
        page = client.get(f"{AGENTS}?all=")
    assert len(cells(page, "agent_id")) == 200


# Actions


def test_reset_action_starts_the_selected_agents_day_afresh(login, make_allowance):
    make_allowance("a", daily_token_limit=100)
    make_allowance("b", daily_token_limit=100)
    use("a", tokens=100, jobs=1)
    use("b", tokens=100)
    client = login()
    chosen = {
        "action": "reset_today",
        "_selected_action": [str(AgentAllowance.objects.get(agent_id="a").pk)],
    }
    asked = client.post(AGENTS, chosen)
    # First the question, and nothing changed yet.
    assert "Give these agents their capacity for today back?" in asked.content.decode()
    assert dict(AgentUsage.objects.values_list("agent_id", "tokens_used")) == {"a": 100, "b": 100}
    response = client.post(
        AGENTS, {**chosen, "confirmed": "yes", "reason": "migration rerun"}, follow=True
    )
    assert "Started today afresh for 1 of 1 selected agents" in response.content.decode()
    assert dict(AgentUsage.objects.values_list("agent_id", "tokens_used")) == {"a": 0, "b": 100}
    assert Job.objects.get(agent_id="a", job_id="run-0").state == "running"
    entry = ChangeLog.objects.get(change="usage_reset")
    assert (entry.change, entry.subject, entry.actor, entry.reason) == (
        "usage_reset",
        "a",
        "budget",
        "migration rerun",
    )
    assert entry.summary == "gave back 100 tokens and 1 job of today"


def test_pause_and_resume_actions_are_recorded_in_history_with_the_user(login, make_allowance):
    allowance = make_allowance()
    client = login()
    chosen = {"_selected_action": [str(allowance.pk)], "confirmed": "yes"}
    client.post(AGENTS, {**chosen, "action": "pause", "reason": "runaway loop"})
    assert AgentAllowance.objects.get().paused is True
    assert services.check(agent_id="agent-1").reason == "agent paused"
    client.post(AGENTS, {**chosen, "action": "resume"})
    assert AgentAllowance.objects.get().paused is False
    history = list(
        AgentAllowance.history.order_by("history_id").values_list(
            "paused", "history_user__username"
        )
    )
    assert history[-2:] == [(True, "budget"), (False, "budget")]
    log = ChangeLog.objects.order_by("id").values_list("change", "actor", "reason")
    assert list(log)[-2:] == [("paused", "budget", "runaway loop"), ("resumed", "budget", "")]


# Editing an agent


def test_editing_an_agent_takes_durations_as_people_write_them(
    login, make_allowance, make_model_quota
):
    allowance = make_allowance()
    make_model_quota(model="anthropic/claude-sonnet-4")
    make_model_quota(model="openai/gpt-5")
    client = login()
    response = client.post(
        f"{AGENTS}{allowance.pk}/change/",
        allowance_form(
            max_job_duration="1h 30m", daily_token_limit="250000", model_allowlist=["openai/gpt-5"]
        ),
    )
    assert response.status_code == 302
    allowance.refresh_from_db()
    assert (allowance.max_job_duration, allowance.daily_token_limit, allowance.model_allowlist) == (
        timedelta(minutes=90),
        250_000,
        ["openai/gpt-5"],
    )
    page = client.get(f"{AGENTS}{allowance.pk}/change/").content.decode()
    assert 'value="1h 30m"' in page
    assert 'type="checkbox" name="model_allowlist" value="anthropic/claude-sonnet-4"' in page
    assert "0 means unlimited" in page


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("45m", timedelta(minutes=45)),
        ("2 hours", timedelta(hours=2)),
        ("0", timedelta(0)),
        ("1d 2h", timedelta(hours=26)),
    ],
)
def test_durations_in_many_spellings(login, make_allowance, typed, expected):
    allowance = make_allowance()
    login().post(f"{AGENTS}{allowance.pk}/change/", allowance_form(max_job_duration=typed))
    allowance.refresh_from_db()
    assert allowance.max_job_duration == expected


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_job_duration": "soon"}, "Write a duration such as 45m, 1h 30m or 2 hours"),
        ({"max_job_duration": "1:30"}, "Write a duration such as 45m, 1h 30m or 2 hours"),
        ({"max_job_duration": "400 days"}, "Use a duration from 0 up to 366 days."),
        ({"daily_token_limit": "-5"}, "Use 0 tokens or more; 0 means unlimited."),
        ({"agent_id": "has space"}, "Use 1 to 200 letters, digits"),
        ({"model_allowlist": ["not-a-known-model"]}, "Select a valid choice."),
    ],
)
def test_bad_edits_say_what_to_fix_and_change_nothing(login, make_allowance, changes, message):
    allowance = make_allowance(daily_token_limit=7)
    response = login().post(f"{AGENTS}{allowance.pk}/change/", allowance_form(**changes))
    assert response.status_code == 200
    assert message in response.content.decode()
    allowance.refresh_from_db()
    assert (allowance.agent_id, allowance.daily_token_limit, allowance.max_job_duration) == (
        "agent-1",
        7,
        timedelta(0),
    )


def test_agent_page_shows_usage_today_and_recent_jobs(login, make_allowance):
    allowance = make_allowance(daily_token_limit=1000, concurrent_jobs=2)
    use("agent-1", tokens=250, jobs=1)
    page = login().get(f"{AGENTS}{allowance.pk}/change/").content.decode()
    assert "tokens 250 of 1,000" in page
    assert "running 1 of 2" in page
    assert "<td>run-0</td>" in page and "<td>done</td>" in page


def test_every_change_to_a_limit_is_in_its_history(login, make_allowance):
    allowance = make_allowance(daily_token_limit=100)
    client = login()
    client.post(f"{AGENTS}{allowance.pk}/change/", allowance_form(daily_token_limit="500"))
    page = client.get(f"{AGENTS}{allowance.pk}/history/").content.decode()
    assert "budget" in page
    assert re.search(r"Daily token limit:</strong>\s*100\s*&nbsp;&rarr;&nbsp;&nbsp;500", page)


# Models and repositories


def test_model_quota_takes_the_ceiling_in_dollars_and_shows_money(login, make_model_quota):
    quota = make_model_quota(model="anthropic/claude-sonnet-4", input_price_per_mtok=3)
    client = login()
    response = client.post(
        f"{MODELS}{quota.pk}/change/",
        {
            "model": "anthropic/claude-sonnet-4",
            "daily_token_budget": "1000000",
            "hourly_rate_limit": "60",
            "cost_ceiling": "250.50",
            "input_price_per_mtok": "3",
            "output_price_per_mtok": "15",
        },
    )
    assert response.status_code == 302
    quota.refresh_from_db()
    assert (quota.cost_ceiling, quota.output_price_per_mtok) == (25_050, 15)
    assert 'value="$250.50"' in client.get(f"{MODELS}{quota.pk}/change/").content.decode()
    make_agent_spend(quota.model, tokens_in=1_000_000)
    page = client.get(MODELS)
    assert cells(page, "cost_today") == ["$3.00 of $250.50 (1 %)"]
    assert cells(page, "tokens_today") == ["1,000,000 of 1,000,000 (100 %)"]
    assert cells(page, "jobs_last_hour") == ["1 of 60"]


def make_agent_spend(model, tokens_in):
    AgentAllowance.objects.get_or_create(agent_id="spender")
    run_job("spender", f"spend-{model}", model=model, tokens_in=tokens_in)


def test_repo_list_shows_todays_counts_and_the_cooldown(login, make_repo_limit):
    make_repo_limit(max_daily_prs=5, cooldown_after_failure=timedelta(minutes=30))
    services.record_repo_event(repo="octo-org/api", kind="pr_opened")
    services.record_repo_event(
        repo="octo-org/api", kind="failure", now=timezone.now() - timedelta(minutes=18, seconds=30)
    )
    page = login().get(REPOS)
    assert cells(page, "prs_today") == ["1 of 5"]
    assert cells(page, "issues_today") == ["0 of unlimited"]
    assert cells(page, "cooldown") == ["cooling down, 12m left"]


# Jobs and usage events


def test_jobs_and_events_are_read_only(login, make_allowance):
    make_allowance()
    use("agent-1", tokens=5, jobs=1)
    client = login("superuser")
    job = Job.objects.first()
    assert client.get(f"{JOBS}add/").status_code == 403
    page = client.get(f"{JOBS}{job.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    assert client.post(f"{JOBS}{job.pk}/change/", {"state": "cancelled"}).status_code == 403
    assert client.post(f"{JOBS}{job.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Job.objects.get(pk=job.pk).state == job.state
    assert client.get(f"{EVENTS}add/").status_code == 403


def test_job_list_filters_by_agent_model_state_and_day_and_searches_job_ids(login, make_allowance):
    make_allowance("a")
    make_allowance("b")
    services.dispatch(agent_id="a", job_id="a-1", model="m1")
    services.dispatch(agent_id="b", job_id="b-1", model="m2")
    services.record_usage(agent_id="b", job_id="b-2", event="job_completed", tokens_in=1)
    client = login()
    assert cells(client.get(f"{JOBS}?agent_id=b"), "job_id") == ["b-2", "b-1"]
    assert cells(client.get(f"{JOBS}?model=m1"), "job_id") == ["a-1"]
    assert sorted(cells(client.get(f"{JOBS}?state__exact=running"), "job_id")) == ["a-1", "b-1"]
    assert cells(client.get(f"{JOBS}?q=b-2"), "job_id") == ["b-2"]
    today = timezone.localdate()
    day = client.get(
        f"{JOBS}?created_at__day={today.day}&created_at__month={today.month}&created_at__year={today.year}"
    )
    assert len(cells(day, "job_id")) == 3
    tomorrow = today + timedelta(days=1)
    assert (
        cells(
            client.get(
                f"{JOBS}?created_at__day={tomorrow.day}&created_at__month={tomorrow.month}&created_at__year={tomorrow.year}"
            ),
            "job_id",
        )
        == []
    )


def test_event_list_filters_by_agent_and_kind(login, make_allowance):
    make_allowance("a")
    make_allowance("b")
    use("a", tokens=5, jobs=1)
    use("b", jobs=1)
    client = login()
    assert cells(client.get(f"{EVENTS}?agent_id=b"), "event") == ["Job Started"]
    assert sorted(cells(client.get(f"{EVENTS}?event__exact=job_completed"), "agent_id")) == ["a"]


# The exports' tests are in tests/test_exports.py.


# API keys


def test_api_keys_are_created_in_the_admin_shown_once_and_revoked_in_one_click(login):
    client = login("superuser")
    response = client.post(f"{KEYS}add/", {"name": "ci bot", "role": "dispatcher"}, follow=True)
    page = response.content.decode()
    key = re.search(r"The API key for ci bot is: ([A-Za-z0-9]+\.[A-Za-z0-9]+)", page).group(1)
    api_key = APIKey.objects.get()
    assert api_key.prefix == key.split(".")[0]
    assert key not in client.get(KEYS).content.decode()
    listing = client.get(KEYS).content.decode()
    assert f'formaction="/admin/quotas/apikey/{api_key.pk}/revoke/"' in listing
    client.post(f"{KEYS}{api_key.pk}/revoke/")
    assert APIKey.objects.get().revoked is True
    assert cells(client.get(KEYS), "revoke_button") == ["revoked"]


def test_revoking_needs_a_post_and_the_right(login, make_client):
    make_client("dispatcher")
    api_key = APIKey.objects.get()
    assert login("superuser").get(f"{KEYS}{api_key.pk}/revoke/").status_code == 405
    assert APIKey.objects.get().revoked is False
