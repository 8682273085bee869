"""The admin's pages for looking into things and acting on them: refusals, the change log,
usage since a reset, ending a cooldown, cancelling a job, deleting an allowance, progress bars,
a model's own page; through the Django test client."""

import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from django.utils import timezone

from quotas import display, housekeeping, rules, selectors, services
from quotas.changelog import Actor, record
from quotas.models import (
    AgentAllowance,
    ChangeLog,
    Job,
    ModelQuota,
    RefusalCount,
    RepoLimit,
    UsageEvent,
)
from quotas.periods import quota_zone
from quotas.reconcile import reconcile_usage
from quotas.rules import AgentState, ModelState, RepoState
from quotas.vocabulary import Change, ReasonCode, Subject
from tests.conftest import run_job
from tests.test_admin import cells

AGENTS = "/admin/quotas/agentallowance/"
MODELS = "/admin/quotas/modelquota/"
REPOS = "/admin/quotas/repolimit/"
JOBS = "/admin/quotas/job/"
REFUSALS = "/admin/quotas/refusalcount/"
CHANGES = "/admin/quotas/changelog/"
# A cooldown of 30 minutes after a failure 18.5 minutes ago, as the pages write what is left.
TWELVE_MINUTES = display.minutes_left(timedelta(minutes=11, seconds=30))
CSS = Path(__file__).resolve().parent.parent / "static" / "quotas" / "admin.css"


def text(response) -> str:
    """A page's words as a person reads them: no tags, one space between words."""
    words = re.sub(r"<[^>]+>", " ", response.content.decode())
    return re.sub(r"\s+", " ", html.unescape(words))


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def today_local():
    return timezone.now().astimezone(quota_zone()).date()


def refuse(agent_id, times, *, model="", repo="", now=None):
    for _ in range(times):
        assert not services.check(agent_id=agent_id, model=model, repo=repo, now=now).allowed


def cooling_repo(make_repo_limit, repo="octo-org/api", minutes_ago=18.5):
    make_repo_limit(repo=repo, cooldown_after_failure=timedelta(minutes=30))
    services.record_repo_event(
        repo=repo, kind="failure", now=timezone.now() - timedelta(minutes=minutes_ago)
    )


def cooldown_left(repo="octo-org/api"):
    return selectors.repo_state(repo, now=timezone.now()).cooldown_until(timezone.now())


# Refusals


def test_the_refusals_page_shows_todays_refusals_in_words_by_default(login, make_allowance):
    make_allowance("bot-7", concurrent_jobs=1)
    make_allowance("bot-8", model_allowlist=["m1"])
    services.dispatch(agent_id="bot-7", job_id="long", model="m1", repo="octo-org/api")
    refuse("bot-7", 3, model="m1", repo="octo-org/api")
    refuse("bot-8", 2, model="m2")
    refuse("bot-8", 4, model="m2", now=timezone.now() - timedelta(days=1))
    page = login().get(REFUSALS)
    assert cells(page, "agent") == ["bot-8", "bot-7"]
    assert cells(page, "model_name") == ["m2", "m1"]
    assert cells(page, "repository") == ["—", "octo-org/api"]
    assert cells(page, "reason") == ["model not in allowlist", "concurrent job limit reached"]
    assert cells(page, "refusals") == ["2", "3"]
    last = RefusalCount.objects.get(agent_id="bot-7")  # refused today only
    assert cells(page, "last_refused")[1] == display.moment(last.last_refused_at)
    assert page.context["title"] == "Refusals today"


def test_refusals_filter_by_day_agent_and_reason(login, make_allowance):
    make_allowance("bot-7", paused=True)
    make_allowance("bot-8", model_allowlist=["m1"])
    refuse("bot-7", 1)
    refuse("bot-8", 2, model="m2")
    refuse("bot-8", 5, model="m2", now=timezone.now() - timedelta(days=1))
    client = login()
    yesterday = (today_local() - timedelta(days=1)).isoformat()
    on_yesterday = client.get(f"{REFUSALS}?day={yesterday}")
    assert (cells(on_yesterday, "agent"), cells(on_yesterday, "refusals")) == (["bot-8"], ["5"])
    assert on_yesterday.context["title"] == "Refusals yesterday"
    every_day = client.get(f"{REFUSALS}?day=all")
    assert sorted(cells(every_day, "refusals")) == ["1", "2", "5"]
    assert cells(client.get(f"{REFUSALS}?agent_id=bot-7"), "reason") == ["agent paused"]
    by_reason = client.get(f"{REFUSALS}?reason_code=model_not_allowed&day=all")
    assert cells(by_reason, "refusals") == ["2", "5"]
    assert cells(client.get(f"{REFUSALS}?day=2020-01-01"), "agent") == []


@pytest.mark.parametrize("day", ["2026-02-30", "tomorrow", "9999-12-31", "2026-13-01"])
def test_a_day_that_cannot_be_shown_says_so_and_shows_today(login, make_allowance, day):
    make_allowance("bot-7", paused=True)
    refuse("bot-7", 2)
    refuse("bot-7", 3, now=timezone.now() - timedelta(days=1))
    page = login().get(REFUSALS, {"day": day})
    assert page.status_code == 200
    assert cells(page, "refusals") == ["2"]
    assert messages_of(page) == [
        f"Cannot show the day '{day}': write a day as {today_local().isoformat()}. "
        "Showing today instead."
    ]


def test_the_day_filter_counts_the_rows_of_each_day_when_asked_to(login, make_allowance):
    make_allowance("bot-7", paused=True)
    make_allowance("bot-8", paused=True)
    refuse("bot-7", 4)
    refuse("bot-8", 1)
    refuse("bot-7", 2, now=timezone.now() - timedelta(days=1))
    page = login().get(REFUSALS, {"_facets": "True"})
    assert cells(page, "refusals") == ["1", "4"]
    assert "Today (2) Yesterday (1)" in text(page)


def test_an_unknown_reason_says_so_and_filters_nothing(login, make_allowance):
    make_allowance("bot-7", paused=True)
    refuse("bot-7", 1)
    page = login().get(REFUSALS, {"reason_code": "bored"})
    assert (page.status_code, cells(page, "refusals")) == (200, ["1"])
    assert messages_of(page) == ["'bored' is not a reason; showing every reason."]


def test_refusals_and_the_change_log_are_read_only_even_for_superusers(login, make_allowance):
    make_allowance("bot-7", paused=True)
    refuse("bot-7", 1)
    client = login("superuser")
    refusal, entry = RefusalCount.objects.get(), ChangeLog.objects.first()
    for url, obj in ((REFUSALS, refusal), (CHANGES, entry)):
        assert client.get(f"{url}add/").status_code == 403
        assert client.post(f"{url}{obj.pk}/delete/", {"post": "yes"}).status_code == 403
        assert client.post(f"{url}{obj.pk}/change/", {"refusals": "0"}).status_code == 403
    assert RefusalCount.objects.get().refusals == 1
    assert ChangeLog.objects.filter(pk=entry.pk).exists()


def state_refused_by(code: ReasonCode) -> dict:
    """The arguments of rules.evaluate that make exactly ``code`` refuse."""
    now = timezone.now()
    allowance = {
        ReasonCode.AGENT_PAUSED: {"paused": True},
        ReasonCode.MODEL_NOT_ALLOWED: {"model_allowlist": ["other"]},
        ReasonCode.DAILY_TOKEN_LIMIT: {"daily_token_limit": 1},
        ReasonCode.DAILY_JOB_LIMIT: {"daily_job_limit": 1},
        ReasonCode.CONCURRENT_JOBS: {"concurrent_jobs": 1},
    }.get(code, {})
    quota = {
        ReasonCode.MODEL_TOKEN_BUDGET: {"daily_token_budget": 1},
        ReasonCode.MODEL_RATE_LIMIT: {"hourly_rate_limit": 1},
        ReasonCode.MODEL_COST_CEILING: {"cost_ceiling": 1},
    }.get(code, {})
    limit = {
        ReasonCode.REPO_COOLDOWN: {"cooldown_after_failure": timedelta(hours=1)},
        ReasonCode.REPO_PR_LIMIT: {"max_daily_prs": 1},
        ReasonCode.REPO_ISSUE_LIMIT: {"max_daily_issues": 1},
    }.get(code, {})
    action = {ReasonCode.REPO_PR_LIMIT: "pr", ReasonCode.REPO_ISSUE_LIMIT: "issue"}
    return {
        "agent": AgentState(AgentAllowance(agent_id="a", **allowance), 1, 1, 1, now),
        "model_name": "m",
        "model": ModelState(ModelQuota(model="m", **quota), 1, 1_000_000, 1, now),
        "repo_name": "o/r",
        "repo": RepoState(RepoLimit(repo="o/r", **limit), 1, 1, now),
        "action": action.get(code, ""),
        "now": now,
    }


@pytest.mark.parametrize("code", list(ReasonCode))
def test_each_reason_in_words_is_what_the_rule_tells_the_dispatcher(code):
    result = rules.evaluate(**state_refused_by(code))
    assert result.reason_code == code
    # The rule names the model or repository ("... for: m"); the list has columns for those.
    assert re.sub(r"( for)?: .*$", "", result.reason) == ReasonCode(code).label


def test_an_agents_page_shows_its_refusals_today(login, make_allowance):
    allowance = make_allowance("bot-7", concurrent_jobs=1)
    services.dispatch(agent_id="bot-7", job_id="long", model="m1")
    refuse("bot-7", 3, model="m1")
    refuse("bot-7", 9, model="m1", now=timezone.now() - timedelta(days=1))
    page = text(login().get(f"{AGENTS}{allowance.pk}/change/"))
    assert "concurrent job limit reached m1 — 3 " in page
    assert " 9 " not in page
    assert "Every refusal of bot-7, by day" in page
    quiet = make_allowance("quiet")
    assert "No refusals today." in text(login("Viewers").get(f"{AGENTS}{quiet.pk}/change/"))


def test_an_agent_refused_all_day_shows_its_last_refusal_as_last_activity(login, make_allowance):
    make_allowance("bot-7", model_allowlist=["m1"])
    make_allowance("idle")
    refuse("bot-7", 8, model="m2")
    page = login().get(f"{AGENTS}?o=1")
    last = RefusalCount.objects.get().last_refused_at
    assert cells(page, "agent_id") == ["bot-7", "idle"]
    assert cells(page, "status") == ["OK", "OK"]
    assert cells(page, "last_activity") == [display.moment(last), "never"]


def test_last_activity_is_the_later_of_usage_and_refusal(login, make_allowance, now):
    make_allowance("bot-7", model_allowlist=["m1"])
    refuse("bot-7", 1, model="m2", now=now - timedelta(days=2))
    run_job("bot-7", "j1", model="m1", tokens_in=5)
    page = login().get(AGENTS)
    usage = selectors.allowances_for_people(timezone.now()).get().last_activity_at
    assert usage > now - timedelta(days=2)
    assert cells(page, "last_activity") == [display.moment(usage)]


# The change log


def test_the_change_log_lists_every_change_and_action_newest_first(
    login, make_allowance, make_repo_limit
):
    client = login()
    client.post(
        f"{AGENTS}add/",
        {
            "agent_id": "bot-7",
            "daily_token_limit": "1000",
            "daily_job_limit": "0",
            "concurrent_jobs": "0",
            "max_job_duration": "0",
        },
    )
    services.set_paused(agent_ids=["bot-7"], paused=True, actor=Actor("alice"), reason="loop")
    cooling_repo(make_repo_limit)
    services.end_cooldown(repo="octo-org/api", actor=Actor("carol"), reason="fixed CI")
    page = client.get(CHANGES)
    assert cells(page, "what") == ["cooldown ended", "limit added", "agent paused", "limit added"]
    assert cells(page, "who") == ["carol", "quotas", "alice", "budget"]
    assert cells(page, "about") == [
        "repository octo-org/api",
        "repository octo-org/api",
        "agent bot-7",
        "agent bot-7",
    ]
    assert cells(page, "reason") == ["fixed CI", "—", "loop", "—"]
    assert cells(page, "summary")[0] == f"cooldown ended {TWELVE_MINUTES} early"
    assert cells(page, "summary")[3].startswith("added: Daily token limit 1,000")
    assert page.context["title"] == "Change log of every day"


def test_the_change_log_filters_by_who_what_and_day_and_searches_subjects(login, db):
    now = timezone.now()
    entries = [
        ("alice", Change.PAUSED, "bot-7", now),
        ("bob", Change.USAGE_RESET, "bot-7", now),
        ("alice", Change.USAGE_RESET, "bot-8", now - timedelta(days=3)),
    ]
    for actor, change, subject, at in entries:
        record(
            change=change,
            subject_kind=Subject.AGENT,
            subject=subject,
            summary=str(change.label),
            actor=Actor(actor),
            at=at,
        )
    client = login()
    assert cells(client.get(f"{CHANGES}?actor=alice"), "about") == ["agent bot-7", "agent bot-8"]
    resets = client.get(f"{CHANGES}?change__exact=usage_reset")
    assert cells(resets, "who") == ["bob", "alice"]
    three_days_ago = (today_local() - timedelta(days=3)).isoformat()
    on_that_day = client.get(f"{CHANGES}?day={three_days_ago}")
    assert cells(on_that_day, "about") == ["agent bot-8"]
    assert on_that_day.context["title"].startswith("Change log on ")
    assert cells(client.get(f"{CHANGES}?q=bot-8"), "who") == ["alice"]
    assert len(cells(client.get(f"{CHANGES}?day=not-a-day"), "who")) == 3


@pytest.mark.parametrize("role", ["superuser", "Budget managers", "Viewers"])
def test_every_role_reads_the_change_log_and_refusals_from_the_home_page(
    login, make_allowance, role
):
    make_allowance("bot-7", paused=True)
    refuse("bot-7", 1)
    client = login(role)
    home = client.get("/admin/").content.decode()
    assert f'href="{CHANGES}"' in home and f'href="{REFUSALS}"' in home
    assert cells(client.get(CHANGES), "what") == ["limit added"]
    assert cells(client.get(REFUSALS), "reason") == ["agent paused"]


# Usage since a reset


def test_the_agent_page_counts_usage_since_todays_reset_and_says_who_reset_it(
    login, make_allowance, settings
):
    settings.QUOTAS_TIME_ZONE = "Europe/Berlin"
    allowance = make_allowance("bot-7", daily_token_limit=10_000, daily_job_limit=20)
    client = login()
    with time_machine.travel(datetime(2026, 3, 10, 9, 0, tzinfo=UTC), tick=False):
        run_job("bot-7", "before", tokens_in=3_000)
    with time_machine.travel(datetime(2026, 3, 10, 13, 2, tzinfo=UTC), tick=False):
        housekeeping.reset_usage(agent_id="bot-7", actor=Actor("alice"), reason="new budget")
    with time_machine.travel(datetime(2026, 3, 10, 15, 0, tzinfo=UTC), tick=False):
        run_job("bot-7", "after", tokens_in=1_200)
        page = text(client.get(f"{AGENTS}{allowance.pk}/change/"))
        assert "tokens 1,200 of 10,000 (12 %) since the reset at 14:02 CET by alice" in page
        assert "jobs started 1 of 20 since the reset" in page
        assert "in all today: 4,200 tokens in 2 jobs, costing $0.00" in page
    with time_machine.travel(datetime(2026, 3, 11, 9, 0, tzinfo=UTC), tick=False):
        page = text(client.get(f"{AGENTS}{allowance.pk}/change/"))
        assert "tokens 0 of 10,000 (0 %) jobs started 0 of 20 running" in page
        assert "since the reset" not in page


# Ending a cooldown early


def test_ending_a_cooldown_from_its_page_asks_first_then_ends_it_and_logs_who(
    login, make_repo_limit
):
    cooling_repo(make_repo_limit)
    limit = RepoLimit.objects.get()
    client = login()
    page = client.get(f"{REPOS}{limit.pk}/change/")
    assert f"cooling down, {TWELVE_MINUTES} left" in text(page)
    end_url = f"{REPOS}{limit.pk}/end-cooldown/"
    assert f'href="{end_url}"' in page.content.decode()
    asked = client.get(end_url)
    assert f"End the cooldown of octo-org/api now, cooling down, {TWELVE_MINUTES} left?" in text(
        asked
    )
    assert cooldown_left() is not None
    done = client.post(end_url, {"confirmed": "yes", "reason": "flaky CI fixed"}, follow=True)
    assert messages_of(done) == ["Ended the cooldown of octo-org/api: jobs may start on it again."]
    assert cooldown_left() is None
    assert "not cooling down" in text(done)
    assert f'href="{end_url}"' not in done.content.decode()
    entry = ChangeLog.objects.get(change=Change.COOLDOWN_ENDED)
    assert (entry.actor, entry.reason, entry.subject) == (
        "budget",
        "flaky CI fixed",
        "octo-org/api",
    )
    assert cells(client.get(REPOS), "cooldown") == ["—"]


def test_the_end_cooldown_button_is_only_offered_while_cooling_down_and_to_managers(
    login, make_repo_limit
):
    make_repo_limit(repo="octo-org/web", cooldown_after_failure=timedelta(minutes=30))
    cooling_repo(make_repo_limit)
    idle = RepoLimit.objects.get(repo="octo-org/web")
    cooling = RepoLimit.objects.get(repo="octo-org/api")
    manager = login()
    assert "end-cooldown" not in manager.get(f"{REPOS}{idle.pk}/change/").content.decode()
    refused = manager.post(f"{REPOS}{idle.pk}/end-cooldown/", {"confirmed": "yes"}, follow=True)
    assert messages_of(refused) == ["octo-org/web is not cooling down: nothing to end."]
    viewer = login("Viewers")
    assert "end-cooldown" not in viewer.get(f"{REPOS}{cooling.pk}/change/").content.decode()
    assert viewer.get(f"{REPOS}{cooling.pk}/end-cooldown/").status_code == 403
    denied = viewer.post(f"{REPOS}{cooling.pk}/end-cooldown/", {"confirmed": "yes"})
    assert denied.status_code == 403
    assert cooldown_left() is not None
    assert ChangeLog.objects.filter(change=Change.COOLDOWN_ENDED).count() == 0


def test_ending_cooldowns_from_the_list_says_which_were_not_cooling_down(login, make_repo_limit):
    make_repo_limit(repo="octo-org/web")
    cooling_repo(make_repo_limit)
    client = login()
    selected = [str(pk) for pk in RepoLimit.objects.values_list("pk", flat=True)]
    chosen = {"action": "end_cooldowns", "_selected_action": selected}
    asked = client.post(REPOS, chosen)
    assert "End the cooldown of these repositories now?" in text(asked)
    assert cooldown_left() is not None
    done = client.post(REPOS, {**chosen, "confirmed": "yes"}, follow=True)
    assert messages_of(done) == [
        "Ended the cooldown of octo-org/api. Not cooling down: octo-org/web."
    ]
    assert cooldown_left() is None


@pytest.mark.parametrize("url", ["999/end-cooldown/", "not-a-number/end-cooldown/"])
def test_ending_the_cooldown_of_a_repository_that_does_not_exist_says_so(login, db, url):
    response = login().get(f"{REPOS}{url}", follow=True)
    assert response.status_code == 200
    assert "doesn\u2019t exist" in messages_of(response)[0]


# Cancelling a running job


def test_cancelling_a_running_job_from_its_page_frees_its_slot_and_charges_nothing(
    login, make_allowance
):
    make_allowance("bot-7", concurrent_jobs=1)
    services.dispatch(agent_id="bot-7", job_id="stuck", model="m1")
    assert services.check(agent_id="bot-7").reason == "concurrent job limit reached"
    job = Job.objects.get()
    client = login()
    cancel_url = f"{JOBS}{job.pk}/cancel/"
    assert f'href="{cancel_url}"' in client.get(f"{JOBS}{job.pk}/change/").content.decode()
    asked = client.get(cancel_url)
    assert "Cancel the job stuck of bot-7?" in text(asked)
    assert Job.objects.get().state == "running"
    done = client.post(cancel_url, {"confirmed": "yes", "reason": "hung on I/O"}, follow=True)
    assert messages_of(done) == [
        "Cancelled the job stuck of bot-7: nothing charged, its slot is free."
    ]
    job.refresh_from_db()
    assert (job.state, job.tokens_charged, job.cost_charged_microcents) == ("cancelled", 0, 0)
    assert services.check(agent_id="bot-7").allowed
    assert UsageEvent.objects.filter(event="job_cancelled", job_id="stuck").count() == 1
    entry = ChangeLog.objects.get(change=Change.JOB_CANCELLED)
    assert (entry.subject, entry.actor, entry.reason) == ("bot-7/stuck", "budget", "hung on I/O")
    assert f'href="{cancel_url}"' not in done.content.decode()
    assert reconcile_usage() == []  # the books agree


def test_cancelling_from_the_jobs_list_leaves_jobs_that_are_not_running(login, make_allowance):
    make_allowance("bot-7")
    services.dispatch(agent_id="bot-7", job_id="running")
    run_job("bot-7", "finished", tokens_in=10)
    client = login()
    selected = [str(pk) for pk in Job.objects.values_list("pk", flat=True)]
    chosen = {"action": "cancel_jobs", "_selected_action": selected}
    assert "Cancel these jobs?" in text(client.post(JOBS, chosen))
    done = client.post(JOBS, {**chosen, "confirmed": "yes"}, follow=True)
    assert messages_of(done) == [
        "Cancelled 1 job: nothing charged, slots free. Not running, so left as they are: "
        "bot-7/finished (completed)."
    ]
    assert dict(Job.objects.values_list("job_id", "state")) == {
        "running": "cancelled",
        "finished": "completed",
    }
    assert Job.objects.get(job_id="finished").tokens_charged == 10


def test_viewers_cannot_cancel_a_job(login, make_allowance):
    make_allowance("bot-7")
    services.dispatch(agent_id="bot-7", job_id="running")
    job = Job.objects.get()
    viewer = login("Viewers")
    assert "/cancel/" not in viewer.get(f"{JOBS}{job.pk}/change/").content.decode()
    assert 'name="action"' not in viewer.get(JOBS).content.decode()
    assert viewer.get(f"{JOBS}{job.pk}/cancel/").status_code == 403
    assert viewer.post(f"{JOBS}{job.pk}/cancel/", {"confirmed": "yes"}).status_code == 403
    viewer.post(JOBS, {"action": "cancel_jobs", "_selected_action": [job.pk], "confirmed": "yes"})
    assert Job.objects.get().state == "running"
    assert not ChangeLog.objects.filter(change=Change.JOB_CANCELLED).exists()


def test_a_finished_job_offers_no_cancel_and_its_address_says_why(login, make_allowance):
    make_allowance("bot-7")
    run_job("bot-7", "done", tokens_in=5)
    job = Job.objects.get()
    client = login("superuser")
    assert "/cancel/" not in client.get(f"{JOBS}{job.pk}/change/").content.decode()
    response = client.post(f"{JOBS}{job.pk}/cancel/", {"confirmed": "yes"}, follow=True)
    assert messages_of(response) == ["The job is completed, not running: nothing to cancel."]
    assert Job.objects.get().state == "completed"


# Deleting an allowance


def test_deleting_an_agent_while_a_default_exists_says_it_comes_back_from_the_default(
    login, make_allowance
):
    make_allowance("*", daily_token_limit=500)
    allowance = make_allowance("bot-7", daily_token_limit=99)
    client = login()
    page = text(client.get(f"{AGENTS}{allowance.pk}/delete/"))
    assert (
        "bot-7 will come back on its next request, with a copy of the default allowance '*'" in page
    )
    bulk = client.post(AGENTS, {"action": "delete_selected", "_selected_action": [allowance.pk]})
    assert "bot-7 will come back on its next request" in text(bulk)
    client.post(f"{AGENTS}{allowance.pk}/delete/", {"post": "yes"})
    assert services.check(agent_id="bot-7").allowed  # as the page said
    assert AgentAllowance.objects.get(agent_id="bot-7").daily_token_limit == 500


def test_deleting_the_default_says_unknown_agents_will_then_be_refused(login, make_allowance):
    default = make_allowance("*")
    alone = make_allowance("bot-7")
    client = login()
    page = text(client.get(f"{AGENTS}{default.pk}/delete/"))
    assert "Without the default allowance '*', agents that have no allowance of their own " in page
    both = client.post(
        AGENTS, {"action": "delete_selected", "_selected_action": [default.pk, alone.pk]}
    )
    assert "bot-7 will then be refused ('allowance not found for agent: …')" in text(both)
    default.delete()
    assert "bot-7 will then be refused" in text(client.get(f"{AGENTS}{alone.pk}/delete/"))


# Progress bars


@pytest.mark.parametrize(
    ("used", "level", "share"),
    [
        (0, "ok", "0"),
        (79, "ok", "79"),
        (80, "warning", "80"),
        (99, "warning", "99"),
        (100, "exceeded", "100"),
        (104, "exceeded", "104"),
    ],
)
def test_a_bar_is_green_below_the_warning_ratio_amber_from_it_and_red_at_the_limit(
    used, level, share
):
    drawn = str(display.bar(used, 100, f"{used} of 100"))
    assert f'class="quota-bar quota-bar-{level}" value="{min(used, 100)}" max="100"' in drawn
    assert drawn.endswith(f"</progress> {used} of 100 ({share} %)")


def test_a_bar_follows_the_warning_ratio_setting_and_is_absent_for_unlimited(settings):
    settings.QUOTAS_WARNING_RATIO = 0.5
    assert "quota-bar-warning" in display.bar(50, 100, "")
    assert "quota-bar-ok" in display.bar(49, 100, "")
    assert display.bar(5_000, 0, "5,000 of unlimited") == "5,000 of unlimited"


def test_an_agent_over_its_limit_reads_over_100_percent_in_red(login, make_allowance):
    make_allowance("bot-7", daily_token_limit=250_000)
    run_job("bot-7", "big", tokens_in=260_000)
    page = login().get(AGENTS)
    assert cells(page, "tokens_today") == ["260,000 of 250,000 (104 %)"]
    assert (
        'class="quota-bar quota-bar-exceeded" value="250000" max="250000"' in page.content.decode()
    )


def contrast_with_white(colour: str) -> float:
    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    luminance = 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
    return 1.05 / (luminance + 0.05)


def test_every_bar_colour_has_3_to_1_contrast_against_white():
    fills = dict(
        re.findall(r"\.quota-bar-(\w+) \{ --quota-bar-fill: (#[0-9a-f]{6}); \}", CSS.read_text())
    )
    assert set(fills) == {"ok", "warning", "exceeded"}
    assert {
        level: contrast_with_white(fill) >= 3 for level, fill in fills.items()
    } == dict.fromkeys(fills, True)


# A model's page, the agents' spend


def test_a_models_page_shows_todays_tokens_requests_and_spend_against_its_limits(
    login, make_allowance, make_model_quota
):
    quota = make_model_quota(
        model="m1",
        daily_token_budget=1_000_000,
        hourly_rate_limit=10,
        cost_ceiling=250,
        input_price_per_mtok=3,
    )
    make_allowance("bot-7")
    run_job("bot-7", "j1", model="m1", tokens_in=900_000)
    response = login("Viewers").get(f"{MODELS}{quota.pk}/change/")
    page = text(response)
    assert "Exceeded tokens 900,000 of 1,000,000 (90 %)" in page
    assert "requests in the last hour 1 of 10 (10 %)" in page
    assert "spent $2.70 of $2.50 (108 %)" in page
    levels = re.findall(r"quota-bar-(\w+)", response.content.decode())
    assert levels == ["warning", "ok", "exceeded"]


def test_the_agent_list_shows_todays_spend_in_dollars_and_sorts_by_it(
    login, make_allowance, make_model_quota
):
    make_model_quota(model="m1", input_price_per_mtok=3)
    for agent_id, tokens in (("cheap", 1_000_000), ("dear", 5_000_000), ("none", 0)):
        make_allowance(agent_id)
        if tokens:
            run_job(agent_id, "j", model="m1", tokens_in=tokens)
    run_job(
        "dear", "yesterday", model="m1", tokens_in=1_000_000, now=timezone.now() - timedelta(days=1)
    )
    page = login().get(f"{AGENTS}?o=-4")  # the fourth column: spend today, most first
    assert cells(page, "agent_id") == ["dear", "cheap", "none"]
    assert cells(page, "spend_today") == ["$15.00", "$3.00", "$0.00"]


# Actions below the list too


@pytest.mark.parametrize("url", [AGENTS, MODELS, REPOS, JOBS])
def test_lists_with_actions_offer_them_above_and_below_the_list(
    login, make_allowance, make_model_quota, make_repo_limit, url
):
    make_allowance("bot-7")
    make_model_quota()
    make_repo_limit()
    services.dispatch(agent_id="bot-7", job_id="j1")
    page = login("superuser").get(url).content.decode()
    assert page.count('<select name="action"') == 2


def test_a_jobs_and_an_events_pages_read_in_words_and_dollars(
    login, make_allowance, make_model_quota, now
):
    make_allowance("bot-7", daily_token_limit=10_000)
    make_model_quota("m", input_price_per_mtok=3)
    run_job("bot-7", "j1", model="m", tokens_in=150_000)  # $0.45
    client = login("Viewers")
    job = Job.objects.get()
    page = client.get(f"/admin/quotas/job/{job.pk}/change/").content.decode()
    assert "$0.45" in page and "150,000" in page
    assert "allowed (OK): 10,000 tokens and unlimited jobs left today" in page
    assert "450,000,000" not in page and "remaining_tokens" not in page
    event = UsageEvent.objects.get(event="job_completed")
    page = client.get(f"/admin/quotas/usageevent/{event.pk}/change/").content.decode()
    assert "Tokens counted against the limit" in page and "$0.45" in page
    assert "450,000,000" not in page
