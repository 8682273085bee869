"""One unit per quantity, in a real browser: a budget manager types money and counts as they
write them, a Viewer reads limits in words, History says who changed what in units, times
name their zone, and a screen reader hears the allowlist's rule at every box."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission

from quotas import housekeeping, services
from quotas.changelog import Actor
from quotas.models import AgentAllowance, ModelQuota
from tests import test_browser
from tests.conftest import run_job
from tests.test_browser import (
    CUT_OFF_JS,
    NARROW,
    OVERFLOW_TOLERANCE,
    ROLES,
    SCREENSHOTS,
    USERNAME,
)

# test_browser's fixtures (one Chromium per module, a tab on the live server, a budget
# manager logged in through the form), bound here so that pytest finds them.
browser, page = test_browser.browser, test_browser.page
manager, logged_in = test_browser.manager, test_browser.logged_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AGENTS = "/admin/quotas/agentallowance/"
MODELS = "/admin/quotas/modelquota/"
JOBS = "/admin/quotas/job/"
VIEWER, VIEWER_PASSWORD = "viewer", "pw-viewer-1234"
A_TIME = re.compile(r"[A-Z][a-z]{2} \d{1,2}, \d{4} \d\d:\d\d UTC")
EVERY_MODEL_RULE = "Tick the models this agent may use. None ticked means every model."


@pytest.fixture
def viewer(django_user_model, settings):
    """A person of the Viewers role, who may only look."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    group, _ = Group.objects.get_or_create(name="Viewers")
    group.permissions.set(
        Permission.objects.filter(content_type__app_label="quotas", codename__in=ROLES.VIEWERS)
    )
    user = django_user_model.objects.create_user(VIEWER, password=VIEWER_PASSWORD, is_staff=True)
    user.groups.add(group)
    return user


def log_in_as_viewer(page):
    page.goto("/admin/login/")
    page.get_by_label("Username").fill(VIEWER)
    page.get_by_label("Password").fill(VIEWER_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/admin/$"))


def read_only_value(page, label):
    """What a read-only page shows beside a label."""
    row = page.locator(".form-row").filter(has=page.locator("label", has_text=f"{label}:"))
    return row.locator(".readonly").inner_text().strip()


def history_row(page, index):
    """The cells of one row of the History table, newest first."""
    row = page.locator("table.quota-history tbody tr").nth(index)
    # Blanks as one space: the arrow between two values has non-breaking spaces around it.
    return [" ".join(cell.split()) for cell in row.locator("th, td").all_inner_texts()]


def save_and_continue(page):
    page.get_by_role("button", name="Save and continue editing").click()
    page.wait_for_load_state()


def test_a_budget_manager_types_money_and_counts_as_they_write_them(logged_in, make_model_quota):
    page = logged_in
    quota = make_model_quota(model="anthropic/claude-opus-4")
    page.goto(f"{MODELS}{quota.pk}/change/")
    page.get_by_label("Cost ceiling per day").fill("$1,250.50")
    page.get_by_label("Daily token budget").fill("1,000,000")
    page.get_by_label("Input price per million tokens").fill("$3")
    page.get_by_label("Output price per million tokens").fill("15.1234")
    save_and_continue(page)

    assert "was changed successfully" in page.locator(".messagelist .success").inner_text()
    quota.refresh_from_db()
    assert (
        quota.cost_ceiling,
        quota.daily_token_budget,
        quota.input_price_per_mtok,
        quota.output_price_per_mtok,
    ) == (125_050, 1_000_000, Decimal("3"), Decimal("15.1234"))
    assert page.get_by_label("Cost ceiling per day").input_value() == "$1,250.50"
    assert page.get_by_label("Daily token budget").input_value() == "1,000,000"
    assert page.get_by_label("Input price per million tokens").input_value() == "$3.00"


def test_a_number_out_of_bounds_is_refused_in_words_and_changes_nothing(logged_in, make_allowance):
    page = logged_in
    allowance = make_allowance("bot-7", daily_job_limit=20)
    page.goto(f"{AGENTS}{allowance.pk}/change/")
    page.get_by_label("Daily job limit").fill("3,000,000,000")
    page.get_by_label("Daily token limit").fill("lots")
    save_and_continue(page)

    errors = page.locator(".errorlist").all_inner_texts()
    assert "Use at most 2,147,483,647 jobs." in errors
    assert any(error.startswith("Write a whole number of tokens") for error in errors)
    assert not any("Ensure" in error or "digits" in error for error in errors)
    allowance.refresh_from_db()
    assert (allowance.daily_job_limit, allowance.daily_token_limit) == (20, 0)
    assert page.get_by_label("Daily job limit").input_value() == "3,000,000,000"


def test_a_viewer_reads_money_durations_counts_and_models_in_words(
    page, viewer, make_allowance, make_model_quota
):
    make_model_quota(model="opus", cost_ceiling=1_250, daily_token_budget=2_000_000)
    allowance = make_allowance(
        "bot-7",
        max_job_duration=timedelta(minutes=90),
        model_allowlist=["opus", "sonnet"],
        daily_token_limit=250_000,
    )
    log_in_as_viewer(page)
    page.goto(MODELS)
    page.get_by_role("link", name="opus", exact=True).click()
    page.wait_for_load_state()
    assert read_only_value(page, "Cost ceiling per day") == "$12.50"
    assert read_only_value(page, "Daily token budget") == "2,000,000"
    assert "US cents" not in page.locator("#content").inner_text()

    page.goto(f"{AGENTS}{allowance.pk}/change/")
    assert read_only_value(page, "Max job duration") == "1h 30m"
    assert read_only_value(page, "Allowed models") == "opus, sonnet"
    assert read_only_value(page, "Paused") == "no"
    assert read_only_value(page, "Daily job limit") == "unlimited"
    assert page.get_by_role("button", name=re.compile("^Save")).count() == 0


def test_history_says_who_changed_what_in_units_and_what_else_was_done(
    logged_in, make_model_quota, make_allowance
):
    page = logged_in
    quota = make_model_quota(model="opus", cost_ceiling=10_000)
    page.goto(f"{MODELS}{quota.pk}/change/")
    page.get_by_label("Cost ceiling per day").fill("$12.50")
    save_and_continue(page)
    page.get_by_role("link", name="History").click()
    page.wait_for_load_state()

    when, what, who, why, changes = history_row(page, 0)
    assert (what, who, why) == ("Changed", USERNAME, "—")
    assert changes == "Cost ceiling per day: $100.00 \u2192 $12.50"
    assert A_TIME.fullmatch(when)
    assert "Times are in UTC." in page.locator("#content").inner_text()

    allowance = make_allowance("bot-7")
    run_job("bot-7", "j1", tokens_in=1_500)
    housekeeping.reset_usage(agent_id="bot-7", actor=Actor("dana"), reason="new budget")
    services.set_paused(agent_ids=["bot-7"], paused=True, actor=Actor("erin"), reason="loop")
    page.goto(f"{AGENTS}{allowance.pk}/change/")
    page.get_by_role("link", name="History").click()
    page.wait_for_load_state()
    assert history_row(page, 0)[1:] == ["Changed", "erin", "loop", "Paused: no \u2192 yes"]
    assert history_row(page, 1)[1:] == [
        "Usage reset",
        "dana",
        "new budget",
        "gave back 1,500 tokens and 1 job of today",
    ]
    page.set_viewport_size({"width": NARROW, "height": 900})
    cut_off = page.locator("table.quota-history").evaluate(CUT_OFF_JS, True)
    assert cut_off <= OVERFLOW_TOLERANCE
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"history-{NARROW}.png", full_page=True)


def test_an_old_version_of_a_limit_opens_from_history_in_words(logged_in, make_allowance):
    page = logged_in
    allowance = make_allowance("bot-7", max_job_duration=timedelta(minutes=45))
    allowance.max_job_duration = timedelta(hours=2)
    allowance.save()
    page.goto(f"{AGENTS}{allowance.pk}/history/")
    page.locator("table.quota-history tbody tr").nth(1).get_by_role("link").click()
    page.wait_for_load_state()
    assert read_only_value(page, "Max job duration") == "45m"
    assert page.get_by_role("button").filter(has_text=re.compile("Save|Revert")).count() == 0
    assert AgentAllowance.objects.get().max_job_duration == timedelta(hours=2)


def test_lists_write_times_naming_their_zone_and_counts_with_commas(logged_in, make_allowance):
    page = logged_in
    make_allowance("bot-7")
    run_job("bot-7", "big", tokens_in=1_234_567)
    page.goto(JOBS)
    row = page.get_by_role("row").filter(has_text="big")
    assert A_TIME.fullmatch(row.locator(".field-started_at").inner_text().strip())
    assert row.locator(".field-tokens_charged").inner_text().strip() == "1,234,567"


def test_a_screen_reader_hears_the_every_model_rule_at_each_model_box(
    logged_in, make_allowance, make_model_quota
):
    from playwright.sync_api import expect

    page = logged_in
    allowance = make_allowance("bot-7")
    make_model_quota(model="anthropic/claude-sonnet-4")
    make_model_quota(model="openai/gpt-5")
    page.goto(f"{AGENTS}{allowance.pk}/change/")
    for model in ("anthropic/claude-sonnet-4", "openai/gpt-5"):
        box = page.get_by_role("checkbox", name=model, exact=True)
        expect(box).to_have_accessible_description(EVERY_MODEL_RULE)
    assert page.get_by_text(EVERY_MODEL_RULE).is_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(".field-model_allowlist").screenshot(path=SCREENSHOTS / "agent-allowlist.png")
    assert ModelQuota.objects.count() == 2
