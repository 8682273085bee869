"""Production settings, throttling of guessed keys and passwords, and what the logs hold."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parent.parent
CHECK = "/api/v1/check"


def test_check_deploy_finds_nothing_with_production_settings():
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DEBUG", "SECRET_KEY", "HTTPS"))
    }
    env.pop("DATABASE_URL", None)
    env.update(
        SECRET_KEY="a-production-key-" + "x7Qp2vL9" * 8,
        DEBUG="off",
        HTTPS="on",
        ENV_FILE=os.devnull,
        ALLOWED_HOSTS="quotas.example.com",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def bad_key_client(address="203.0.113.7"):
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION="Bearer guessed.key-that-does-not-exist")
    return client


def test_a_burst_of_bad_keys_from_one_address_is_answered_429(
    make_allowance, make_client, settings
):
    settings.QUOTAS_BAD_KEY_LIMIT = 5
    make_allowance()
    guesser = bad_key_client()
    codes = [
        guesser.post(CHECK, {"agent_id": "agent-1"}, format="json").status_code for _ in range(7)
    ]
    assert codes == [401] * 5 + [429] * 2
    refused = guesser.post(CHECK, {"agent_id": "agent-1"}, format="json")
    assert 0 < int(refused["Retry-After"]) <= 60
    # Another address is not affected.
    assert (
        bad_key_client("198.51.100.9")
        .post(CHECK, {"agent_id": "agent-1"}, format="json")
        .status_code
        == 401
    )
    assert make_client().post(CHECK, {"agent_id": "agent-1"}, format="json").status_code == 200


def test_repeated_failed_admin_logins_lock_the_account_out(client, django_user_model, settings):
    settings.AXES_FAILURE_LIMIT = 3
    django_user_model.objects.create_superuser("root", password="the-right-password-1")
    for _ in range(3):
        response = client.post("/admin/login/", {"username": "root", "password": "guess"})
        assert response.status_code in (200, 429)
    locked = client.post("/admin/login/", {"username": "root", "password": "the-right-password-1"})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_successful_login_before_the_limit_works(client, django_user_model):
    django_user_model.objects.create_superuser("root", password="the-right-password-1")
    client.post("/admin/login/", {"username": "root", "password": "guess"})
    response = client.post(
        "/admin/login/", {"username": "root", "password": "the-right-password-1"}
    )
    assert response.status_code == 302
    assert client.session["_auth_user_id"]


def test_every_api_request_logs_one_structured_line(api, make_allowance, caplog):
    make_allowance(paused=True)
    with caplog.at_level(logging.INFO, logger="quotas.api"):
        api.post("/api/v1/dispatch", {"agent_id": "agent-1", "job_id": "j"}, format="json")
        api.post(CHECK, {"agent_id": "ghost"}, format="json")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "quotas.api"]
    assert [{k: v for k, v in line.items() if k != "duration_ms"} for line in lines] == [
        {
            "method": "POST",
            "path": "/api/v1/dispatch",
            "status": 403,
            "agent": "agent-1",
            "decision": "agent_paused",
        },
        {"method": "POST", "path": CHECK, "status": 404, "agent": "", "decision": ""},
    ]
    assert all(
        isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0 for line in lines
    )


def test_keys_and_passwords_never_reach_the_logs(
    client, make_allowance, make_client, django_user_model, caplog
):
    from quotas.models import APIKey

    make_allowance()
    _, key = APIKey.objects.create_key(name="logged", role="dispatcher")
    django_user_model.objects.create_superuser("root", password="the-right-password-1")
    with caplog.at_level(logging.DEBUG):
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        api.post(CHECK, {"agent_id": "agent-1"}, format="json")
        bad = APIClient()
        bad.credentials(HTTP_AUTHORIZATION=f"Bearer {key}x")
        bad.post(CHECK, {"agent_id": "agent-1"}, format="json")
        client.post("/admin/login/", {"username": "root", "password": "a-wrong-secret-password"})
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert logged  # something was logged, so the absence below means something
    for secret in (key, key.split(".")[1], "a-wrong-secret-password", "the-right-password-1"):
        assert secret not in logged


@pytest.mark.parametrize(
    "agent_id",
    [
        "<script>alert(1)</script>",
        "'; DROP TABLE quotas_job; --",
        "agent\u202e1",
        "a" * 10_000,
        "\u0000",
    ],
)
def test_hostile_ids_are_refused_and_never_stored(api, db, agent_id):
    from quotas.models import AgentAllowance, Job, UsageEvent

    for path, body in [
        (CHECK, {"agent_id": agent_id}),
        ("/api/v1/dispatch", {"agent_id": agent_id, "job_id": agent_id}),
        (
            "/api/v1/usage",
            {"agent_id": "a", "job_id": agent_id, "event": "job_completed", "model": agent_id},
        ),
    ]:
        assert api.post(path, body, format="json").status_code == 400
    assert (AgentAllowance.objects.count(), Job.objects.count(), UsageEvent.objects.count()) == (
        0,
        0,
        0,
    )
