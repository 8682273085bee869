"""API keys: Bearer authentication, roles, revocation, last use, and the create_api_key command."""

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from quotas.models import AgentAllowance, APIKey

CHECK = "/api/v1/check"


def client_with(header):
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client


@pytest.fixture
def key(db):
    return APIKey.objects.create_key(name="dispatcher one", role="dispatcher")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Bearer not-a-key",
        "Bearer abc.def",
        "Bearer a b",
        "Basic dXNlcjpwYXNz",
        "Bearer \u00e9\u00e8",
    ],
    ids=["missing", "empty", "garbage", "unknown", "three-parts", "basic", "non-ascii"],
)
def test_missing_or_wrong_key_is_401_with_a_bearer_challenge(make_allowance, header):
    make_allowance()
    response = client_with(header).post(CHECK, {"agent_id": "agent-1"}, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="quotas"'
    assert set(response.json()) == {"detail"}


def test_a_valid_key_is_accepted_and_its_use_recorded(make_allowance, key):
    make_allowance()
    api_key, secret = key
    assert api_key.last_used_at is None
    response = client_with(f"Bearer {secret}").post(CHECK, {"agent_id": "agent-1"}, format="json")
    assert response.status_code == 200
    api_key.refresh_from_db()
    assert timezone.now() - api_key.last_used_at < timedelta(seconds=5)


def test_last_use_is_written_at_most_once_a_minute(
    make_allowance, key, settings, now, django_assert_num_queries
):
    settings.QUOTAS_API_KEY_CACHE_SECONDS = 0
    make_allowance()
    client = client_with(f"Bearer {key[1]}")

    def check_at(moment):
        with time_machine.travel(moment, tick=False):
            return client.post(CHECK, {"agent_id": "agent-1"}, format="json").status_code

    def last_use():
        return APIKey.objects.get(pk=key[0].pk).last_used_at

    assert (check_at(now), last_use()) == (200, now)
    # the key lookup and the agent's state (no model or repo asked about); no UPDATE of
    # last_used_at this time
    with django_assert_num_queries(2):
        assert check_at(now + timedelta(seconds=59)) == 200
    assert last_use() == now
    a_minute_on = now + timedelta(minutes=1)
    assert (check_at(a_minute_on), last_use()) == (200, a_minute_on)


def test_a_worker_remembers_a_valid_key_for_a_moment(
    make_allowance, key, monkeypatch, django_assert_num_queries
):
    from quotas.api import auth

    clock = [1000.0]
    monkeypatch.setattr(auth, "_clock", lambda: clock[0])
    make_allowance()
    client = client_with(f"Bearer {key[1]}")
    assert client.post(CHECK, {"agent_id": "agent-1"}, format="json").status_code == 200
    clock[0] += 0.9
    with django_assert_num_queries(1):  # the agent's state only
        assert client.post(CHECK, {"agent_id": "agent-1"}, format="json").status_code == 200
    # Revoked by another worker: this one's memory is not told, and runs out after a second.
    APIKey.objects.filter(pk=key[0].pk).update(revoked=True)
    assert client.post(CHECK, {"agent_id": "agent-1"}, format="json").status_code == 200
    clock[0] += 0.2
    response = client.post(CHECK, {"agent_id": "agent-1"}, format="json")
    assert (response.status_code, response.json()) == (401, {"detail": "Invalid API key."})


def test_the_key_word_is_not_case_sensitive(make_allowance, key):
    make_allowance()
    response = client_with(f"bearer {key[1]}").post(CHECK, {"agent_id": "agent-1"}, format="json")
    assert response.status_code == 200


def used_then_changed(key, change):
    """A key that has just been used (so it is remembered), then changed in this process."""
    api_key, secret = key
    client = client_with(f"Bearer {secret}")
    assert client.post(CHECK, {"agent_id": "agent-1"}, format="json").status_code == 200
    change(api_key)
    return client.post(CHECK, {"agent_id": "agent-1"}, format="json")


def revoke(api_key):
    api_key.revoked = True
    api_key.save()


def expire(api_key):
    api_key.expiry_date = timezone.now() - timedelta(seconds=1)
    api_key.save()


def test_a_revoked_key_is_refused_at_once(make_allowance, key):
    make_allowance()
    response = used_then_changed(key, revoke)
    assert (response.status_code, response.json()) == (401, {"detail": "Invalid API key."})


def test_a_deleted_key_is_refused_at_once(make_allowance, key):
    make_allowance()
    response = used_then_changed(key, lambda api_key: api_key.delete())
    assert (response.status_code, response.json()) == (401, {"detail": "Invalid API key."})


def test_an_expired_key_is_refused(make_allowance, key):
    make_allowance()
    response = used_then_changed(key, expire)
    assert (response.status_code, response.json()) == (401, {"detail": "This API key has expired."})


def test_a_wrong_secret_with_a_real_prefix_is_refused(make_allowance, key):
    make_allowance()
    forged = f"{key[0].prefix}.{'x' * 32}"
    response = client_with(f"Bearer {forged}").post(CHECK, {"agent_id": "agent-1"}, format="json")
    assert response.status_code == 401


def test_health_needs_no_key(db):
    response = APIClient().get("/api/v1/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/v1/allowances", {"agent_id": "new-agent"}),
        ("patch", "/api/v1/allowances/agent-1", {"paused": True}),
        ("delete", "/api/v1/allowances/agent-1", None),
        ("post", "/api/v1/agents/agent-1/reset", None),
    ],
)
def test_a_dispatcher_key_may_not_change_limits(api, make_allowance, method, path, body):
    make_allowance(daily_token_limit=10)
    response = getattr(api, method)(path, body, format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "This action needs an API key with the admin role."}
    assert list(AgentAllowance.objects.values_list("agent_id", "paused", "daily_token_limit")) == [
        ("agent-1", False, 10)
    ]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/v1/check", {"agent_id": "agent-1"}),
        ("post", "/api/v1/dispatch", {"agent_id": "agent-1", "job_id": "j"}),
        ("post", "/api/v1/usage", {"agent_id": "agent-1", "job_id": "j", "event": "job_started"}),
        ("post", "/api/v1/repo-events", {"repo": "o/r", "kind": "pr_opened"}),
        ("get", "/api/v1/usage/agents/agent-1", None),
        ("get", "/api/v1/jobs", None),
        ("get", "/api/v1/allowances", None),
    ],
)
def test_an_admin_key_may_do_what_a_dispatcher_may(admin_api, make_allowance, method, path, body):
    make_allowance()
    response = getattr(admin_api, method)(path, body, format="json")
    assert response.status_code in (200, 201)


def run_create(*args):
    out = StringIO()
    call_command("create_api_key", *args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_create_api_key_prints_a_working_key_last(make_allowance):
    make_allowance()
    lines = run_create("ci dispatcher")
    key = lines[-1]
    api_key = APIKey.objects.get()
    assert (api_key.name, api_key.role, api_key.prefix) == (
        "ci dispatcher",
        "dispatcher",
        key.split(".")[0],
    )
    assert key not in api_key.hashed_key
    response = client_with(f"Bearer {key}").post(CHECK, {"agent_id": "agent-1"}, format="json")
    assert response.status_code == 200


def test_create_api_key_with_the_admin_role(db):
    run_create("ops", "--role", "admin")
    assert APIKey.objects.get().role == "admin"


@pytest.mark.parametrize("args", [("",), ("x" * 51,), ("ops", "--role", "root")])
def test_create_api_key_refuses_bad_arguments(db, args):
    with pytest.raises(CommandError):
        run_create(*args)
    assert APIKey.objects.count() == 0
