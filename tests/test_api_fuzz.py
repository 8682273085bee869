"""Every API operation, fuzzed from the service's own OpenAPI schema.

Schemathesis reads the schema at /api/schema and sends each operation generated requests,
valid and invalid ones, through the WSGI application, with an admin key so that writes are
allowed, against a database holding a few rows. Every answer must be no 5xx, a documented
status code, a documented content type and a body that matches the documented schema.
"""

import base64

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from project.wsgi import application
from quotas import services
from quotas.models import AgentAllowance, APIKey, ModelQuota, RepoLimit

# A fixed seed (and derandomize below): CI sends the same requests every run, and a failure
# replays exactly.
CONFIG = schemathesis.Config.from_dict({"seed": 20260310})
schema = schemathesis.openapi.from_wsgi("/api/schema", application, config=CONFIG)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# Ids of the rows `admin_headers` creates. Generated ids almost never name a row, so generated
# requests often get one of these instead, and lookups and updates find something.
KNOWN_IDS = {
    "agent_id": ["agent-1", "agent-paused", "*"],
    "job_id": ["job-1", "job-2", "job-3"],
    "model": ["anthropic/claude-sonnet"],
    "repo": ["octo-org/api"],
}


def with_known_ids(values):
    """The generated values, each id in them kept or replaced by one that names a row."""
    if not isinstance(values, dict):
        return st.just(values)
    ids = {
        name: st.one_of(st.just(values[name]), st.sampled_from(KNOWN_IDS[name]))
        for name in KNOWN_IDS
        if name in values
    }
    return st.fixed_dictionaries(ids).map(lambda chosen: {**values, **chosen})


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    return with_known_ids(path_parameters)


@schema.hook
def flatmap_body(context, body):
    return with_known_ids(body)


@schema.hook
def flatmap_query(context, query):
    """Random text is almost never a cursor that decodes (base64 of "p=<position>", ASCII);
    half of the generated cursors are made into one."""
    query = query if isinstance(query, dict) else {}
    cursor = query.get("cursor")
    if not isinstance(cursor, str):
        return with_known_ids(query)
    position = base64.b64encode(f"p={cursor}".encode("ascii", "ignore")).decode()
    return st.sampled_from([query, {**query, "cursor": position}]).flatmap(with_known_ids)


@pytest.fixture
def keep_test_transaction():
    """The real WSGI handler closes the connection after each request made inside a
    transaction, taking the test's transaction and its rows along; Django's test client keeps
    it open the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def admin_headers(db, keep_test_transaction):
    """An admin key, and a few rows for the lookups to find: an agent with three jobs running
    (at its concurrency limit), a paused agent, the '*' default, a model quota whose id has a
    '/' and a repository limit."""
    _, key = APIKey.objects.create_key(name="fuzz admin", role="admin")
    AgentAllowance.objects.create(agent_id="agent-1", daily_job_limit=5, concurrent_jobs=3)
    AgentAllowance.objects.create(agent_id="agent-paused", paused=True)
    AgentAllowance.objects.create(agent_id="*", daily_token_limit=100_000)
    ModelQuota.objects.create(model="anthropic/claude-sonnet", input_price_per_mtok=3)
    RepoLimit.objects.create(repo="octo-org/api", max_daily_prs=2)
    for job_id in KNOWN_IDS["job_id"]:
        services.dispatch(
            agent_id="agent-1", job_id=job_id, model="anthropic/claude-sonnet", repo="octo-org/api"
        )
    return {"Authorization": f"Bearer {key}"}


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_every_answer_is_documented_and_no_server_error(case, admin_headers):
    response = case.call(headers=admin_headers)
    case.validate_response(response, checks=CHECKS, headers=admin_headers)
