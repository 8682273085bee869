"""One unit per quantity, wherever a person reads it: money in dollars, durations as typed,
counts with separators, one date-time format naming its zone, and numbers typed as people
write them, bounded in the admin as in the API."""

import html
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib import admin

from quotas import changelog, display, housekeeping, services
from quotas.api.serializers import AllowanceSerializer, ModelQuotaSerializer, RepoLimitSerializer
from quotas.changelog import Actor
from quotas.forms import AllowanceForm, ModelQuotaForm, RepoLimitForm
from quotas.models import AgentAllowance, ChangeLog, ModelQuota, RepoLimit
from quotas.validators import BIGINT_MAX, INT_MAX, LIMIT_BOUNDS
from tests.conftest import NOON, run_job

AGENTS = "/admin/quotas/agentallowance/"
MODELS = "/admin/quotas/modelquota/"
REPOS = "/admin/quotas/repolimit/"
JOBS = "/admin/quotas/job/"

# What Django and DRF say by themselves, which no person should have to read.
MACHINE_WORDS = ("less than or equal", "greater than or equal", "digits", "Ensure", "Decimal")


def words(response) -> str:
    """A page's visible text, tags and runs of blanks made single spaces."""
    html = response.content.decode()
    html = re.sub(r"<(script|style|svg)\b.*?</\1>", " ", html, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", html).replace("&nbsp;", " ").replace("&rarr;", "\u2192")
    return re.sub(r"\s+", " ", text).strip()


def read_only(response) -> dict[str, str]:
    """The label and value of every read-only row of a change page."""
    html = response.content.decode()
    rows = re.findall(r'<label>([^<]*):</label>\s*<div class="readonly">(.*?)</div>', html, re.S)
    return {label: re.sub(r"<[^>]+>", "", value).strip() for label, value in rows}


def history_rows(response) -> list[list[str]]:
    """The History table's rows, each cell's text."""
    page = response.content.decode()
    body = re.search(r'<table class="quota-history">.*?<tbody>(.*?)</tbody>', page, re.S)
    rows = re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S) if body else []
    return [
        [
            re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", cell))).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        for row in rows
    ]


def cells(response, field) -> list[str]:
    html = response.content.decode()
    return [
        re.sub(r"<[^>]+>", "", cell).strip()
        for cell in re.findall(rf'<t[dh] class="field-{field}[^"]*">(.*?)</t[dh]>', html, re.S)
    ]


def allowance_form(**changes):
    data = {
        "agent_id": "agent-1",
        "daily_token_limit": "0",
        "daily_job_limit": "0",
        "concurrent_jobs": "0",
        "max_job_duration": "0",
    }
    return {**data, **changes}


def quota_form(**changes):
    data = {
        "model": "opus",
        "daily_token_budget": "0",
        "hourly_rate_limit": "0",
        "cost_ceiling": "0",
        "input_price_per_mtok": "0",
        "output_price_per_mtok": "0",
    }
    return {**data, **changes}


# How values look


@pytest.mark.parametrize(
    ("model", "name", "value", "expected"),
    [
        (ModelQuota, "cost_ceiling", 1_250, "$12.50"),
        (ModelQuota, "cost_ceiling", 0, "unlimited"),
        (ModelQuota, "cost_ceiling", BIGINT_MAX, "$92,233,720,368,547,758.07"),
        (ModelQuota, "input_price_per_mtok", Decimal("3.0000"), "$3.00"),
        (ModelQuota, "input_price_per_mtok", Decimal("15.1230"), "$15.123"),
        (ModelQuota, "input_price_per_mtok", Decimal("0.0001"), "$0.0001"),
        (ModelQuota, "input_price_per_mtok", Decimal("0"), "$0.00"),
        (ModelQuota, "daily_token_budget", 2_000_000, "2,000,000"),
        (AgentAllowance, "daily_job_limit", 0, "unlimited"),
        (AgentAllowance, "max_job_duration", timedelta(minutes=90), "1h 30m"),
        (AgentAllowance, "max_job_duration", timedelta(minutes=45), "45m"),
        (AgentAllowance, "max_job_duration", timedelta(0), "unlimited"),
        (AgentAllowance, "model_allowlist", ["opus", "sonnet"], "opus, sonnet"),
        (AgentAllowance, "model_allowlist", [], "every model"),
        (AgentAllowance, "paused", True, "yes"),
        (AgentAllowance, "paused", False, "no"),
        (RepoLimit, "cooldown_after_failure", timedelta(0), "no cooldown"),
        (RepoLimit, "max_daily_prs", 1_000, "1,000"),
    ],
)
def test_a_limits_value_reads_in_its_unit(model, name, value, expected):
    assert display.field_value(model, name, value) == expected


@pytest.mark.parametrize(
    ("model", "name", "label"),
    [
        (ModelQuota, "input_price_per_mtok", "Input price per million tokens"),
        (ModelQuota, "cost_ceiling", "Cost ceiling per day"),
        (RepoLimit, "max_daily_prs", "Max daily PRs"),
        (AgentAllowance, "model_allowlist", "Allowed models"),
    ],
)
def test_a_limits_label_is_in_the_words_people_use(model, name, label):
    assert display.field_label(model, name) == label


def test_a_moment_is_written_once_one_way_naming_its_time_zone(settings):
    moment = datetime(2026, 12, 1, 16, 3, tzinfo=UTC)
    assert display.moment(moment) == "Dec 1, 2026 16:03 UTC"
    settings.QUOTAS_TIME_ZONE = settings.TIME_ZONE = "Europe/Berlin"
    assert display.moment(moment) == "Dec 1, 2026 17:03 CET"
    assert display.moment(moment.replace(month=7)) == "Jul 1, 2026 18:03 CEST"
    assert display.moment(None, empty="never") == "never"


# Typing numbers in the admin


@pytest.mark.parametrize(
    ("field", "typed", "stored"),
    [
        ("daily_token_limit", "1,000,000", 1_000_000),
        ("daily_token_limit", "250000", 250_000),
        ("daily_token_limit", " 250 000 ", 250_000),
        ("daily_token_limit", "unlimited", 0),
        ("daily_job_limit", "2,147,483,647", INT_MAX),
        ("concurrent_jobs", "3", 3),
    ],
)
def test_an_agents_counts_are_taken_as_people_type_them(
    login, make_allowance, field, typed, stored
):
    allowance = make_allowance()
    response = login().post(f"{AGENTS}{allowance.pk}/change/", allowance_form(**{field: typed}))
    assert response.status_code == 302
    allowance.refresh_from_db()
    assert getattr(allowance, field) == stored


@pytest.mark.parametrize(
    ("field", "typed", "stored"),
    [
        ("cost_ceiling", "$250", 25_000),
        ("cost_ceiling", "$1,250.50", 125_050),
        ("cost_ceiling", "250.5", 25_050),
        ("cost_ceiling", "$92,233,720,368,547,758.07", BIGINT_MAX),
        ("input_price_per_mtok", "$3", Decimal("3")),
        ("input_price_per_mtok", "0.0001", Decimal("0.0001")),
        ("output_price_per_mtok", "$1,250.50", Decimal("1250.5")),
        ("daily_token_budget", "1,000,000", 1_000_000),
    ],
)
def test_money_is_typed_in_dollars_and_counts_with_commas(
    login, make_model_quota, field, typed, stored
):
    quota = make_model_quota(model="opus")
    response = login().post(f"{MODELS}{quota.pk}/change/", quota_form(**{field: typed}))
    assert response.status_code == 302
    quota.refresh_from_db()
    assert getattr(quota, field) == stored


@pytest.mark.parametrize(
    ("field", "typed", "message"),
    [
        ("daily_job_limit", "3,000,000,000", "Use at most 2,147,483,647 jobs."),
        ("daily_token_limit", "9" * 5000, "Use at most 9,223,372,036,854,775,807 tokens."),
        ("daily_job_limit", "-5", "Use 0 jobs or more; 0 means unlimited."),
        ("daily_job_limit", "1.5", "Write a whole number of jobs, such as 250000 or 1,000,000"),
        ("daily_job_limit", "1,50", "Write a whole number of jobs, such as 250000 or 1,000,000"),
        ("daily_job_limit", "$5", "Write a whole number of jobs"),
        ("daily_job_limit", "lots", "Write a whole number of jobs"),
        ("daily_job_limit", "", "Write a whole number of jobs"),
        ("concurrent_jobs", "1e3", "Write a whole number of jobs"),
    ],
)
def test_a_count_that_cannot_be_read_or_is_out_of_bounds_is_refused_in_words(
    login, make_allowance, field, typed, message
):
    allowance = make_allowance(daily_job_limit=7)
    response = login().post(f"{AGENTS}{allowance.pk}/change/", allowance_form(**{field: typed}))
    assert response.status_code == 200
    page = words(response)
    assert message in page
    assert not any(machine in page for machine in MACHINE_WORDS)
    allowance.refresh_from_db()
    assert (allowance.daily_job_limit, allowance.daily_token_limit) == (7, 0)


@pytest.mark.parametrize(
    ("field", "typed", "message"),
    [
        ("cost_ceiling", "$92,233,720,368,547,758.08", "Use at most $92,233,720,368,547,758.07."),
        ("cost_ceiling", "1.255", "Give the amount to the cent, e.g. $1,250.50."),
        ("cost_ceiling", "-$1", "Use $0.00 or more; 0 means unlimited."),
        ("cost_ceiling", "12,50", "Write an amount in US dollars, such as 250, $1,250.50 or 0.75"),
        ("cost_ceiling", "€5", "Write an amount in US dollars"),
        ("input_price_per_mtok", "15.12345", "Use at most 4 decimal places, e.g. $0.0001."),
        ("input_price_per_mtok", "100,000,000", "Use at most $99,999,999.9999."),
        (
            "input_price_per_mtok",
            "cheap",
            "Write a price in US dollars, such as 3, $0.25 or 15.1234",
        ),
        ("hourly_rate_limit", "2,147,483,648", "Use at most 2,147,483,647 jobs."),
    ],
)
def test_money_that_cannot_be_read_or_is_out_of_bounds_is_refused_in_words(
    login, make_model_quota, field, typed, message
):
    quota = make_model_quota(model="opus", cost_ceiling=500)
    response = login().post(f"{MODELS}{quota.pk}/change/", quota_form(**{field: typed}))
    assert response.status_code == 200
    page = words(response)
    assert message in page
    assert not any(machine in page for machine in MACHINE_WORDS)
    quota.refresh_from_db()
    assert (quota.cost_ceiling, quota.input_price_per_mtok, quota.hourly_rate_limit) == (500, 0, 0)


def test_a_repositorys_cooldown_and_counts_are_typed_and_refused_in_their_units(
    login, make_repo_limit
):
    limit = make_repo_limit()
    client = login()
    form = {"repo": "octo-org/api", "max_daily_issues": "0", "cooldown_after_failure": "0"}
    too_many = client.post(f"{REPOS}{limit.pk}/change/", {**form, "max_daily_prs": "3e9"})
    assert "Write a whole number of pull requests" in words(too_many)
    too_many = client.post(f"{REPOS}{limit.pk}/change/", {**form, "max_daily_prs": "3,000,000,000"})
    assert "Use at most 2,147,483,647 pull requests." in words(too_many)
    saved = client.post(
        f"{REPOS}{limit.pk}/change/",
        {**form, "max_daily_prs": "1,000", "cooldown_after_failure": "no cooldown"},
    )
    assert saved.status_code == 302
    limit.refresh_from_db()
    assert (limit.max_daily_prs, limit.cooldown_after_failure) == (1_000, timedelta(0))


def test_a_form_shows_limits_back_as_people_type_them(login, make_model_quota, make_allowance):
    quota = make_model_quota(
        model="opus", cost_ceiling=125_050, daily_token_budget=2_000_000, input_price_per_mtok=3
    )
    allowance = make_allowance(max_job_duration=timedelta(minutes=90), daily_job_limit=1_500)
    client = login()
    page = client.get(f"{MODELS}{quota.pk}/change/").content.decode()
    assert 'name="cost_ceiling" value="$1,250.50"' in page
    assert 'name="daily_token_budget" value="2,000,000"' in page
    assert 'name="input_price_per_mtok" value="$3.00"' in page
    assert 'type="number"' not in page  # a number field would refuse "1,000,000" and "$250"
    page = client.get(f"{AGENTS}{allowance.pk}/change/").content.decode()
    assert 'name="daily_job_limit" value="1,500"' in page
    assert 'name="max_job_duration" value="1h 30m"' in page


def test_forms_label_limits_in_the_words_people_use(login, db):
    client = login()
    models = words(client.get(f"{MODELS}add/"))
    assert "Input price per million tokens:" in models
    assert "Cost ceiling per day:" in models
    assert "US cents" not in models
    assert "Max daily PRs:" in words(client.get(f"{REPOS}add/"))
    assert "Allowed models:" in words(client.get(f"{AGENTS}add/"))


# One bound per limit, for the admin and the API alike

SERIALIZERS = {AgentAllowance: AllowanceSerializer, ModelQuota: ModelQuotaSerializer}
SERIALIZERS[RepoLimit] = RepoLimitSerializer
FORMS = {AgentAllowance: AllowanceForm, ModelQuota: ModelQuotaForm, RepoLimit: RepoLimitForm}


def test_every_limit_has_one_bound_that_the_form_and_the_api_both_hold(db):
    held = {}
    for model, serializer in SERIALIZERS.items():
        api_fields, form_fields = serializer().fields, FORMS[model].base_fields
        for name in model.limit_fields:
            if name in ("paused", "model_allowlist"):
                continue
            api = api_fields[name]
            api_maximum = getattr(api, "max_value", None) or api.bound.maximum
            held[name] = (form_fields[name].bound, api_maximum)
    assert set(held) == set(LIMIT_BOUNDS)
    assert {name: (bound, maximum) for name, (bound, maximum) in held.items()} == {
        name: (bound, bound.maximum) for name, bound in LIMIT_BOUNDS.items()
    }


@pytest.mark.parametrize(
    ("url", "body", "expected"),
    [
        (
            "/api/v1/allowances",
            {"agent_id": "a", "daily_job_limit": 3_000_000_000},
            {"daily_job_limit": ["Use at most 2,147,483,647 jobs."]},
        ),
        (
            "/api/v1/allowances",
            {"agent_id": "a", "daily_token_limit": -1},
            {"daily_token_limit": ["Use 0 tokens or more; 0 means unlimited."]},
        ),
        (
            "/api/v1/allowances",
            {"agent_id": "a", "max_job_duration": 31_622_401},
            {"max_job_duration": ["Use at most 31,622,400 seconds (366 days)."]},
        ),
        (
            "/api/v1/model-quotas",
            {"model": "opus", "cost_ceiling": BIGINT_MAX + 1},
            {
                "cost_ceiling": [
                    "Use at most 9,223,372,036,854,775,807 US cents ($92,233,720,368,547,758.07)."
                ]
            },
        ),
        (
            "/api/v1/model-quotas",
            {"model": "opus", "cost_ceiling": "250"},
            {
                "cost_ceiling": [
                    "A whole number of US cents is required, e.g. 25050 for $250.50; "
                    "0 means unlimited."
                ]
            },
        ),
        (
            "/api/v1/model-quotas",
            {"model": "opus", "input_price_per_mtok": 100_000_000},
            {"input_price_per_mtok": ["Use at most $99,999,999.9999."]},
        ),
        (
            "/api/v1/model-quotas",
            {"model": "opus", "input_price_per_mtok": 123456789012.5},
            {"input_price_per_mtok": ["Use at most $99,999,999.9999."]},
        ),
        (
            "/api/v1/model-quotas",
            {"model": "opus", "output_price_per_mtok": "1.23456"},
            {"output_price_per_mtok": ["Use at most 4 decimal places, e.g. $0.0001."]},
        ),
        (
            "/api/v1/repo-limits",
            {"repo": "octo-org/api", "max_daily_issues": INT_MAX + 1},
            {"max_daily_issues": ["Use at most 2,147,483,647 issues."]},
        ),
    ],
)
def test_the_api_words_a_limits_bounds_as_the_admin_does(admin_api, db, url, body, expected):
    response = admin_api.post(url, body, format="json")
    assert (response.status_code, response.json()) == (400, expected)


def test_a_daily_job_limit_the_admin_stores_is_one_the_api_gives_back_and_takes(
    login, admin_api, make_allowance
):
    allowance = make_allowance("agent-1")
    client = login()
    refused = client.post(
        f"{AGENTS}{allowance.pk}/change/", allowance_form(daily_job_limit="3,000,000,000")
    )
    assert "Use at most 2,147,483,647 jobs." in words(refused)
    client.post(f"{AGENTS}{allowance.pk}/change/", allowance_form(daily_job_limit="2,147,483,647"))
    read = admin_api.get("/api/v1/allowances/agent-1").json()
    assert read["daily_job_limit"] == INT_MAX
    written = admin_api.put("/api/v1/allowances/agent-1", read, format="json")
    assert (written.status_code, written.json()["daily_job_limit"]) == (200, INT_MAX)


# The read-only page a Viewer gets


def test_a_viewer_reads_each_limit_in_its_unit_under_its_label(
    login, make_allowance, make_model_quota, make_repo_limit
):
    allowance = make_allowance(
        "bot-7",
        daily_token_limit=250_000,
        max_job_duration=timedelta(minutes=90),
        model_allowlist=["opus", "sonnet"],
    )
    quota = make_model_quota(model="opus", cost_ceiling=1_250, input_price_per_mtok="15.1234")
    repo = make_repo_limit(max_daily_prs=3_000)
    client = login("Viewers")
    agent = read_only(client.get(f"{AGENTS}{allowance.pk}/change/"))
    assert {key: agent[key] for key in list(agent)[:7]} == {
        "Agent ID": "bot-7",
        "Paused": "no",
        "Daily token limit": "250,000",
        "Daily job limit": "unlimited",
        "Concurrent jobs": "unlimited",
        "Max job duration": "1h 30m",
        "Allowed models": "opus, sonnet",
    }
    model_page = client.get(f"{MODELS}{quota.pk}/change/")
    model = read_only(model_page)
    assert (model["Cost ceiling per day"], model["Input price per million tokens"]) == (
        "$12.50",
        "$15.1234",
    )
    assert "US cents" not in words(model_page) and "1250" not in words(model_page)
    repository = read_only(client.get(f"{REPOS}{repo.pk}/change/"))
    assert (repository["Max daily PRs"], repository["Cooldown after failure"]) == (
        "3,000",
        "no cooldown",
    )


# History


def test_history_shows_each_change_in_units_with_who_and_why(login, admin_api, make_model_quota):
    quota = make_model_quota(model="opus", cost_ceiling=10_000)
    key_name = "API key 'test admin' ("
    admin_api.patch("/api/v1/model-quotas/opus", {"cost_ceiling": 1_250}, format="json")
    client = login()
    client.post(
        f"{MODELS}{quota.pk}/change/",
        quota_form(
            cost_ceiling="$1,250.50", input_price_per_mtok="$3", daily_token_budget="2,000,000"
        ),
    )
    rows = history_rows(client.get(f"{MODELS}{quota.pk}/history/"))
    assert [row[1:3] for row in rows] == [
        ["Changed", "budget"],
        ["Changed", rows[1][2]],
        ["Created", "quotas"],
    ]
    assert rows[1][2].startswith(key_name) and rows[1][2].endswith(")")
    assert rows[0][4] == (
        "Daily token budget: unlimited \u2192 2,000,000 "
        "Cost ceiling per day: $12.50 \u2192 $1,250.50 "
        "Input price per million tokens: $0.00 \u2192 $3.00"
    )
    assert rows[1][4] == "Cost ceiling per day: $100.00 \u2192 $12.50"
    assert rows[2][4].startswith("Daily token budget: unlimited Hourly job limit: unlimited")
    assert all(re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}, \d{4} \d\d:\d\d UTC", row[0]) for row in rows)
    assert "None" not in [row[2] for row in rows]


def test_an_agents_history_holds_its_pauses_resets_and_cancelled_jobs_with_who_and_why(
    login, make_allowance, now
):
    allowance = make_allowance("bot-7")
    services.set_paused(agent_ids=["bot-7"], paused=True, actor=Actor("erin"), reason="loop")
    services.set_paused(agent_ids=["bot-7"], paused=False, actor=Actor("erin"))
    run_job("bot-7", "done", tokens_in=1_500)
    housekeeping.reset_usage(agent_id="bot-7", actor=Actor("dana"), reason="new budget")
    services.dispatch(agent_id="bot-7", job_id="stuck")
    services.cancel_job(agent_id="bot-7", job_id="stuck", actor=Actor("fay"), reason="hung")
    make_allowance("bot-70")
    services.dispatch(agent_id="bot-70", job_id="other")
    services.cancel_job(agent_id="bot-70", job_id="other", actor=Actor("gil"))
    rows = history_rows(login("Viewers").get(f"{AGENTS}{allowance.pk}/history/"))
    assert [row[1:] for row in rows] == [
        ["Job cancelled", "fay", "hung", "job stuck: cancelled: its slot is free, nothing charged"],
        ["Usage reset", "dana", "new budget", "gave back 1,500 tokens and 1 job of today"],
        ["Changed", "erin", "—", "Paused: yes \u2192 no"],
        ["Changed", "erin", "loop", "Paused: no \u2192 yes"],
        rows[-1][1:],
    ]
    assert rows[-1][1:3] == ["Created", "quotas"]


def test_a_repositorys_history_holds_a_cooldown_ended_early(login, make_repo_limit):
    limit = make_repo_limit(cooldown_after_failure=timedelta(hours=1))
    services.record_repo_event(repo="octo-org/api", kind="failure")
    services.end_cooldown(repo="octo-org/api", actor=Actor("erin"), reason="fixed")
    rows = history_rows(login().get(f"{REPOS}{limit.pk}/history/"))
    assert rows[0][1:] == ["Cooldown ended", "erin", "fixed", "cooldown ended 1h early"]
    assert rows[1][4] == (
        "Max daily PRs: unlimited Max daily issues: unlimited Cooldown after failure: 1h"
    )


def test_history_pages_show_each_other_action_once_in_its_span(login, make_allowance, monkeypatch):
    allowance = make_allowance("bot-7")
    for limit in range(1, 6):
        with changelog.acting(Actor("alice")):
            allowance.daily_job_limit = limit
            allowance.save()
        run_job("bot-7", f"job-{limit}", tokens_in=limit)
        housekeeping.reset_usage(agent_id="bot-7", actor=Actor("dana"), reason=f"reset {limit}")
    monkeypatch.setattr(admin.site._registry[AgentAllowance], "history_list_per_page", 2)
    client = login()
    pages = [history_rows(client.get(f"{AGENTS}{allowance.pk}/history/?p={p}")) for p in (1, 2, 3)]
    resets = [row[3] for page in pages for row in page if row[1] == "Usage reset"]
    assert resets == [f"reset {limit}" for limit in (5, 4, 3, 2, 1)]
    assert [len([row for row in page if row[1] != "Usage reset"]) for page in pages] == [2, 2, 2]


def test_an_old_version_reads_in_words_and_is_never_saved_from_its_page(login, make_allowance):
    allowance = make_allowance(daily_token_limit=10, max_job_duration=timedelta(minutes=45))
    first = AgentAllowance.history.get()
    allowance.daily_token_limit = 20
    allowance.save()
    client = login("Viewers")
    url = f"{AGENTS}{allowance.pk}/history/{first.history_id}/"
    page = client.get(url)
    assert page.status_code == 200
    assert "Daily token limit: 10 Daily job limit: unlimited" in words(page)
    assert "Max job duration: 45m" in words(page)
    posted = client.post(url, allowance_form(daily_token_limit="99"))
    assert posted.status_code == 405
    assert login("superuser").post(url, allowance_form(daily_token_limit="99")).status_code == 405
    allowance.refresh_from_db()
    assert allowance.daily_token_limit == 20


def test_a_viewer_cannot_change_a_repository_limit_by_posting_an_old_version(
    login, make_repo_limit
):
    # django-simple-history's own version page saved a posted form for anyone who may view.
    limit = make_repo_limit(max_daily_prs=3)
    first = RepoLimit.history.get()
    url = f"{REPOS}{limit.pk}/history/{first.history_id}/"
    form = {"repo": "octo-org/api", "max_daily_issues": "0", "cooldown_after_failure": "0"}
    posted = login("Viewers").post(url, {**form, "max_daily_prs": "99"})
    assert posted.status_code == 405
    limit.refresh_from_db()
    assert (limit.max_daily_prs, RepoLimit.history.count()) == (3, 1)


@pytest.mark.parametrize("path", [AGENTS, MODELS])
def test_the_history_of_a_deleted_limit_is_not_found_rather_than_an_error(
    login, make_allowance, make_model_quota, path
):
    limit = make_allowance() if path == AGENTS else make_model_quota()
    pk = limit.pk
    limit.delete()
    assert login().get(f"{path}{pk}/history/").status_code == 404
    assert ChangeLog.objects.filter(change="limit_deleted").count() == 1


def test_a_malformed_or_unknown_history_address_is_not_found_rather_than_an_error(
    login, make_allowance
):
    allowance = make_allowance()
    client = login("Viewers")
    assert client.get(f"{AGENTS}abc/history/").status_code == 404
    assert client.get(f"{AGENTS}{allowance.pk}/history/abc/").status_code == 404
    assert client.get(f"{AGENTS}{allowance.pk}/history/99999/").status_code == 404
    assert client.get(f"{AGENTS}{allowance.pk}/history/").status_code == 200


# Times, counts and yes/no on Django's own pages


def test_django_pages_write_times_one_way_naming_the_zone_and_counts_with_commas(
    login, make_allowance, settings
):
    make_allowance()
    run_job("agent-1", "big", now=NOON, tokens_in=1_234_567)
    client = login()
    page = client.get(JOBS)
    assert cells(page, "started_at") == ["Mar 10, 2026 12:00 UTC"]
    assert cells(page, "tokens_charged") == ["1,234,567"]
    settings.QUOTAS_TIME_ZONE = settings.TIME_ZONE = "Asia/Tokyo"
    assert cells(client.get(JOBS), "started_at") == ["Mar 10, 2026 21:00 JST"]


def test_a_yes_no_column_reads_as_words_not_icons(login, make_allowance, monkeypatch):
    make_allowance("bot-7", paused=True)
    make_allowance("bot-8")
    agents = admin.site._registry[AgentAllowance]
    monkeypatch.setattr(agents, "list_display", ["agent_id", "paused"])
    client = login()
    page = client.get(f"{AGENTS}?o=1")
    assert cells(page, "paused") == ["yes", "no"]
    assert "icon-yes.svg" not in page.content.decode()
    by_paused = client.get(f"{AGENTS}?o=-2")
    assert cells(by_paused, "agent_id")[0] == "bot-7"


# The allowlist's rule, heard at every box


def test_every_model_box_is_described_by_the_rule_that_none_ticked_means_every_model(
    login, make_allowance, make_model_quota
):
    allowance = make_allowance()
    make_model_quota(model="opus")
    make_model_quota(model="sonnet")
    html = login().get(f"{AGENTS}{allowance.pk}/change/").content.decode()
    boxes = re.findall(r'<input type="checkbox" name="model_allowlist"[^>]*>', html)
    assert len(boxes) == 2
    assert all('aria-describedby="id_model_allowlist_rule"' in box for box in boxes)
    rule = re.search(r'<span class="help" id="id_model_allowlist_rule">([^<]*)</span>', html)
    assert rule.group(1) == "Tick the models this agent may use. None ticked means every model."
