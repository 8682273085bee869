"""People and roles in a real browser: a superuser adds a colleague, the colleague logs in;
what a person without a role, a locked-out person and a lost one see."""

import re

import pytest
from django.contrib.auth.models import Group, Permission

from tests.test_browser import (  # noqa: F401
    NARROW,
    OVERFLOW_TOLERANCE,
    ROLES,
    SCREENSHOTS,
    browser,
    open_at,
    page,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT, ROOT_PASSWORD = "root", "pw-root-12345"
COLLEAGUE_PASSWORD = "a-long-enough-passphrase-7"


@pytest.fixture
def superuser(django_user_model, settings):
    # The real login form, but a cheap hash: the default's million rounds cost a second each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    role_groups()
    return django_user_model.objects.create_superuser(ROOT, password=ROOT_PASSWORD)


@pytest.fixture
def colleague_tab(browser, live_server):  # noqa: F811
    """A second browser, with cookies of its own: the colleague's."""
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(5_000)
    yield context.new_page()
    context.close()


def role_groups():
    """The two roles, as migration 0004 makes them, for tests that flushed them (see
    budget_managers in tests/test_browser.py; later migrations may grant more, which these
    tests do not need)."""
    for name, codenames in ROLES.GROUPS.items():
        group, created = Group.objects.get_or_create(name=name)
        if created:
            group.permissions.set(
                Permission.objects.filter(content_type__app_label="quotas", codename__in=codenames)
            )


def log_in_as(tab, username, password):
    tab.goto("/admin/login/")
    tab.get_by_label("Username").fill(username)
    tab.get_by_label("Password").fill(password)
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_load_state()


def open_add_person(tab):
    """From the dashboard to the form, by clicking as a person would."""
    tab.goto("/admin/")
    tab.get_by_role("link", name="Users", exact=True).click()
    tab.get_by_role("link", name="Add user").click()
    tab.wait_for_load_state()


def fill_name_and_role(tab, username, role):
    tab.get_by_label("Username").fill(username)
    tab.get_by_label("First name").fill("Alice")
    tab.get_by_label("Last name").fill("Liddell")
    tab.get_by_label(re.compile(rf"{role}:")).check()


def test_a_superuser_adds_a_budget_manager_who_then_logs_in(
    page,  # noqa: F811
    colleague_tab,
    superuser,
    django_user_model,
):
    log_in_as(page, ROOT, ROOT_PASSWORD)
    open_add_person(page)
    fill_name_and_role(page, "alice", "Budget manager")
    page.get_by_label("Type a password for them now").check()
    page.locator("#id_password1").fill(COLLEAGUE_PASSWORD)
    page.locator("#id_password2").fill(COLLEAGUE_PASSWORD)
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_load_state()

    assert "was added successfully" in page.locator(".messagelist .success").inner_text()
    alice = django_user_model.objects.get(username="alice")
    assert (list(alice.groups.values_list("name", flat=True)), alice.is_staff) == (
        ["Budget managers"],
        False,
    )
    # The person's page shows the role as one choice, ticked.
    assert page.get_by_label(re.compile(r"Budget manager:")).is_checked()

    log_in_as(colleague_tab, "alice", COLLEAGUE_PASSWORD)
    assert colleague_tab.get_by_role("heading", name="Dashboard").is_visible()
    assert colleague_tab.locator("#user-tools strong").text_content() == "Alice"
    assert colleague_tab.get_by_role("link", name="Agent allowances").first.is_visible()
    assert colleague_tab.get_by_role("link", name="Users", exact=True).count() == 0
    assert colleague_tab.get_by_role("link", name="View site").count() == 0


def test_a_colleague_added_with_a_link_chooses_a_password_and_logs_in(
    page,  # noqa: F811
    colleague_tab,
    superuser,
):
    log_in_as(page, ROOT, ROOT_PASSWORD)
    open_add_person(page)
    fill_name_and_role(page, "alice", "Budget manager")
    # The link is the default, and the password boxes stay out of the way.
    assert page.get_by_label(re.compile(r"Show me a link")).is_checked()
    assert not page.locator("#id_password1").is_visible()
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_load_state()

    assert "Added alice as a Budget manager." in page.locator(".messagelist").inner_text()
    link = page.get_by_label("Set-password link").input_value()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "set-password-link.png", full_page=True)

    colleague_tab.goto(link)
    assert "as alice" in colleague_tab.locator("#content-main").inner_text()
    colleague_tab.get_by_label("New password").fill(COLLEAGUE_PASSWORD)
    colleague_tab.get_by_label("Again").fill(COLLEAGUE_PASSWORD)
    colleague_tab.get_by_role("button", name="Set my password").click()
    colleague_tab.wait_for_url(re.compile(r"/admin/login/"))
    assert "Your password is set" in colleague_tab.locator(".messagelist").inner_text()
    colleague_tab.get_by_label("Username").fill("alice")
    colleague_tab.get_by_label("Password").fill(COLLEAGUE_PASSWORD)
    colleague_tab.get_by_role("button", name="Log in").click()
    colleague_tab.wait_for_url(re.compile(r"/admin/$"))
    assert colleague_tab.get_by_role("heading", name="Dashboard").is_visible()

    # The link worked once.
    colleague_tab.goto(link)
    assert "This link does not work any more" in colleague_tab.locator(".errornote").inner_text()


def test_a_person_without_a_role_is_told_so_at_the_login_form(
    page,  # noqa: F811
    superuser,
    django_user_model,
):
    django_user_model.objects.create_user("carol", password=COLLEAGUE_PASSWORD, is_staff=True)
    log_in_as(page, "carol", COLLEAGUE_PASSWORD)
    error = page.locator(".errornote").inner_text()
    assert "Your password is right, but you have no role yet" in error
    assert "Budget manager or a Viewer" in error
    Group.objects.get(name="Budget managers").user_set.add(
        django_user_model.objects.get(username="carol")
    )
    log_in_as(page, "carol", COLLEAGUE_PASSWORD)
    assert page.get_by_role("heading", name="Dashboard").is_visible()


def test_a_locked_out_person_reads_when_to_try_again(page, superuser, settings):  # noqa: F811
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        log_in_as(page, ROOT, "a-wrong-guess")
    assert page.get_by_role("heading", name="Too many failed logins").is_visible()
    words = page.locator("#content-main").inner_text()
    assert "After 2 failed logins as “root” from this address" in words
    assert re.search(r"You can try again after .+, in 15 minutes\.", words)
    assert page.locator("#site-name").inner_text() == "quotas"


def test_a_lost_person_finds_the_way_back_to_the_dashboard(page, superuser, live_server):  # noqa: F811
    log_in_as(page, ROOT, ROOT_PASSWORD)
    answer = page.goto("/admin/no-such-page/")
    assert answer.status == 404
    assert page.get_by_role("heading", name="Page not found").is_visible()
    page.get_by_role("link", name="Back to the dashboard").click()
    page.wait_for_url(re.compile(r"/admin/$"))
    assert page.get_by_role("heading", name="Dashboard").is_visible()


def test_the_tab_shows_the_favicon_which_is_also_at_favicon_ico(page, superuser):  # noqa: F811
    log_in_as(page, ROOT, ROOT_PASSWORD)
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert icon.endswith("/quotas/favicon.svg")
    answer = page.goto("/favicon.ico")
    assert (answer.status, answer.headers["content-type"]) == (200, "image/svg+xml")
    assert page.url.endswith("/static/quotas/favicon.svg")


def test_the_people_pages_fit_a_narrow_window(page, superuser, django_user_model):  # noqa: F811
    log_in_as(page, ROOT, ROOT_PASSWORD)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    too_wide = {}
    for name, path in {
        "people": "/admin/auth/user/",
        "add-person": "/admin/auth/user/add/",
    }.items():
        open_at(page, path, NARROW)
        page.screenshot(path=SCREENSHOTS / f"{name}-{NARROW}.png", full_page=True)
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > NARROW + OVERFLOW_TOLERANCE:
            too_wide[name] = width
    assert too_wide == {}
