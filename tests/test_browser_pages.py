"""Looking into refusals and the change log, and acting on one thing (a cooldown, a job, an
allowance), in a real browser: a budget manager clicks, types and reads, as in
tests/test_browser.py."""

import importlib
import re
import struct
import zlib
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.utils import timezone
from playwright.sync_api import expect

from quotas import display, services
from quotas.changelog import Actor
from quotas.models import ChangeLog, Job, RepoLimit
from quotas.periods import quota_zone
from tests import test_browser
from tests.conftest import run_job
from tests.test_browser import (
    NARROW,
    OVERFLOW_TOLERANCE,
    OVERFLOWING_ELEMENTS_JS,
    PASSWORD,
    SCREENSHOTS,
    USERNAME,
    WIDE,
    open_at,
)

# The browser, a fresh tab on the live server, and a logged-in tab (as the manager below).
browser, page, logged_in = test_browser.browser, test_browser.page, test_browser.logged_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROLES = importlib.import_module("quotas.migrations.0004_roles")
CHANGE_LOG_ROLES = importlib.import_module("quotas.migrations.0009_change_log_for_both_roles")
BUDGET_MANAGERS = [*ROLES.BUDGET_MANAGERS, *CHANGE_LOG_ROLES.GRANTED["Budget managers"]]

AGENTS = "/admin/quotas/agentallowance/"
MODELS = "/admin/quotas/modelquota/"
REPOS = "/admin/quotas/repolimit/"
JOBS = "/admin/quotas/job/"
REFUSALS = "/admin/quotas/refusalcount/"
CHANGES = "/admin/quotas/changelog/"

# A cooldown of 30 minutes after a failure 18.5 minutes ago, as the pages write what is left.
TWELVE_MINUTES = display.minutes_left(timedelta(minutes=11, seconds=30))
# The bars' fills in admin.css, as the screen shows them.
GREEN, AMBER, RED = (46, 125, 50), (199, 119, 0), (198, 40, 40)


@pytest.fixture
def manager(django_user_model, settings):
    """A budget manager as migrations 0004 and 0009 make the role (the change log too), who
    logs in like a person. Tests with real transactions flush the migrations' groups, so the
    group is made again here when it is gone."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    group, _ = Group.objects.get_or_create(name="Budget managers")
    group.permissions.set(
        Permission.objects.filter(content_type__app_label="quotas", codename__in=BUDGET_MANAGERS)
    )
    user = django_user_model.objects.create_user(USERNAME, password=PASSWORD, is_staff=True)
    user.groups.add(group)
    return user


def act_below_the_list(tab, rows, action):
    """Tick rows, pick an action in the bar below the list (a long list need not be scrolled
    back up) and press its Go; the page that asks to confirm opens."""
    for row in rows:
        tab.get_by_role("row").filter(has_text=row).get_by_role("checkbox").check()
    tab.locator("select[name=action]").last.select_option(label=action)
    tab.get_by_role("button", name="Go").last.click()
    expect(tab.get_by_role("button", name=re.compile(r"^Yes, "))).to_be_visible()


def confirm(tab, label, reason=""):
    """Give a reason, if any, and confirm; the page the action leads back to opens."""
    if reason:
        tab.get_by_label("Reason").fill(reason)
    tab.get_by_role("button", name=label).click()
    expect(tab.locator(".messagelist")).to_be_visible()


def column(tab, field):
    """The text of each cell of one column of the change list, top to bottom."""
    cells = tab.locator(f"#result_list td.field-{field}")
    return [cell.strip() for cell in cells.all_inner_texts()]


def heading(tab, name):
    expect(tab.get_by_role("heading", name=name, exact=True)).to_be_visible()


def go(tab, link, *, within=None, url=None):
    """Click a link (in ``within``, if given) and wait for the page it opens."""
    (within or tab).get_by_role("link", name=link, exact=True).first.click()
    if url:
        tab.wait_for_url(url)
    tab.wait_for_load_state()


def success(tab):
    return tab.locator(".messagelist .success").inner_text()


def refuse(agent_id, times, *, model="", repo="", now=None):
    for _ in range(times):
        assert not services.check(agent_id=agent_id, model=model, repo=repo, now=now).allowed


def pixel(tab, x, y):
    """The colour the screen shows at (x, y), from a one-pixel screenshot: its PNG holds one
    scanline, whose filter (none, sub, up, average or Paeth) leaves a lone pixel as it is."""
    png = tab.screenshot(clip={"x": x, "y": y, "width": 1, "height": 1})
    chunks, at = {}, 8
    while at < len(png):
        length, kind = struct.unpack(">I4s", png[at : at + 8])
        chunks[kind] = chunks.get(kind, b"") + png[at + 8 : at + 8 + length]
        at += 12 + length
    assert chunks[b"IHDR"][8:10] in (b"\x08\x02", b"\x08\x06")  # 8-bit RGB or RGBA
    return tuple(zlib.decompress(chunks[b"IDAT"])[1:4])


def bar_colour(tab, row_text):
    """The colour in the middle of the filled part of the bar in the row of ``row_text``."""
    bar = tab.get_by_role("row").filter(has_text=row_text).locator("progress.quota-bar")
    box = bar.bounding_box()
    share = bar.evaluate("(bar) => bar.value / bar.max")
    x = box["x"] + 2 + (box["width"] - 4) * share / 2
    return pixel(tab, x, box["y"] + box["height"] / 2)


def close_to(colour, expected, tolerance=12):
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected, strict=True))


# Refusals


def test_a_manager_finds_why_an_agent_was_refused_today_and_yesterday(logged_in, make_allowance):
    tab = logged_in
    make_allowance("bot-7", model_allowlist=["m1"])
    refuse("bot-7", 3, model="m2")
    refuse("bot-7", 5, model="m2", repo="octo-org/api", now=timezone.now() - timedelta(days=1))
    go(tab, "Refusal counts", url=re.compile(r"/refusalcount/$"))
    heading(tab, "Refusals today")
    assert column(tab, "reason") == ["model not in allowlist"]
    assert (column(tab, "refusals"), column(tab, "repository")) == (["3"], ["—"])

    go(tab, "Yesterday", within=tab.locator("#changelist-filter"), url=re.compile(r"day="))
    heading(tab, "Refusals yesterday")
    assert (column(tab, "refusals"), column(tab, "repository")) == (["5"], ["octo-org/api"])

    box = tab.get_by_role("textbox", name="agent")
    box.fill("bot-8")
    box.press("Enter")
    tab.wait_for_url(re.compile(r"agent_id=bot-8"))
    assert column(tab, "agent") == []
    go(tab, "Every day", within=tab.locator("#changelist-filter"), url=re.compile(r"day=all"))
    box.fill("bot-7")
    box.press("Enter")
    tab.wait_for_url(re.compile(r"agent_id=bot-7"))
    heading(tab, "Refusals of every day")
    assert column(tab, "refusals") == ["3", "5"]

    go(tab, "bot-7", within=tab.locator("#result_list"), url=re.compile(r"/change/$"))
    today = tab.locator(".field-refusals_today tbody tr")
    assert today.count() == 1
    assert today.locator("td").all_inner_texts()[:4] == ["model not in allowlist", "m2", "—", "3"]


def test_an_agent_refused_all_day_shows_when_it_was_last_refused(logged_in, make_allowance):
    tab = logged_in
    make_allowance("bot-7", model_allowlist=["m1"])
    refuse("bot-7", 8, model="m2")
    tab.goto(AGENTS)
    row = tab.get_by_role("row").filter(has_text="bot-7")
    assert row.locator(".quota-badge").inner_text() == "OK"
    assert row.locator(".field-last_activity").inner_text().strip() != "never"


# The change log


def test_a_manager_pauses_an_agent_below_the_list_and_reads_it_in_the_change_log(
    logged_in, make_allowance
):
    tab = logged_in
    make_allowance("bot-7")
    make_allowance("bot-8")
    tab.goto(AGENTS)
    act_below_the_list(tab, ["bot-7"], "Pause the selected agents")
    confirm(tab, "Yes, pause them", reason="runaway loop")
    assert tab.locator(".messagelist li").first.inner_text().startswith("Paused 1 agent")

    tab.goto("/admin/")
    go(tab, "Change log", url=re.compile(r"/changelog/$"))
    heading(tab, "Change log of every day")
    newest = tab.locator("#result_list tbody tr").first
    fields = ("who", "what", "about", "reason")
    assert [newest.locator(f".field-{field}").inner_text().strip() for field in fields] == [
        USERNAME,
        "agent paused",
        "agent bot-7",
        "runaway loop",
    ]
    filters = tab.locator("#changelist-filter")
    go(tab, "usage reset", within=filters, url=re.compile(r"change__exact=usage_reset"))
    assert column(tab, "what") == []
    go(tab, "agent paused", within=filters, url=re.compile(r"change__exact=paused"))
    assert column(tab, "about") == ["agent bot-7"]


# Usage since a reset


def test_after_a_reset_the_agents_page_counts_since_it_and_names_who_did_it(
    logged_in, make_allowance
):
    tab = logged_in
    make_allowance("bot-7", daily_token_limit=10_000)
    make_allowance("bot-8")
    run_job("bot-7", "before", tokens_in=3_000)
    tab.goto(AGENTS)
    act_below_the_list(tab, ["bot-7"], "Reset today's usage of the selected agents")
    confirm(tab, "Yes, reset today's usage", reason="new budget")
    run_job("bot-7", "after", tokens_in=1_200)
    go(tab, "bot-7", url=re.compile(r"/change/$"))
    usage = tab.locator(".field-usage_today").inner_text()
    reset_at = ChangeLog.objects.get(change="usage_reset").at.astimezone(quota_zone())
    since = f"since the reset at {reset_at:%H:%M %Z} by {USERNAME}"
    assert f"tokens 1,200 of 10,000 (12 %) {since}" in usage
    assert "in all today: 4,200 tokens in 2 jobs" in usage


# Ending a cooldown, cancelling a job, deleting an allowance


def test_a_manager_ends_a_cooldown_from_the_repositorys_page(logged_in, make_repo_limit):
    tab = logged_in
    make_repo_limit(repo="octo-org/api", cooldown_after_failure=timedelta(minutes=30))
    services.record_repo_event(
        repo="octo-org/api", kind="failure", now=timezone.now() - timedelta(minutes=18, seconds=30)
    )
    cooling = f"cooling down, {TWELVE_MINUTES} left"
    tab.goto(REPOS)
    assert column(tab, "cooldown") == [cooling]
    go(tab, "octo-org/api", url=re.compile(r"/change/$"))
    assert tab.locator(".field-cooldown_now .readonly").inner_text() == cooling
    go(tab, "End the cooldown now", url=re.compile(r"/end-cooldown/$"))
    expect(tab.get_by_text("End the cooldown of octo-org/api now")).to_be_visible()
    confirm(tab, "Yes, end the cooldown", reason="flaky CI fixed")

    assert success(tab) == "Ended the cooldown of octo-org/api: jobs may start on it again."
    assert tab.locator(".field-cooldown_now .readonly").inner_text() == "not cooling down"
    assert tab.get_by_role("link", name="End the cooldown now").count() == 0
    assert RepoLimit.objects.get().cooldown_ended_at is not None
    tab.goto(REPOS)
    assert column(tab, "cooldown") == ["—"]


def test_a_manager_cancels_a_stuck_job_from_its_page(logged_in, make_allowance):
    tab = logged_in
    make_allowance("bot-7", concurrent_jobs=1)
    services.dispatch(agent_id="bot-7", job_id="stuck", model="m1")
    assert services.check(agent_id="bot-7").reason == "concurrent job limit reached"
    tab.goto(JOBS)
    go(tab, "stuck", url=re.compile(r"/change/$"))
    go(tab, "Cancel this job", url=re.compile(r"/cancel/$"))
    expect(tab.get_by_text("Cancel the job stuck of bot-7?")).to_be_visible()
    confirm(tab, "Yes, cancel the job", reason="hung on I/O")

    assert success(tab) == "Cancelled the job stuck of bot-7: nothing charged, its slot is free."
    assert tab.locator(".field-state .readonly").inner_text().lower() == "cancelled"
    assert tab.get_by_role("link", name="Cancel this job").count() == 0
    assert (Job.objects.get().state, services.check(agent_id="bot-7").allowed) == (
        "cancelled",
        True,
    )


def test_deleting_an_agent_warns_that_the_default_brings_it_back(logged_in, make_allowance):
    tab = logged_in
    make_allowance("*", daily_token_limit=500)
    make_allowance("bot-7")
    tab.goto(AGENTS)
    go(tab, "bot-7", url=re.compile(r"/change/$"))
    go(tab, "Delete", url=re.compile(r"/delete/$"))
    note = tab.locator(".quota-note").inner_text()
    assert note.startswith("bot-7 will come back on its next request, with a copy of the default")
    go(tab, "No, take me back", url=re.compile(r"/change/$"))


# Bars and pages


def test_bars_read_green_amber_and_red_with_the_share_beside_them(logged_in, make_allowance):
    tab = logged_in
    for agent_id, tokens in (("calm", 100_000), ("near", 212_500), ("over", 260_000)):
        make_allowance(agent_id, daily_token_limit=250_000)
        run_job(agent_id, "j", tokens_in=tokens)
    tab.goto(AGENTS)
    assert column(tab, "tokens_today") == [
        "100,000 of 250,000 (40 %)",
        "212,500 of 250,000 (85 %)",
        "260,000 of 250,000 (104 %)",
    ]
    colours = {agent: bar_colour(tab, agent) for agent in ("calm", "near", "over")}
    expected = {"calm": GREEN, "near": AMBER, "over": RED}
    close = {agent: close_to(colour, expected[agent]) for agent, colour in colours.items()}
    assert close == dict.fromkeys(colours, True), colours


def test_a_models_page_shows_its_day_and_the_agents_list_its_spend(
    logged_in, make_allowance, make_model_quota
):
    tab = logged_in
    make_model_quota(
        model="m1",
        daily_token_budget=1_000_000,
        hourly_rate_limit=10,
        cost_ceiling=250,
        input_price_per_mtok=3,
    )
    make_allowance("bot-7")
    make_allowance("bot-8")
    run_job("bot-7", "j1", model="m1", tokens_in=900_000)
    tab.goto(MODELS)
    go(tab, "m1", url=re.compile(r"/change/$"))
    usage = tab.locator(".field-usage_today").inner_text()
    assert "tokens 900,000 of 1,000,000 (90 %)" in usage
    assert "requests in the last hour 1 of 10 (10 %)" in usage
    assert "spent $2.70 of $2.50 (108 %)" in usage

    tab.goto(AGENTS)
    go(tab, "Spend today", url=re.compile(r"o=4"))
    assert column(tab, "spend_today") == ["$0.00", "$2.70"]
    go(tab, "Spend today", url=re.compile(r"o=-4"))  # again: most first
    assert column(tab, "spend_today") == ["$2.70", "$0.00"]


def test_the_new_pages_fit_a_narrow_window(logged_in, make_allowance, make_repo_limit):
    tab = logged_in
    agent = "release-notes-writer-with-a-long-name"
    make_allowance(agent, model_allowlist=["m1"])
    refuse(agent, 2, model="anthropic/claude-sonnet-4", repo="octo-org/a-long-repository-name")
    make_repo_limit(repo="octo-org/api", cooldown_after_failure=timedelta(minutes=30))
    services.record_repo_event(repo="octo-org/api", kind="failure")
    services.set_paused(
        agent_ids=[agent],
        paused=True,
        actor=Actor("alice"),
        reason="a long reason that explains at length why this agent had to be paused today",
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    repo = RepoLimit.objects.get()
    pages = {"refusals": REFUSALS, "change-log": CHANGES, "repo": f"{REPOS}{repo.pk}/change/"}
    too_wide = {}
    for name, path in pages.items():
        for width in (WIDE, NARROW):
            open_at(tab, path, width)
            tab.screenshot(path=SCREENSHOTS / f"{name}-{width}.png", full_page=True)
        scroll_width = tab.evaluate("document.documentElement.scrollWidth")
        if scroll_width > NARROW + OVERFLOW_TOLERANCE:
            culprits = tab.evaluate(OVERFLOWING_ELEMENTS_JS, NARROW + OVERFLOW_TOLERANCE)
            too_wide[name] = f"{scroll_width}px wide: {culprits}"
    assert too_wide == {}
