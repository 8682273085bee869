"""A table of hostile inputs in every text and number field: always a 4xx, never stored.

The fuzz test (test_api_fuzz.py) explores at random; this table names the attacks we know.
"""

import pytest
from django.apps import apps

HOSTILE_TEXT = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "' OR '1'='1'; DROP TABLE quotas_job; --",
    "agent\u0000id",
    "agent\nid",
    "\u202eevil",
    "😀",
    " padded ",
    "x" * 201,
    "x" * 100_000,
]
HOSTILE_NUMBERS = [-1, 2**63, 2**64, 10**100, 1.5, 1e308, "12", "NaN", True, None, [], {}]

ENDPOINTS = {
    "/api/v1/check": ({"agent_id": "agent-1"}, ["agent_id", "model", "repo", "action"]),
    "/api/v1/dispatch": (
        {"agent_id": "agent-1", "job_id": "j"},
        ["agent_id", "job_id", "model", "repo"],
    ),
    "/api/v1/usage": (
        {"agent_id": "agent-1", "job_id": "j", "event": "job_completed"},
        ["agent_id", "job_id", "model", "event", "timestamp"],
    ),
    "/api/v1/repo-events": (
        {"repo": "o/r", "kind": "pr_opened"},
        ["repo", "kind", "agent_id", "timestamp"],
    ),
    "/api/v1/allowances": ({"agent_id": "new-agent"}, ["agent_id"]),
    "/api/v1/model-quotas": ({"model": "new-model"}, ["model", "input_price_per_mtok"]),
    "/api/v1/repo-limits": ({"repo": "new/repo"}, ["repo"]),
}
NUMBER_FIELDS = {
    "/api/v1/usage": (
        {"agent_id": "agent-1", "job_id": "j", "event": "job_completed"},
        ["tokens_in", "tokens_out"],
    ),
    "/api/v1/allowances": (
        {"agent_id": "new-agent"},
        ["daily_token_limit", "daily_job_limit", "concurrent_jobs", "max_job_duration"],
    ),
    "/api/v1/model-quotas": (
        {"model": "new-model"},
        ["daily_token_budget", "hourly_rate_limit", "cost_ceiling"],
    ),
    "/api/v1/repo-limits": (
        {"repo": "new/repo"},
        ["max_daily_prs", "max_daily_issues", "cooldown_after_failure"],
    ),
}


def rows():
    """How many rows every table of the app holds."""
    return {
        model.__name__: model.objects.count()
        for model in apps.get_app_config("quotas").get_models()
    }


@pytest.fixture
def seeded(make_allowance, admin_api):
    make_allowance()
    return rows()


@pytest.mark.parametrize(
    ("path", "field"),
    [(path, field) for path, (_, fields) in ENDPOINTS.items() for field in fields],
)
def test_hostile_text_in_every_text_field_is_refused_and_not_stored(admin_api, seeded, path, field):
    valid, _ = ENDPOINTS[path]
    for text in HOSTILE_TEXT:
        response = admin_api.post(path, {**valid, field: text}, format="json")
        assert response.status_code == 400, (field, text, response.status_code)
        assert field in response.json()
    assert rows() == seeded


@pytest.mark.parametrize(
    ("path", "field"),
    [(path, field) for path, (_, fields) in NUMBER_FIELDS.items() for field in fields],
)
def test_hostile_numbers_in_every_number_field_are_refused_and_not_stored(
    admin_api, seeded, path, field
):
    valid, _ = NUMBER_FIELDS[path]
    for number in HOSTILE_NUMBERS:
        response = admin_api.post(path, {**valid, field: number}, format="json")
        assert response.status_code == 400, (field, number, response.status_code)
        assert field in response.json()
    assert rows() == seeded


def test_the_admin_escapes_what_the_books_hold(login, make_allowance):
    from django.utils import timezone

    from quotas.models import Job, ModelUsage
    from quotas.periods import day_start

    # Ids are validated on the way in; rows written some other way must still render inert.
    make_allowance()
    Job.objects.create(
        agent_id="agent-1", job_id="<b>job</b>", model="<script>x</script>", state="running"
    )
    ModelUsage.objects.create(
        model="<img src=x>", period_start=day_start(timezone.now()), tokens_used=5
    )
    client = login("superuser")
    for page in ("/admin/quotas/job/", "/admin/"):
        html = client.get(page).content.decode()
        assert "<script>x</script>" not in html
        assert "<img src=x>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in client.get("/admin/quotas/job/").content.decode()
