"""The views validate bodies with one shared serializer per input class (views.parsed); the
answers must be exactly those of a serializer made for each request."""

from datetime import UTC, datetime

import pytest
from rest_framework.exceptions import ValidationError

from quotas.api import serializers as s
from quotas.api import views

BODIES = [
    (s.CheckInput, {"agent_id": "agent-1"}),
    (s.CheckInput, {"agent_id": "agent-1", "model": "openai/gpt-5", "action": "pr"}),
    (s.CheckInput, {"agent_id": "bad id", "model": 7, "action": "merge"}),
    (s.CheckInput, {}),
    (s.CheckInput, None),
    (s.CheckInput, ["agent-1"]),
    (s.DispatchInput, {"agent_id": "agent-1", "job_id": "job-1", "repo": "octo-org/api"}),
    (s.DispatchInput, {"agent_id": "agent-1", "job_id": "", "repo": "not a repo"}),
    (
        s.UsageReportInput,
        {
            "agent_id": "agent-1",
            "job_id": "job-1",
            "event": "job_failed",
            "tokens_in": 4,
            "tokens_out": 3,
            "timestamp": "2026-03-10T12:00:00Z",
        },
    ),
    (s.UsageReportInput, {"agent_id": "a", "job_id": "j", "event": "done", "tokens_in": -1}),
    (
        s.UsageReportInput,
        {"agent_id": "a", "job_id": "j", "event": "job_started", "tokens_in": "9"},
    ),
]


def own_serializer(serializer_class, data):
    serializer = serializer_class(data=data)
    if serializer.is_valid():
        return "valid", dict(serializer.validated_data)
    return "invalid", serializer.errors


def shared_serializer(serializer_class, data):
    try:
        return "valid", dict(views.parsed(serializer_class, data))
    except ValidationError as exc:
        return "invalid", exc.detail


@pytest.mark.parametrize(("serializer_class", "data"), BODIES)
def test_parsing_answers_as_a_serializer_of_its_own(serializer_class, data):
    assert shared_serializer(serializer_class, data) == own_serializer(serializer_class, data)


def test_the_same_body_twice_is_parsed_the_same_and_nothing_leaks_between_bodies():
    first = views.parsed(s.UsageReportInput, BODIES[8][1])
    views.parsed(s.CheckInput, {"agent_id": "other", "model": "m"})
    with pytest.raises(ValidationError):
        views.parsed(s.UsageReportInput, BODIES[9][1])
    again = views.parsed(s.UsageReportInput, BODIES[8][1])
    assert again == first
    assert (again["tokens_in"], again["tokens_out"], again["model"]) == (4, 3, "")
    assert again["timestamp"] == datetime(2026, 3, 10, 12, tzinfo=UTC)


def test_a_valid_body_builds_no_serializer(monkeypatch):
    views.parsed(s.DispatchInput, BODIES[6][1])  # the shared one exists from now on
    built = []
    original = s.DispatchInput.__init__

    def counting(self, *args, **kwargs):
        built.append(kwargs)
        original(self, *args, **kwargs)

    monkeypatch.setattr(s.DispatchInput, "__init__", counting)
    for number in range(3):
        views.parsed(s.DispatchInput, {**BODIES[6][1], "job_id": f"job-{number}"})
    assert built == []
    with pytest.raises(ValidationError):
        views.parsed(s.DispatchInput, BODIES[7][1])
    assert len(built) == 1  # only bad input is worded by a serializer of its own


def test_rendering_matches_a_serializer_of_its_own():
    from quotas.selectors import RepoUsageRecord

    record = RepoUsageRecord(
        "octo-org/api",
        3,
        1,
        datetime(2026, 3, 10, 12, 5, tzinfo=UTC),
        datetime(2026, 3, 10, tzinfo=UTC),
    )
    expected = s.RepoUsageSerializer(record).data
    assert views.rendered(s.RepoUsageSerializer, record) == expected
    assert expected["cooldown_until"] == "2026-03-10T12:05:00Z"


@pytest.mark.parametrize(
    "agent_id",
    ["a" * 201, "bot\x00one", "bot\ud800", "bot one"],
    ids=["too long", "NUL", "surrogate", "space"],
)
def test_a_malformed_id_gets_one_message_saying_what_an_id_may_be(agent_id):
    with pytest.raises(ValidationError) as refused:
        views.parsed(s.CheckInput, {"agent_id": agent_id})
    assert refused.value.detail == {
        "agent_id": ["Use 1 to 200 letters, digits, '.', '_', ':' or '-' for an agent id."]
    }
