"""The OpenAPI document, the docs page, and health."""

import base64
import re

import pytest
from django.db import OperationalError
from rest_framework.test import APIClient

from quotas.api import views

PATHS = {
    "/api/v1/health": {"get"},
    "/api/v1/check": {"post"},
    "/api/v1/dispatch": {"post"},
    "/api/v1/usage": {"post"},
    "/api/v1/repo-events": {"post"},
    "/api/v1/jobs": {"get"},
    "/api/v1/agents/{agent_id}/reset": {"post"},
    "/api/v1/usage/agents/{agent_id}": {"get"},
    "/api/v1/usage/models/{model}": {"get"},
    "/api/v1/usage/repos/{repo}": {"get"},
    "/api/v1/allowances": {"get", "post"},
    "/api/v1/allowances/{agent_id}": {"get", "put", "patch", "delete"},
    "/api/v1/model-quotas": {"get", "post"},
    "/api/v1/model-quotas/{model}": {"get", "put", "patch", "delete"},
    "/api/v1/repo-limits": {"get", "post"},
    "/api/v1/repo-limits/{repo}": {"get", "put", "patch", "delete"},
}


@pytest.fixture
def schema(db):
    response = APIClient().get("/api/schema", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return response.json()


def test_schema_describes_every_endpoint_and_method(schema):
    assert schema["openapi"].startswith("3.")
    documented = {
        path: set(operations) - {"parameters"} for path, operations in schema["paths"].items()
    }
    assert documented == PATHS


def test_schema_documents_bearer_keys_and_the_open_health_check(schema):
    assert schema["components"]["securitySchemes"]["bearerKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from the admin.",
    }
    # No security on the operation and none at the top: health needs no key.
    assert "security" not in schema
    assert schema["paths"]["/api/v1/health"]["get"].get("security") in (None, [], [{}])
    assert {"bearerKey": []} in schema["paths"]["/api/v1/check"]["post"]["security"]


def test_schema_documents_the_dispatch_answers(schema):
    answers = schema["paths"]["/api/v1/dispatch"]["post"]["responses"]
    assert {"200", "201", "400", "401", "403", "404", "429"} <= set(answers)


def test_check_and_dispatch_answer_exactly_the_documented_fields(schema, api, make_allowance):
    # The views answer with the result's own fields rather than running the serializers
    # that document them, so the two must not drift apart.
    make_allowance()
    documented = schema["components"]["schemas"]
    check = api.post("/api/v1/check", {"agent_id": "agent-1"}, format="json")
    dispatch = api.post("/api/v1/dispatch", {"agent_id": "agent-1", "job_id": "j"}, format="json")
    assert list(check.json()) == list(documented["QuotaCheckResult"]["properties"])
    assert list(dispatch.json()) == list(documented["DispatchResult"]["properties"])
    assert dispatch.json()["job_id"] == "j" and dispatch.json()["remaining_jobs"] == -1


def test_docs_page_loads_nothing_from_the_internet(db):
    response = APIClient().get("/api/docs")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources
    assert all(not source.startswith(("http://", "https://", "//")) for source in sources)


def test_health_is_503_when_the_database_does_not_answer(db, monkeypatch):
    class Down:
        def cursor(self):
            raise OperationalError("connection refused")

    monkeypatch.setattr(views, "connection", Down())
    response = APIClient().get("/api/v1/health")
    assert (response.status_code, response.json()) == (503, {"status": "unavailable"})


def test_a_forged_job_cursor_is_404_not_500(api):
    forged = base64.b64encode(b"p=abc").decode()
    response = api.get(f"/api/v1/jobs?cursor={forged}")
    assert (response.status_code, response.json()) == (404, {"detail": "Invalid cursor"})


@pytest.mark.parametrize("path", ["/api/v1/nothing-here", "/api/v1/usage/repos/0", "/api/v2/check"])
def test_unknown_api_paths_answer_json_404(api, path):
    response = api.get(path)
    assert (response.status_code, response["Content-Type"], response.json()) == (
        404,
        "application/json",
        {"detail": "Not found."},
    )


def test_unknown_pages_outside_the_api_stay_html(client, db):
    response = client.get("/nothing-here")
    assert (response.status_code, response["Content-Type"].split(";")[0]) == (404, "text/html")


def test_a_model_id_with_a_newline_in_the_path_is_a_400_naming_the_field(api):
    response = api.get("/api/v1/usage/models/a%0Ab")
    assert response.status_code == 400
    assert list(response.json()) == ["model"]


def test_an_unexpected_error_in_the_api_is_json(api, make_allowance, monkeypatch):
    from quotas import services

    def broken(**kwargs):
        raise RuntimeError("boom")

    make_allowance()
    monkeypatch.setattr(services, "check", broken)
    api.raise_request_exception = False
    response = api.post("/api/v1/check", {"agent_id": "agent-1"}, format="json")
    assert (response.status_code, response.json()) == (500, {"detail": "Internal server error."})


def test_a_database_error_in_the_api_is_a_json_503(api, make_allowance, monkeypatch):
    from django.db import OperationalError

    from quotas import services

    def unreachable(**kwargs):
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    make_allowance()
    monkeypatch.setattr(services, "check", unreachable)
    response = api.post("/api/v1/check", {"agent_id": "agent-1"}, format="json")
    assert (response.status_code, response["Retry-After"], response.json()) == (
        503,
        "5",
        {"detail": "The database is unavailable; try again shortly."},
    )
