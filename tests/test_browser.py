"""The admin in a real browser: headless Chromium driven by Playwright against a live server.

These tests need Debian's Chromium at /usr/bin/chromium (Playwright's own browser download
needs the internet). Without it they skip, except with CI=true, where they fail: CI must never
pass without having looked at the pages. Screenshots go to artifacts/screenshots/.
"""

import importlib
import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connections
from django.utils import timezone

from quotas import selectors, services
from quotas.models import AgentAllowance
from tests.conftest import run_job

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
TIMEOUT_MS = 5_000
WIDE, NARROW = 1280, 800
# Sub-pixel rounding may make a page that fits report a pixel or two more.
OVERFLOW_TOLERANCE = 2

AGENTS = "/admin/quotas/agentallowance/"
USERNAME, PASSWORD = "budget", "pw-budget-1234"

# The live server reads what the test writes, so no test transaction may hide it.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ROLES = importlib.import_module("quotas.migrations.0004_roles")
CHANGE_LOG_ROLES = importlib.import_module("quotas.migrations.0009_change_log_for_both_roles")
BUDGET_MANAGERS = [*ROLES.BUDGET_MANAGERS, *CHANGE_LOG_ROLES.GRANTED["Budget managers"]]


def missing_browser() -> str:
    """Why the browser tests cannot run here, or '' if they can."""
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed"
    return ""


@pytest.fixture(scope="module")
def browser(django_db_setup):
    """One headless Chromium for the whole file; each test gets a fresh context of its own."""
    reason = missing_browser()
    if reason and os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run: {reason}; with CI=true they must not skip")
    if reason:
        pytest.skip(f"browser tests skipped: {reason}")
    from playwright.sync_api import sync_playwright

    test_databases = {alias: connections[alias] for alias in connections}
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        # Playwright's sync API marks an event loop as running in this thread. Django then
        # refuses ORM calls here (SynchronousOnlyOperation), though they are plain synchronous
        # code sharing the thread with that loop...
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        # ...and hands out other connection objects, as it would to async code, which would
        # stay open after Playwright stops (PostgreSQL then cannot drop the test database):
        # keep using the ones Django already has.
        for alias, connection in test_databases.items():
            connections[alias] = connection
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):
    """A fresh browser tab on the live server; fails the test on any server error."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": WIDE, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    server_errors = []
    tab.on(
        "response",
        lambda response: (
            response.status >= 500 and server_errors.append(f"{response.status} {response.url}")
        ),
    )
    yield tab
    context.close()
    assert server_errors == [], "the server answered with an error"


@pytest.fixture
def manager(django_user_model, settings):
    """A budget manager with a password, who logs in like a person would."""
    # The real login form, but a cheap hash: the default's million rounds cost a second each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = django_user_model.objects.create_user(USERNAME, password=PASSWORD, is_staff=True)
    user.groups.add(budget_managers())
    return user


def budget_managers():
    """The group as its data migration makes it. Tests with real transactions (these and
    others in the suite) flush every table when they end, the migration's groups included,
    and serialized rollback would clash with the content types that flush recreates."""
    group, created = Group.objects.get_or_create(name="Budget managers")
    if created:
        group.permissions.set(
            Permission.objects.filter(
                content_type__app_label="quotas", codename__in=BUDGET_MANAGERS
            )
        )
    assert group.permissions.count() == len(BUDGET_MANAGERS)
    return group


@pytest.fixture
def logged_in(page, manager):
    log_in(page)
    return page


def log_in(page):
    page.goto("/admin/login/")
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/admin/$"))


def use(agent_id, *, tokens, days_ago=0, model=""):
    """One completed job of ``tokens`` tokens, ``days_ago`` days back."""
    when = timezone.now() - timedelta(days=days_ago)
    job_id = f"{agent_id}-{days_ago}-{tokens}"
    run_job(agent_id, job_id, model=model, tokens_in=tokens, now=when)


def tokens_today(agent_id):
    return selectors.allowances_with_usage(timezone.now()).get(agent_id=agent_id).tokens_today


def run_action(page, agent_ids, action):
    """Tick the agents in the change list and run one action on them."""
    for agent_id in agent_ids:
        page.get_by_role("row").filter(has_text=agent_id).get_by_role("checkbox").check()
    # The menu above the list (there is one below it too).
    page.locator("select[name=action]").first.select_option(label=action)
    page.get_by_role("button", name="Go").first.click()
    # Nothing happens unasked: a page names the agents and asks to confirm.
    page.get_by_role("button", name=re.compile(r"^Yes, ")).click()
    page.wait_for_load_state()


# Logging in and editing


def test_a_budget_manager_logs_in_through_the_login_form(page, manager):
    log_in(page)
    assert page.get_by_role("heading", name="Dashboard").is_visible()
    assert page.locator("#user-tools strong").text_content() == USERNAME
    assert page.get_by_role("button", name="Log out").is_visible()


def test_editing_an_agent_saves_the_typed_duration_and_the_ticked_model(
    logged_in, make_allowance, make_model_quota
):
    page = logged_in
    allowance = make_allowance("bot-7")
    make_model_quota(model="anthropic/claude-sonnet-4")
    make_model_quota(model="openai/gpt-5")
    page.goto(f"{AGENTS}{allowance.pk}/change/")
    page.locator("#id_max_job_duration").fill("1h 30m")
    page.get_by_label("openai/gpt-5", exact=True).check()
    page.get_by_role("button", name="Save and continue editing").click()
    page.wait_for_load_state()

    assert "was changed successfully" in page.locator(".messagelist .success").inner_text()
    allowance.refresh_from_db()
    assert (allowance.max_job_duration, allowance.model_allowlist) == (
        timedelta(minutes=90),
        ["openai/gpt-5"],
    )
    assert page.locator("#id_max_job_duration").input_value() == "1h 30m"
    assert page.get_by_label("openai/gpt-5", exact=True).is_checked()
    assert not page.get_by_label("anthropic/claude-sonnet-4", exact=True).is_checked()


# Actions on the agents list


def test_resetting_an_agents_day_from_the_list_zeroes_its_tokens(logged_in, make_allowance):
    page = logged_in
    make_allowance("bot-7", daily_token_limit=1000)
    make_allowance("bot-8")
    use("bot-7", tokens=400)
    assert tokens_today("bot-7") == 400
    page.goto(AGENTS)
    run_action(page, ["bot-7"], "Reset today's usage of the selected agents")

    message = page.locator(".messagelist .success").inner_text()
    assert message.startswith("Started today afresh for 1 of 1 selected agents")
    assert tokens_today("bot-7") == 0
    row = page.get_by_role("row").filter(has_text="bot-7")
    assert row.locator(".field-tokens_today").inner_text().strip() == "0 of 1,000 (0 %)"


def test_pausing_an_agent_from_the_list_shows_its_paused_badge(logged_in, make_allowance):
    page = logged_in
    make_allowance("bot-7")
    make_allowance("bot-8")
    page.goto(AGENTS)
    run_action(page, ["bot-7"], "Pause the selected agents")

    assert page.locator(".messagelist li").first.inner_text().startswith("Paused 1 agent")
    assert AgentAllowance.objects.get(agent_id="bot-7").paused is True
    paused = page.get_by_role("row").filter(has_text="bot-7").locator(".quota-badge")
    assert (paused.inner_text(), paused.is_visible()) == ("Paused", True)
    other = page.get_by_role("row").filter(has_text="bot-8").locator(".quota-badge")
    assert other.inner_text() == "OK"


# The dashboard


def test_the_dashboard_draws_the_token_chart_with_one_bar_per_agent_and_day(
    logged_in, make_allowance
):
    page = logged_in
    make_allowance("bot-7")
    make_allowance("bot-8")
    for days_ago in (0, 1, 3, 6, 10):
        use("bot-7", tokens=1000 * (days_ago + 1), days_ago=days_ago)
    for days_ago in (1, 3):
        use("bot-8", tokens=500, days_ago=days_ago)
    page.goto("/admin/")

    chart = page.get_by_role("img", name=re.compile(r"^Tokens and cost per day"))
    chart.wait_for(state="visible")
    assert chart.evaluate("(chart) => chart.tagName") == "svg"
    box = chart.bounding_box()
    assert box["width"] > 300 and box["height"] > 100
    bars = chart.locator("rect").filter(has_text=" tokens")
    assert bars.count() == 7
    heights = [bars.nth(i).bounding_box()["height"] for i in range(bars.count())]
    assert min(heights) > 0


# Screenshots and layout


@pytest.fixture
def busy_books(make_allowance, make_model_quota):
    """A fortnight of work by a handful of agents, two near their limits, one paused."""
    make_model_quota(
        model="anthropic/claude-sonnet-4",
        daily_token_budget=2_000_000,
        cost_ceiling=25_000,
        input_price_per_mtok=3,
        output_price_per_mtok=15,
    )
    make_model_quota(model="openai/gpt-5", input_price_per_mtok="1.25", output_price_per_mtok=10)
    agents = {
        "bot-7": {"daily_token_limit": 250_000, "daily_job_limit": 20, "concurrent_jobs": 2},
        "release-notes-writer-with-a-long-name": {"daily_token_limit": 50_000},
        "triage": {"daily_token_limit": 10_000},
        "nightly-refactor": {"paused": True},
    }
    for agent_id, limits in agents.items():
        make_allowance(agent_id, max_job_duration=timedelta(hours=1, minutes=30), **limits)
    for days_ago in range(0, 14, 2):
        use("bot-7", tokens=120_000 + 9_000 * days_ago, days_ago=days_ago, model="openai/gpt-5")
        use("triage", tokens=9_000, days_ago=days_ago, model="anthropic/claude-sonnet-4")
    use("release-notes-writer-with-a-long-name", tokens=45_000, model="anthropic/claude-sonnet-4")
    services.dispatch(agent_id="bot-7", job_id="still-running", model="openai/gpt-5")
    bot = AgentAllowance.objects.get(agent_id="bot-7")
    bot.model_allowlist = ["openai/gpt-5"]
    bot.save()
    return bot


def pages(agent):
    return {
        "dashboard": "/admin/",
        "agents": AGENTS,
        "agent": f"{AGENTS}{agent.pk}/change/",
    }


def open_at(page, path, width):
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(path)
    page.wait_for_load_state()


# The innermost elements that reach past the right edge: those are the ones to fix.
OVERFLOWING_ELEMENTS_JS = """(limit) => {
    const wide = [...document.querySelectorAll("body *")].filter(
        (el) => el.getBoundingClientRect().right > limit
    );
    return wide
        .filter((el) => !wide.some((other) => other !== el && el.contains(other)))
        .slice(0, 5)
        .map((el) => {
            const name = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
                + [...el.classList].map((c) => "." + c).join("");
            return `${name} (right edge ${Math.round(el.getBoundingClientRect().right)}px)`;
        });
}"""


def test_pages_are_photographed_and_fit_a_narrow_window(logged_in, busy_books):
    page = logged_in
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shots, too_wide = [], {}
    for name, path in pages(busy_books).items():
        for width in (WIDE, NARROW):
            open_at(page, path, width)
            shots.append(page.screenshot(path=SCREENSHOTS / f"{name}-{width}.png", full_page=True))
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        if scroll_width > NARROW + OVERFLOW_TOLERANCE:
            culprits = page.evaluate(OVERFLOWING_ELEMENTS_JS, NARROW + OVERFLOW_TOLERANCE)
            too_wide[name] = f"{scroll_width}px wide: {culprits}"
    assert too_wide == {}
    assert len(shots) == 6 and min(len(png) for png in shots) > 10_000


# How many pixels of an element are cut off on the right, by the window or by an ancestor
# that hides or scrolls what overflows it: the page itself may then be no wider than the
# window, yet a budget manager cannot see the rest. Where scrolling is fine, the nearest
# scrolling ancestor is measured instead: it must show in full, its content may scroll.
CUT_OFF_JS = """(el, scrollingIsFine) => {
    const overflow = (node) => getComputedStyle(node).overflowX;
    let subject = el;
    for (let up = el.parentElement; scrollingIsFine && up; up = up.parentElement) {
        if (["auto", "scroll"].includes(overflow(up))) {
            subject = up;
            break;
        }
    }
    let edge = window.innerWidth;
    for (let up = subject.parentElement; up; up = up.parentElement) {
        if (overflow(up) !== "visible") {
            edge = Math.min(edge, up.getBoundingClientRect().left + up.clientWidth);
        }
    }
    return Math.max(0, Math.round(subject.getBoundingClientRect().right - edge));
}"""


def bug(reason):
    """A known fault in the application: the test fails until it is fixed, then says so."""
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason=f"BUG: {reason}")


@pytest.mark.parametrize(
    ("name", "table", "scrolling_is_fine"),
    [
        pytest.param(
            "agents",
            "#result_list",
            False,
            id="agents-list",
        ),
        pytest.param(
            "agent",
            ".quota-jobs",
            True,
            id="agent-jobs",
        ),
    ],
)
def test_tables_are_not_cut_off(logged_in, busy_books, name, table, scrolling_is_fine):
    page = logged_in
    cut_off = {}
    for width in (WIDE, NARROW):
        open_at(page, pages(busy_books)[name], width)
        cut_off[width] = page.locator(table).evaluate(CUT_OFF_JS, scrolling_is_fine)
    assert {width: px for width, px in cut_off.items() if px > OVERFLOW_TOLERANCE} == {}


def test_the_agents_title_is_not_hidden_under_the_add_button(logged_in, busy_books):
    page = logged_in
    open_at(page, AGENTS, NARROW)
    # Where each line of the title's text ends, not the heading's box, which is always full width.
    lines = page.locator("#content h1").evaluate(
        """(h1) => {
            const text = document.createRange();
            text.selectNodeContents(h1);
            return [...text.getClientRects()].map((line) => [line.right, line.top, line.bottom]);
        }"""
    )
    button = page.locator(".object-tools").bounding_box()
    button_bottom = button["y"] + button["height"]
    covered = [
        (right, top)
        for right, top, bottom in lines
        if right > button["x"] and top < button_bottom and bottom > button["y"]
    ]
    assert covered == []
