"""record_repo_event() and repo_usage_record(): PRs, issues and failure cooldowns."""

from datetime import timedelta

import pytest

from quotas import selectors, services
from quotas.exceptions import InvalidInput
from quotas.models import RepoUsage, UsageEvent


def test_prs_and_issues_are_counted_per_day(make_repo_limit, now):
    make_repo_limit(max_daily_prs=2)
    services.record_repo_event(repo="octo-org/api", kind="pr_opened", agent_id="agent-1", now=now)
    record = services.record_repo_event(repo="octo-org/api", kind="issue_opened", now=now)
    assert (record.repo, record.prs_opened, record.issues_opened, record.cooldown_until) == (
        "octo-org/api",
        1,
        1,
        None,
    )
    tomorrow = selectors.repo_usage_record(repo="octo-org/api", now=now + timedelta(days=1))
    assert (tomorrow.prs_opened, tomorrow.issues_opened) == (0, 0)
    assert list(UsageEvent.objects.order_by("id").values_list("event", "agent_id", "repo")) == [
        ("pr_opened", "agent-1", "octo-org/api"),
        ("issue_opened", "", "octo-org/api"),
    ]


def test_pr_limit_is_reached_through_events(make_allowance, make_repo_limit, now):
    make_allowance()
    make_repo_limit(max_daily_prs=2)
    for _ in range(2):
        services.record_repo_event(repo="octo-org/api", kind="pr_opened", now=now)
    result = services.check(agent_id="agent-1", repo="octo-org/api", action="pr", now=now)
    assert (result.allowed, result.reason) == (False, "daily PR limit reached for: octo-org/api")


def test_a_failure_starts_the_cooldown(make_allowance, make_repo_limit, now):
    make_allowance()
    make_repo_limit(cooldown_after_failure=timedelta(minutes=12))
    record = services.record_repo_event(repo="octo-org/api", kind="failure", now=now)
    assert record.cooldown_until == now + timedelta(minutes=12)
    assert services.check(agent_id="agent-1", repo="octo-org/api", now=now).allowed is False
    later = selectors.repo_usage_record(repo="octo-org/api", now=now + timedelta(minutes=12))
    assert later.cooldown_until is None


def test_events_for_a_repo_without_limits_are_still_counted(db, now):
    record = services.record_repo_event(repo="someone/else", kind="pr_opened", now=now)
    assert (record.prs_opened, record.cooldown_until) == (1, None)
    assert RepoUsage.objects.get().prs_opened == 1


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"repo": "not a repo", "kind": "pr_opened"}, "repo"),
        ({"repo": "octo-org/api", "kind": "merged"}, "kind"),
        ({"repo": "octo-org/api", "kind": "pr_opened", "agent_id": "bad agent"}, "agent_id"),
    ],
)
def test_malformed_repo_events_change_nothing(db, now, args, field):
    with pytest.raises(InvalidInput) as error:
        services.record_repo_event(**args, now=now)
    assert error.value.field == field
    assert (RepoUsage.objects.count(), UsageEvent.objects.count()) == (0, 0)
