"""The limits API: allowances, model quotas and repository limits.

Any key may read them; only an admin key may create, change or delete them.
"""

from datetime import timedelta
from decimal import Decimal
from typing import NamedTuple

import pytest
from django.db import models
from django.utils import timezone

from quotas.api import serializers
from quotas.models import AgentAllowance, APIKey, ModelQuota, RepoLimit
from quotas.validators import BIGINT_MAX, INT_MAX

MODEL = "anthropic/claude-sonnet-4.5"
MAX_SECONDS = 366 * 24 * 3600


class Limit(NamedTuple):
    """One kind of limit as the API serves it: where, which model, and a sample."""

    url: str
    model: type[models.Model]
    id_field: str
    id: str
    other_id: str
    unused_id: str
    count_field: str

    def detail(self, id_: str | None = None, slash: str = "") -> str:
        return f"{self.url}/{id_ or self.id}{slash}"

    def create(self, id_: str | None = None, **values):
        return self.model.objects.create(**{self.id_field: id_ or self.id}, **values)

    def row(self, id_: str | None = None):
        return self.model.objects.get(**{self.id_field: id_ or self.id})

    def rows(self) -> list[dict]:
        return list(self.model.objects.order_by("pk").values())


ALLOWANCE = Limit(
    url="/api/v1/allowances",
    model=AgentAllowance,
    id_field="agent_id",
    id="agent-1",
    other_id="agent-2",
    unused_id="agent-9",
    count_field="daily_job_limit",
)
MODEL_QUOTA = Limit(
    url="/api/v1/model-quotas",
    model=ModelQuota,
    id_field="model",
    id=MODEL,
    other_id="openai:gpt-4o",
    unused_id="openai/gpt-5",
    count_field="hourly_rate_limit",
)
REPO_LIMIT = Limit(
    url="/api/v1/repo-limits",
    model=RepoLimit,
    id_field="repo",
    id="octo-org/api.v2",
    other_id="octo-org/web",
    unused_id="octo-org/renamed",
    count_field="max_daily_prs",
)
SERIALIZERS = {
    AgentAllowance: serializers.AllowanceSerializer,
    ModelQuota: serializers.ModelQuotaSerializer,
    RepoLimit: serializers.RepoLimitSerializer,
}
LIMITS = {"allowance": ALLOWANCE, "model quota": MODEL_QUOTA, "repo limit": REPO_LIMIT}


@pytest.fixture(params=list(LIMITS.values()), ids=list(LIMITS))
def limit(request, db) -> Limit:
    return request.param


def body(limit: Limit, id_: str | None = None, **values) -> dict:
    return {limit.id_field: id_ or limit.id, **values}


# Reading


@pytest.mark.parametrize("slash", ["", "/"])
def test_a_dispatcher_key_lists_every_limit_in_id_order(api, limit, slash):
    limit.create(limit.other_id)
    limit.create(limit.id)
    response = api.get(limit.url + slash)
    assert response.status_code == 200
    assert [item[limit.id_field] for item in response.json()] == sorted([limit.id, limit.other_id])


def test_an_empty_list_is_an_empty_json_array(api, limit):
    response = api.get(limit.url)
    assert (response.status_code, response.json()) == (200, [])


@pytest.mark.parametrize("slash", ["", "/"])
def test_a_dispatcher_key_retrieves_one_limit(api, limit, slash):
    limit.create(**{limit.count_field: 7})
    limit.create(limit.other_id)
    response = api.get(limit.detail(slash=slash))
    assert response.status_code == 200
    assert response.json()[limit.id_field] == limit.id
    assert response.json()[limit.count_field] == 7


def test_an_allowance_reads_back_every_field(api, make_allowance):
    make_allowance(
        "agent-1",
        daily_token_limit=100_000,
        daily_job_limit=20,
        concurrent_jobs=3,
        max_job_duration=timedelta(minutes=45),
        model_allowlist=[MODEL, "openai:gpt-4o"],
        paused=True,
    )
    data = api.get("/api/v1/allowances/agent-1").json()
    assert set(data) == {
        "agent_id",
        "daily_token_limit",
        "daily_job_limit",
        "concurrent_jobs",
        "max_job_duration",
        "model_allowlist",
        "paused",
        "created_at",
        "updated_at",
    }
    assert {key: data[key] for key in data if not key.endswith("_at")} == {
        "agent_id": "agent-1",
        "daily_token_limit": 100_000,
        "daily_job_limit": 20,
        "concurrent_jobs": 3,
        "max_job_duration": 2700,
        "model_allowlist": [MODEL, "openai:gpt-4o"],
        "paused": True,
    }


def test_a_model_quota_reads_back_prices_as_json_numbers(api, make_model_quota):
    make_model_quota(
        MODEL,
        daily_token_budget=5_000_000,
        hourly_rate_limit=60,
        cost_ceiling=2500,
        input_price_per_mtok=Decimal("3"),
        output_price_per_mtok=Decimal("15.1234"),
    )
    response = api.get(f"/api/v1/model-quotas/{MODEL}")
    data = response.json()
    assert {key: data[key] for key in data if not key.endswith("_at")} == {
        "model": MODEL,
        "daily_token_budget": 5_000_000,
        "hourly_rate_limit": 60,
        "cost_ceiling": 2500,
        "input_price_per_mtok": 3.0,
        "output_price_per_mtok": 15.1234,
    }
    assert b'"input_price_per_mtok":3.0' in response.content
    assert b'"output_price_per_mtok":15.1234' in response.content


def test_a_repo_limit_reads_back_its_cooldown_in_seconds(api, make_repo_limit):
    make_repo_limit(
        "octo-org/api",
        max_daily_prs=5,
        max_daily_issues=8,
        cooldown_after_failure=timedelta(hours=1),
    )
    data = api.get("/api/v1/repo-limits/octo-org/api").json()
    assert {key: data[key] for key in data if not key.endswith("_at")} == {
        "repo": "octo-org/api",
        "max_daily_prs": 5,
        "max_daily_issues": 8,
        "cooldown_after_failure": 3600,
    }


@pytest.mark.parametrize(
    "model",
    [MODEL, "openai:gpt-4o", "meta-llama/llama-3.1-70b-instruct:free", "gpt-4.1", "a/b/c.d"],
)
@pytest.mark.parametrize("slash", ["", "/"])
def test_a_model_id_with_slashes_colons_and_dots_is_found_by_its_url(
    api, make_model_quota, model, slash
):
    make_model_quota(model, hourly_rate_limit=9)
    make_model_quota("other-model")
    response = api.get(f"/api/v1/model-quotas/{model}{slash}")
    assert response.status_code == 200
    assert (response.json()["model"], response.json()["hourly_rate_limit"]) == (model, 9)


@pytest.mark.parametrize("repo", ["octo-org/api", "octo-org/api.v2", "a1/b_c-d.e"])
@pytest.mark.parametrize("slash", ["", "/"])
def test_a_repo_is_found_by_its_owner_and_name(api, make_repo_limit, repo, slash):
    make_repo_limit(repo, max_daily_prs=4)
    response = api.get(f"/api/v1/repo-limits/{repo}{slash}")
    assert response.status_code == 200
    assert (response.json()["repo"], response.json()["max_daily_prs"]) == (repo, 4)


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_an_unknown_id_is_404(admin_api, limit, method):
    limit.create(limit.other_id)
    response = getattr(admin_api, method)(limit.detail(), {limit.count_field: 1}, format="json")
    assert response.status_code == 404
    assert limit.rows()[0][limit.count_field] == 0
    assert limit.model.objects.count() == 1


def test_the_default_allowance_can_be_created_and_read_at_its_star_url(admin_api, api):
    created = admin_api.post(
        "/api/v1/allowances", {"agent_id": "*", "daily_token_limit": 50_000}, format="json"
    )
    assert created.status_code == 201
    assert AgentAllowance.objects.get(agent_id="*").daily_token_limit == 50_000
    response = api.get("/api/v1/allowances/*")
    assert response.status_code == 200
    assert (response.json()["agent_id"], response.json()["daily_token_limit"]) == ("*", 50_000)
    changed = admin_api.patch("/api/v1/allowances/*/", {"concurrent_jobs": 2}, format="json")
    assert changed.status_code == 200
    assert AgentAllowance.objects.get(agent_id="*").concurrent_jobs == 2


# Authentication and roles


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("slash", ["", "/"])
def test_the_collection_without_a_key_is_401_with_a_bearer_challenge(client, limit, method, slash):
    response = getattr(client, method)(
        limit.url + slash, body(limit), content_type="application/json"
    )
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert limit.model.objects.count() == 0


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_one_limit_without_a_key_is_401_and_unchanged(client, limit, method):
    limit.create()
    before = limit.rows()
    response = getattr(client, method)(
        limit.detail(), {limit.count_field: 3}, content_type="application/json"
    )
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert limit.rows() == before


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-a-real-key", "Bearer", "Bearer two words", "Basic dXNlcjpwYXNz", "Api-Key x"],
)
def test_a_wrong_or_malformed_key_is_401_with_a_bearer_challenge(client, limit, authorization):
    response = client.post(
        limit.url, body(limit), content_type="application/json", HTTP_AUTHORIZATION=authorization
    )
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert limit.model.objects.count() == 0


@pytest.mark.parametrize("revoked, expired", [(True, False), (False, True)])
def test_a_revoked_or_expired_admin_key_is_401_and_changes_nothing(client, limit, revoked, expired):
    expiry_date = timezone.now() - timedelta(minutes=1) if expired else None
    _, key = APIKey.objects.create_key(
        name="old admin", role="admin", revoked=revoked, expiry_date=expiry_date
    )
    response = client.post(
        limit.url, body(limit), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert limit.model.objects.count() == 0


def test_a_dispatcher_key_cannot_create_a_limit(api, limit):
    response = api.post(limit.url, body(limit, **{limit.count_field: 3}), format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "This action needs an API key with the admin role."}
    assert limit.model.objects.count() == 0


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_a_dispatcher_key_cannot_change_or_delete_a_limit(api, limit, method):
    limit.create(**{limit.count_field: 1})
    before = limit.rows()
    payload = body(limit, **{limit.count_field: 3})
    response = getattr(api, method)(limit.detail(), payload, format="json")
    assert response.status_code == 403
    assert limit.rows() == before


# Creating


@pytest.mark.parametrize("slash", ["", "/"])
def test_an_admin_key_creates_a_limit(admin_api, limit, slash):
    response = admin_api.post(
        limit.url + slash, body(limit, **{limit.count_field: 12}), format="json"
    )
    assert response.status_code == 201
    assert response.json()[limit.id_field] == limit.id
    assert response.json()[limit.count_field] == 12
    assert getattr(limit.row(), limit.count_field) == 12
    assert limit.model.objects.count() == 1


def test_a_created_allowance_has_every_limit_as_sent(admin_api):
    payload = {
        "agent_id": "agent-1",
        "daily_token_limit": 1_000_000,
        "daily_job_limit": 50,
        "concurrent_jobs": 4,
        "max_job_duration": 2700,
        "model_allowlist": [MODEL, "openai:gpt-4o"],
        "paused": True,
    }
    response = admin_api.post("/api/v1/allowances", payload, format="json")
    assert response.status_code == 201
    assert {key: response.json()[key] for key in payload} == payload
    row = AgentAllowance.objects.get()
    assert (
        row.daily_token_limit,
        row.daily_job_limit,
        row.concurrent_jobs,
        row.max_job_duration,
        row.model_allowlist,
        row.paused,
    ) == (1_000_000, 50, 4, timedelta(minutes=45), [MODEL, "openai:gpt-4o"], True)


def test_a_created_allowance_defaults_to_unlimited(admin_api):
    response = admin_api.post("/api/v1/allowances", {"agent_id": "agent-1"}, format="json")
    assert response.status_code == 201
    data = response.json()
    assert {key: data[key] for key in data if not key.endswith("_at")} == {
        "agent_id": "agent-1",
        "daily_token_limit": 0,
        "daily_job_limit": 0,
        "concurrent_jobs": 0,
        "max_job_duration": 0,
        "model_allowlist": [],
        "paused": False,
    }


def test_a_created_model_quota_stores_prices_and_cost_ceiling(admin_api):
    payload = {
        "model": MODEL,
        "daily_token_budget": 10_000_000,
        "hourly_rate_limit": 120,
        "cost_ceiling": 5000,
        "input_price_per_mtok": 3.25,
        "output_price_per_mtok": "15.1234",
    }
    response = admin_api.post("/api/v1/model-quotas", payload, format="json")
    assert response.status_code == 201
    assert {key: response.json()[key] for key in payload} == {
        **payload,
        "output_price_per_mtok": 15.1234,
    }
    row = ModelQuota.objects.get()
    assert (row.cost_ceiling, row.input_price_per_mtok, row.output_price_per_mtok) == (
        5000,
        Decimal("3.25"),
        Decimal("15.1234"),
    )


def test_a_created_repo_limit_stores_its_cooldown_as_a_duration(admin_api):
    payload = {
        "repo": "octo-org/api",
        "max_daily_prs": 3,
        "max_daily_issues": 6,
        "cooldown_after_failure": 1800,
    }
    response = admin_api.post("/api/v1/repo-limits", payload, format="json")
    assert response.status_code == 201
    assert {key: response.json()[key] for key in payload} == payload
    row = RepoLimit.objects.get()
    assert (row.max_daily_prs, row.max_daily_issues, row.cooldown_after_failure) == (
        3,
        6,
        timedelta(minutes=30),
    )


def test_creating_a_duplicate_is_400_keyed_by_the_id_and_keeps_the_first(admin_api, limit):
    limit.create(**{limit.count_field: 1})
    response = admin_api.post(limit.url, body(limit, **{limit.count_field: 9}), format="json")
    assert response.status_code == 400
    assert list(response.json()) == [limit.id_field]
    assert limit.model.objects.count() == 1
    assert getattr(limit.row(), limit.count_field) == 1


@pytest.mark.parametrize("id_value", ["absent", "", None])
def test_creating_without_an_id_is_400_keyed_by_the_id(admin_api, limit, id_value):
    payload = {limit.count_field: 1}
    if id_value != "absent":
        payload[limit.id_field] = id_value
    response = admin_api.post(limit.url, payload, format="json")
    assert response.status_code == 400
    assert list(response.json()) == [limit.id_field]
    assert limit.model.objects.count() == 0


@pytest.mark.parametrize(
    "limit_name, bad_id",
    [
        ("allowance", "agent 1"),
        ("allowance", "agent/1"),
        ("allowance", "**"),
        ("allowance", 42),
        ("allowance", "a" * 201),
        ("model quota", "anthropic/"),
        ("model quota", "/claude"),
        ("model quota", "claude sonnet"),
        ("model quota", "*"),
        ("model quota", ["claude"]),
        ("repo limit", "octo-org"),
        ("repo limit", "octo-org/api/extra"),
        ("repo limit", "-octo/api"),
        ("repo limit", "octo-org/.."),
        ("repo limit", "octo--org/api"),
    ],
)
def test_a_malformed_id_is_400_keyed_by_the_id(admin_api, db, limit_name, bad_id):
    limit = LIMITS[limit_name]
    response = admin_api.post(limit.url, {limit.id_field: bad_id}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == [limit.id_field]
    assert limit.model.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_created_by_a_concurrent_request_is_400_not_500(admin_api, limit, monkeypatch):
    serializer_class = SERIALIZERS[limit.model]
    create = serializer_class.create

    def create_after_a_rival(self, validated_data):
        # The rival request commits its insert after our UniqueValidator looked, before we save.
        limit.create(**{limit.count_field: 1})
        return create(self, validated_data)

    monkeypatch.setattr(serializer_class, "create", create_after_a_rival)
    admin_api.raise_request_exception = False
    response = admin_api.post(limit.url, body(limit, **{limit.count_field: 9}), format="json")
    assert response.status_code == 400
    assert list(response.json()) == [limit.id_field]
    assert limit.model.objects.count() == 1
    assert getattr(limit.row(), limit.count_field) == 1


@pytest.mark.parametrize(
    "limit_name, longest_id",
    [
        ("allowance", "a" * 200),
        ("model quota", "m" * 100 + "/" + "n" * 99),
        ("repo limit", "o" * 39 + "/" + "r" * 100),
    ],
)
def test_the_longest_valid_id_is_created_and_found_at_its_url(
    admin_api, db, limit_name, longest_id
):
    limit = LIMITS[limit_name]
    assert admin_api.post(limit.url, body(limit, longest_id), format="json").status_code == 201
    response = admin_api.get(limit.detail(longest_id))
    assert (response.status_code, response.json()[limit.id_field]) == (200, longest_id)


def test_unknown_fields_in_the_body_are_ignored(admin_api, limit):
    payload = body(limit, **{limit.count_field: 2, "colour": "blue", "id": 999})
    response = admin_api.post(limit.url, payload, format="json")
    assert response.status_code == 201
    assert "colour" not in response.json()
    assert "id" not in response.json()
    assert getattr(limit.row(), limit.count_field) == 2
    assert limit.model.objects.count() == 1


def test_timestamps_in_the_body_are_ignored(admin_api, limit):
    payload = body(limit, created_at="2000-01-01T00:00:00Z", updated_at="2000-01-01T00:00:00Z")
    response = admin_api.post(limit.url, payload, format="json")
    assert response.status_code == 201
    assert limit.row().created_at.year > 2000
    assert limit.row().updated_at.year > 2000


def test_a_body_that_is_not_json_is_400(admin_api, limit):
    response = admin_api.post(limit.url, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert limit.model.objects.count() == 0


# Changing and deleting


@pytest.mark.parametrize("slash", ["", "/"])
def test_an_admin_key_replaces_a_limit_with_put(admin_api, limit, slash):
    limit.create(**{limit.count_field: 1})
    response = admin_api.put(
        limit.detail(slash=slash), body(limit, **{limit.count_field: 8}), format="json"
    )
    assert response.status_code == 200
    assert response.json()[limit.count_field] == 8
    assert getattr(limit.row(), limit.count_field) == 8


def test_put_without_the_id_in_the_body_changes_the_limit_at_the_url(admin_api, limit):
    limit.create(**{limit.count_field: 1})
    limit.create(limit.other_id, **{limit.count_field: 1})
    response = admin_api.put(limit.detail(), {limit.count_field: 5}, format="json")
    assert response.status_code == 200
    assert response.json()[limit.id_field] == limit.id
    assert getattr(limit.row(), limit.count_field) == 5
    assert getattr(limit.row(limit.other_id), limit.count_field) == 1


def test_put_replaces_every_allowance_field_it_is_given(admin_api, make_allowance):
    make_allowance("agent-1", daily_token_limit=10, model_allowlist=["gpt-4.1"], paused=True)
    payload = {
        "daily_token_limit": 20,
        "daily_job_limit": 3,
        "concurrent_jobs": 1,
        "max_job_duration": 600,
        "model_allowlist": [MODEL],
        "paused": False,
    }
    response = admin_api.put("/api/v1/allowances/agent-1", payload, format="json")
    assert response.status_code == 200
    row = AgentAllowance.objects.get()
    assert (
        row.daily_token_limit,
        row.daily_job_limit,
        row.concurrent_jobs,
        row.max_job_duration,
        row.model_allowlist,
        row.paused,
    ) == (20, 3, 1, timedelta(minutes=10), [MODEL], False)


@pytest.mark.parametrize("slash", ["", "/"])
def test_an_admin_key_changes_one_field_with_patch(admin_api, limit, slash):
    limit.create(**{limit.count_field: 1})
    before = limit.rows()[0]
    response = admin_api.patch(limit.detail(slash=slash), {limit.count_field: 6}, format="json")
    assert response.status_code == 200
    assert response.json()[limit.count_field] == 6
    after = limit.rows()[0]
    assert after[limit.count_field] == 6
    unchanged = {key for key in before if key not in (limit.count_field, "updated_at")}
    assert {key: after[key] for key in unchanged} == {key: before[key] for key in unchanged}
    assert after["updated_at"] >= before["updated_at"]


def test_patch_pauses_and_resumes_an_agent(admin_api, make_allowance):
    make_allowance("agent-1")
    paused = admin_api.patch("/api/v1/allowances/agent-1", {"paused": True}, format="json")
    assert (paused.status_code, paused.json()["paused"]) == (200, True)
    assert AgentAllowance.objects.get().paused is True
    resumed = admin_api.patch("/api/v1/allowances/agent-1", {"paused": False}, format="json")
    assert (resumed.status_code, resumed.json()["paused"]) == (200, False)
    assert AgentAllowance.objects.get().paused is False


def test_patch_of_a_model_with_slashes_changes_that_model_only(admin_api, make_model_quota):
    make_model_quota(MODEL, cost_ceiling=100)
    make_model_quota("anthropic/claude-sonnet-4", cost_ceiling=100)
    response = admin_api.patch(
        f"/api/v1/model-quotas/{MODEL}/", {"cost_ceiling": 250}, format="json"
    )
    assert (response.status_code, response.json()["cost_ceiling"]) == (200, 250)
    assert dict(ModelQuota.objects.values_list("model", "cost_ceiling")) == {
        MODEL: 250,
        "anthropic/claude-sonnet-4": 100,
    }


@pytest.mark.parametrize("method", ["put", "patch"])
def test_the_same_id_in_the_body_is_accepted(admin_api, limit, method):
    limit.create()
    response = getattr(admin_api, method)(
        limit.detail(), body(limit, **{limit.count_field: 4}), format="json"
    )
    assert response.status_code == 200
    assert getattr(limit.row(), limit.count_field) == 4


@pytest.mark.parametrize("method", ["put", "patch"])
@pytest.mark.parametrize("target", ["new", "taken"])
def test_changing_the_id_is_400_and_changes_nothing(admin_api, limit, method, target):
    limit.create(**{limit.count_field: 1})
    if target == "taken":
        limit.create(limit.other_id, **{limit.count_field: 1})
    before = limit.rows()
    new_id = limit.other_id if target == "taken" else limit.unused_id
    response = getattr(admin_api, method)(
        limit.detail(), body(limit, new_id, **{limit.count_field: 9}), format="json"
    )
    assert response.status_code == 400
    assert list(response.json()) == [limit.id_field]
    assert limit.rows() == before


@pytest.mark.django_db(transaction=True)
def test_a_limit_deleted_during_a_patch_stays_deleted(admin_api, limit, monkeypatch):
    limit.create(**{limit.count_field: 1})
    serializer_class = SERIALIZERS[limit.model]
    update = serializer_class.update

    def update_after_a_rival_delete(self, instance, validated_data):
        # The rival DELETE commits after our view fetched the row, before we save it.
        limit.model.objects.filter(pk=instance.pk).delete()
        return update(self, instance, validated_data)

    monkeypatch.setattr(serializer_class, "update", update_after_a_rival_delete)
    admin_api.raise_request_exception = False
    response = admin_api.patch(limit.detail(), {limit.count_field: 9}, format="json")
    assert response.status_code == 404
    assert limit.model.objects.count() == 0


@pytest.mark.parametrize("slash", ["", "/"])
def test_an_admin_key_deletes_a_limit(admin_api, limit, slash):
    limit.create()
    limit.create(limit.other_id)
    response = admin_api.delete(limit.detail(slash=slash))
    assert response.status_code == 204
    assert list(limit.model.objects.values_list(limit.id_field, flat=True)) == [limit.other_id]
    assert admin_api.get(limit.detail()).status_code == 404


# Whole numbers

INTEGER_FIELDS = [
    ("allowance", "daily_token_limit", BIGINT_MAX),
    ("allowance", "daily_job_limit", INT_MAX),
    ("allowance", "concurrent_jobs", INT_MAX),
    ("model quota", "daily_token_budget", BIGINT_MAX),
    ("model quota", "hourly_rate_limit", INT_MAX),
    ("model quota", "cost_ceiling", BIGINT_MAX),
    ("repo limit", "max_daily_prs", INT_MAX),
    ("repo limit", "max_daily_issues", INT_MAX),
]


@pytest.mark.parametrize("limit_name, field, maximum", INTEGER_FIELDS)
@pytest.mark.parametrize("value", [0, 1, "max"])
def test_an_integer_limit_takes_zero_to_its_maximum(
    admin_api, db, limit_name, field, maximum, value
):
    limit = LIMITS[limit_name]
    value = maximum if value == "max" else value
    response = admin_api.post(limit.url, body(limit, **{field: value}), format="json")
    assert response.status_code == 201
    assert response.json()[field] == value
    assert getattr(limit.row(), field) == value


@pytest.mark.parametrize("limit_name, field, maximum", INTEGER_FIELDS)
@pytest.mark.parametrize(
    "value", ["5", 5.5, 5.0, True, False, -1, "max+1", None, [5], {"value": 5}]
)
def test_an_integer_limit_rejects_anything_but_a_whole_number_in_range(
    admin_api, db, limit_name, field, maximum, value
):
    limit = LIMITS[limit_name]
    value = maximum + 1 if value == "max+1" else value
    response = admin_api.post(limit.url, body(limit, **{field: value}), format="json")
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert limit.model.objects.count() == 0


@pytest.mark.parametrize("limit_name, field, maximum", INTEGER_FIELDS)
def test_a_patch_with_a_bad_integer_is_400_and_changes_nothing(
    admin_api, db, limit_name, field, maximum
):
    limit = LIMITS[limit_name]
    limit.create(**{field: 5})
    before = limit.rows()
    response = admin_api.patch(limit.detail(), {field: maximum + 1}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert limit.rows() == before


# Durations

DURATION_FIELDS = [("allowance", "max_job_duration"), ("repo limit", "cooldown_after_failure")]


@pytest.mark.parametrize("limit_name, field", DURATION_FIELDS)
@pytest.mark.parametrize(
    "seconds, duration",
    [
        (0, timedelta(0)),
        (1, timedelta(seconds=1)),
        (2700, timedelta(minutes=45)),
        (MAX_SECONDS, timedelta(days=366)),
    ],
)
def test_a_duration_is_whole_seconds_in_and_out(
    admin_api, db, limit_name, field, seconds, duration
):
    limit = LIMITS[limit_name]
    response = admin_api.post(limit.url, body(limit, **{field: seconds}), format="json")
    assert response.status_code == 201
    assert response.json()[field] == seconds
    assert getattr(limit.row(), field) == duration
    assert admin_api.get(limit.detail()).json()[field] == seconds


@pytest.mark.parametrize("limit_name, field", DURATION_FIELDS)
@pytest.mark.parametrize(
    "seconds", [-1, 2700.5, 2700.0, "2700", "PT45M", "00:45:00", True, None, MAX_SECONDS + 1]
)
def test_a_duration_rejects_anything_but_whole_seconds_up_to_366_days(
    admin_api, db, limit_name, field, seconds
):
    limit = LIMITS[limit_name]
    response = admin_api.post(limit.url, body(limit, **{field: seconds}), format="json")
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert limit.model.objects.count() == 0


@pytest.mark.parametrize("limit_name, field", DURATION_FIELDS)
def test_a_patched_duration_is_stored_as_a_timedelta(admin_api, db, limit_name, field):
    limit = LIMITS[limit_name]
    limit.create(**{field: timedelta(hours=1)})
    response = admin_api.patch(limit.detail(), {field: 90}, format="json")
    assert (response.status_code, response.json()[field]) == (200, 90)
    assert getattr(limit.row(), field) == timedelta(seconds=90)


# Model allowlists


def test_an_allowlist_of_distinct_model_ids_is_stored_in_order(admin_api):
    allowlist = [MODEL, "openai:gpt-4o", "gpt-4.1", "meta-llama/llama-3.1-70b:free"]
    response = admin_api.post(
        "/api/v1/allowances", {"agent_id": "agent-1", "model_allowlist": allowlist}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["model_allowlist"] == allowlist
    assert AgentAllowance.objects.get().model_allowlist == allowlist


def test_patching_the_allowlist_to_empty_allows_every_model_again(admin_api, make_allowance):
    make_allowance("agent-1", model_allowlist=[MODEL])
    response = admin_api.patch("/api/v1/allowances/agent-1", {"model_allowlist": []}, format="json")
    assert (response.status_code, response.json()["model_allowlist"]) == (200, [])
    assert AgentAllowance.objects.get().model_allowlist == []


@pytest.mark.parametrize(
    "allowlist",
    [
        [MODEL, MODEL],
        ["gpt-4.1", MODEL, "gpt-4.1"],
        MODEL,
        {"model": MODEL},
        5,
        None,
        [""],
        ["claude sonnet"],
        ["anthropic/"],
        [5],
        [None],
        [[MODEL]],
    ],
)
def test_a_bad_allowlist_is_400_keyed_by_the_field(admin_api, db, allowlist):
    response = admin_api.post(
        "/api/v1/allowances", {"agent_id": "agent-1", "model_allowlist": allowlist}, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()) == ["model_allowlist"]
    assert AgentAllowance.objects.count() == 0


@pytest.mark.parametrize(
    "allowlist", [[f"model-{n}" for n in range(1001)], ["m" * 201]], ids=["1001 models", "long id"]
)
def test_an_allowlist_too_long_or_with_too_long_an_id_is_400(admin_api, db, allowlist):
    response = admin_api.post(
        "/api/v1/allowances", {"agent_id": "agent-1", "model_allowlist": allowlist}, format="json"
    )
    assert (response.status_code, list(response.json())) == (400, ["model_allowlist"])
    assert AgentAllowance.objects.count() == 0


def test_a_patch_with_a_duplicated_allowlist_changes_nothing(admin_api, make_allowance):
    make_allowance("agent-1", model_allowlist=[MODEL])
    response = admin_api.patch(
        "/api/v1/allowances/agent-1", {"model_allowlist": ["gpt-4.1", "gpt-4.1"]}, format="json"
    )
    assert (response.status_code, list(response.json())) == (400, ["model_allowlist"])
    assert AgentAllowance.objects.get().model_allowlist == [MODEL]


@pytest.mark.parametrize("paused", ["maybe", 2, None, [True]])
def test_paused_must_be_a_boolean(admin_api, db, paused):
    response = admin_api.post(
        "/api/v1/allowances", {"agent_id": "agent-1", "paused": paused}, format="json"
    )
    assert (response.status_code, list(response.json())) == (400, ["paused"])
    assert AgentAllowance.objects.count() == 0


# Prices


@pytest.mark.parametrize("field", ["input_price_per_mtok", "output_price_per_mtok"])
@pytest.mark.parametrize(
    "sent, stored, returned",
    [
        (0, Decimal("0"), 0.0),
        (3, Decimal("3"), 3.0),
        (0.0001, Decimal("0.0001"), 0.0001),
        (15.1234, Decimal("15.1234"), 15.1234),
        ("2.5", Decimal("2.5"), 2.5),
        (99_999_999.9999, Decimal("99999999.9999"), 99_999_999.9999),
    ],
)
def test_a_price_has_at_most_four_decimal_places_and_comes_back_as_a_number(
    admin_api, db, field, sent, stored, returned
):
    response = admin_api.post("/api/v1/model-quotas", {"model": MODEL, field: sent}, format="json")
    assert response.status_code == 201
    assert response.json()[field] == returned
    assert isinstance(response.json()[field], float)
    assert getattr(ModelQuota.objects.get(), field) == stored


@pytest.mark.parametrize("field", ["input_price_per_mtok", "output_price_per_mtok"])
@pytest.mark.parametrize(
    "price", [-0.0001, -3, 1.23456, "0.00001", 100_000_000, "abc", None, True, [3]]
)
def test_a_bad_price_is_400_keyed_by_the_field(admin_api, db, field, price):
    response = admin_api.post("/api/v1/model-quotas", {"model": MODEL, field: price}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert ModelQuota.objects.count() == 0


def test_a_patch_with_a_negative_price_changes_nothing(admin_api, make_model_quota):
    make_model_quota(MODEL, input_price_per_mtok=Decimal("3"))
    response = admin_api.patch(
        f"/api/v1/model-quotas/{MODEL}", {"input_price_per_mtok": -1}, format="json"
    )
    assert (response.status_code, list(response.json())) == (400, ["input_price_per_mtok"])
    assert ModelQuota.objects.get().input_price_per_mtok == Decimal("3")


def test_history_and_the_change_log_name_the_api_key_behind_every_change(admin_api, db):
    from quotas.models import AgentAllowance, APIKey, ChangeLog

    key = APIKey.objects.get(role="admin")
    admin_api.post("/api/v1/allowances", {"agent_id": "bot", "daily_token_limit": 5}, format="json")
    admin_api.patch("/api/v1/allowances/bot", {"daily_token_limit": 9}, format="json")
    admin_api.delete("/api/v1/allowances/bot")
    history = AgentAllowance.history.order_by("history_id")
    actor = f"API key '{key.name}' ({key.prefix})"
    assert list(history.values_list("history_type", "daily_token_limit", "history_actor")) == [
        ("+", 5, actor),
        ("~", 9, actor),
        ("-", 9, actor),
    ]
    log = ChangeLog.objects.order_by("id").values_list("change", "subject", "actor", "summary")
    assert [entry[:3] for entry in log] == [
        ("limit_added", "bot", actor),
        ("limit_changed", "bot", actor),
        ("limit_deleted", "bot", actor),
    ]
    assert log[1][3] == "Daily token limit: 5 → 9"
