import os
from datetime import UTC, datetime

import pytest
from django.db import connection, transaction

from quotas import services
from quotas.models import AgentAllowance, ModelQuota, RepoLimit

# A Tuesday noon, far from midnight and from any DST change, unless a test says otherwise.
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def run_job(
    agent_id: str,
    job_id: str,
    *,
    now: datetime | None = None,
    model: str = "",
    repo: str = "",
    event: str = "job_completed",
    tokens_in: int = 0,
    tokens_out: int = 0,
) -> services.UsageResult:
    """Dispatch a job (it must be admitted) and report its end, as a dispatcher would; the
    report's answer. Imported by the test modules: ``from tests.conftest import run_job``."""
    admitted = services.dispatch(agent_id=agent_id, job_id=job_id, model=model, repo=repo, now=now)
    assert admitted.result.allowed, admitted.result.reason
    return services.record_usage(
        agent_id=agent_id,
        job_id=job_id,
        event=event,
        model=model,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        now=now,
    )


def pytest_report_header(config):
    source = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "default"
    return f"database: {connection.vendor} ({source})"


def pytest_collection_modifyitems(config, items):
    """PostgreSQL-only tests skip on SQLite, but in CI on PostgreSQL nothing may skip them."""
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (run with DATABASE_URL=postgres://...)")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def plain_static_files(settings):
    """Production hashes static file names at collectstatic time; tests never run it."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def fresh_cache():
    """Counters of bad API keys live in the cache, valid keys in the workers' memory; each
    test starts with neither."""
    from django.core.cache import cache

    from quotas.api.auth import forget_keys

    cache.clear()
    forget_keys()
    yield
    cache.clear()
    forget_keys()


@pytest.fixture(autouse=True)
def api_planning(django_db_blocker):
    """An admin request leaves its connection planning as the admin wants (quotas.planning);
    the tests share one connection, so each ends by switching it back, as an API request
    would."""
    yield
    from quotas.planning import plan_for

    if connection.vendor == "postgresql" and connection.connection is not None:
        with django_db_blocker.unblock():
            plan_for(connection, admin=False)


@pytest.fixture
def now():
    return NOON


@pytest.fixture
def make_allowance(db):
    def make(agent_id="agent-1", **limits):
        return AgentAllowance.objects.create(agent_id=agent_id, **limits)

    return make


@pytest.fixture
def make_model_quota(db):
    def make(model="claude-sonnet", **limits):
        return ModelQuota.objects.create(model=model, **limits)

    return make


@pytest.fixture
def make_repo_limit(db):
    def make(repo="octo-org/api", **limits):
        return RepoLimit.objects.create(repo=repo, **limits)

    return make


@pytest.fixture
def make_client(db):
    """An API client holding a fresh key of the given role."""
    from rest_framework.test import APIClient

    from quotas.models import APIKey

    def make(role="dispatcher"):
        _, key = APIKey.objects.create_key(name=f"test {role}", role=role)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return client

    return make


@pytest.fixture
def api(make_client):
    """A dispatcher's client."""
    return make_client("dispatcher")


@pytest.fixture
def admin_api(make_client):
    """An administrator's client."""
    return make_client("admin")


@pytest.fixture
def login(client, django_user_model):
    """Log a user of the given role into the admin: 'superuser', 'Budget managers' or 'Viewers'."""
    from django.contrib.auth.models import Group

    def log_in(role="Budget managers"):
        if role == "superuser":
            user = django_user_model.objects.create_superuser("root", password="pw-root-123")
        else:
            user = django_user_model.objects.create_user(
                role.split()[0].lower(), password="pw-123-456", is_staff=True
            )
            user.groups.add(Group.objects.get(name=role))
        client.force_login(user)
        return client

    return log_in


class _Rollback(Exception):
    pass


def in_savepoint(check) -> None:
    """Run ``check()`` in a savepoint that is always rolled back: each example of a property
    test (tests/test_rules_sql.py, tests/test_prepared_contract.py) starts from the test's
    own empty tables."""
    try:
        with transaction.atomic():
            check()
            raise _Rollback
    except _Rollback:
        pass
