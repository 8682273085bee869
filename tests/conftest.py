import os
from datetime import UTC, datetime

import pytest
from django.db import connection

from quotas.models import AgentAllowance, ModelQuota, RepoLimit

# A Tuesday noon, far from midnight and from any DST change, unless a test says otherwise.
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


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
