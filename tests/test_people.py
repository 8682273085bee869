"""People and roles: adding a person, who may log in, what each role sees, the lockout page,
the error pages and the favicon, through the Django test client."""

import html
import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import include, path

from quotas import display
from tests.conftest import NOON

PEOPLE = "/admin/auth/user/"
ADD = f"{PEOPLE}add/"
LOGIN = "/admin/login/"
PASSWORD = "a-long-enough-passphrase-7"


@pytest.fixture(autouse=True)
def cheap_passwords(settings):
    # The default hasher's million rounds cost a second per login; these tests log in a lot.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def person_form(**changes):
    data = {
        "username": "alice",
        "first_name": "Alice",
        "last_name": "Liddell",
        "email": "alice@example.com",
        "role": "Budget managers",
        "usable_password": "true",
        "password1": PASSWORD,
        "password2": PASSWORD,
    }
    return {**data, **changes}


def groups_of(user):
    return sorted(user.groups.values_list("name", flat=True))


def log_in(username, password=PASSWORD):
    """A fresh browser's login through the form; the client and the login page's answer."""
    browser = Client()
    # "next" as the login page's hidden field sends it.
    answer = browser.post(LOGIN, {"username": username, "password": password, "next": "/admin/"})
    return browser, answer


def text(response):
    """The page's words, without tags, on one line."""
    words = re.sub(r"<[^>]+>", " ", response.content.decode())
    return re.sub(r"\s+([,.])", r"\1", re.sub(r"\s+", " ", html.unescape(words)))


def link_on(response):
    return re.search(r'id="set-password-link"[^>]*value="([^"]+)"', response.content.decode())[1]


# Adding a person


def test_a_person_added_with_a_typed_password_and_a_role_logs_in_without_staff_status(
    login, django_user_model
):
    response = login("superuser").post(ADD, person_form())
    assert response.status_code == 302
    alice = django_user_model.objects.get(username="alice")
    assert (alice.get_full_name(), alice.email) == ("Alice Liddell", "alice@example.com")
    assert (groups_of(alice), alice.is_staff, alice.check_password(PASSWORD)) == (
        ["Budget managers"],
        False,
        True,
    )
    browser, answer = log_in("alice")
    assert (answer.status_code, answer["Location"]) == (302, "/admin/")
    assert browser.get("/admin/quotas/agentallowance/add/").status_code == 200


def test_a_person_added_with_a_link_chooses_their_password_through_it_once(
    login, django_user_model
):
    page = login("superuser").post(ADD, person_form(usable_password="false", role="Viewers"))
    assert page.status_code == 200
    assert "Added alice as a Viewer." in text(page)
    assert "It works once, for 3 days." in text(page)
    alice = django_user_model.objects.get(username="alice")
    assert (groups_of(alice), alice.has_usable_password()) == (["Viewers"], False)
    link = link_on(page)
    assert link.startswith("http://testserver/admin/set-password/")

    visitor = Client()
    form_page = visitor.get(link, follow=True)
    assert "Choose the password you will log in with as alice" in text(form_page)
    done = visitor.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": PASSWORD, "new_password2": PASSWORD},
        follow=True,
    )
    assert done.redirect_chain[-1][0] == LOGIN
    assert "Your password is set. Log in as alice with it." in text(done)
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)
    assert "This link does not work any more" in text(Client().get(link, follow=True))
    assert log_in("alice")[1].status_code == 302


def test_a_set_password_link_runs_out_after_three_days(login, django_user_model):
    with time_machine.travel(NOON, tick=False):
        page = login("superuser").post(ADD, person_form(usable_password="false"))
    with time_machine.travel(NOON + timedelta(days=3, seconds=1), tick=False):
        expired = Client().get(link_on(page), follow=True)
    assert expired.status_code == 200
    assert "older than 3 days" in text(expired)
    assert django_user_model.objects.get(username="alice").has_usable_password() is False


def test_a_new_set_password_link_is_made_from_a_persons_page(login, django_user_model):
    client = login("superuser")
    client.post(ADD, person_form(password1=PASSWORD, password2=PASSWORD))
    alice = django_user_model.objects.get(username="alice")
    page = client.get(f"{PEOPLE}{alice.pk}/change/")
    assert f'href="{PEOPLE}{alice.pk}/set-password-link/"' in page.content.decode()
    link_page = client.get(f"{PEOPLE}{alice.pk}/set-password-link/")
    assert "The password they choose replaces their current one." in text(link_page)
    visitor = Client()
    form_page = visitor.get(link_on(link_page), follow=True)
    visitor.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "another-passphrase-8", "new_password2": "another-passphrase-8"},
    )
    alice.refresh_from_db()
    assert alice.check_password("another-passphrase-8")
    assert client.get(f"{PEOPLE}999/set-password-link/").status_code == 404


@pytest.mark.parametrize(
    "bad_link",
    [
        "/admin/set-password/MQ/not-a-token/",
        "/admin/set-password/%00%ff/1-2/",
        f"/admin/set-password/{'A' * 2000}/x/",
        "/admin/set-password/OTk5OTk5OTk5OTk5OTk5OTk5OTk5/abc-def/",
    ],
)
def test_a_broken_set_password_link_says_it_does_not_work(client, django_user_model, bad_link):
    django_user_model.objects.create_user("alice")
    response = client.get(bad_link)
    assert response.status_code == 200
    assert "This link does not work any more" in text(response)


def test_a_set_password_link_for_a_person_who_is_not_there_answers_404(login):
    assert login("superuser").get(f"{PEOPLE}not-a-number/set-password-link/").status_code == 404


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"role": ""}, "This field is required."),
        ({"role": "Admins"}, "Select a valid choice. Admins is not one of the available choices."),
        ({"password2": "something-else-9"}, "password fields didn\u2019t match."),
        ({"password1": "12345678", "password2": "12345678"}, "This password is too common."),
        ({"password1": "", "password2": ""}, "This field is required."),
        ({"username": "ALICE"}, "A user with that username already exists."),
        ({"username": "al ice"}, "Enter a valid username."),
    ],
)
def test_a_bad_new_person_is_refused_with_a_message_and_nobody_is_added(
    login, django_user_model, changes, message
):
    client = login("superuser")
    django_user_model.objects.create_user("alice")
    response = client.post(ADD, person_form(**{"username": "bob", **changes}))
    assert response.status_code == 200
    assert message in text(response)
    assert sorted(django_user_model.objects.values_list("username", flat=True)) == [
        "alice",
        "root",
    ]


def test_a_role_whose_group_was_deleted_is_refused_with_a_message(login, django_user_model):
    Group.objects.filter(name="Viewers").delete()
    response = login("superuser").post(ADD, person_form(role="Viewers"))
    assert "There is no group named 'Viewers' any more" in text(response)
    assert not django_user_model.objects.filter(username="alice").exists()


# Editing a person


def test_editing_a_person_shows_their_role_as_one_choice_and_changes_only_that(
    login, django_user_model
):
    client = login("superuser")
    alice = django_user_model.objects.create_user("alice", password=PASSWORD)
    other = Group.objects.create(name="Night shift")
    alice.groups.add(Group.objects.get(name="Budget managers"), other)
    page = client.get(f"{PEOPLE}{alice.pk}/change/").content.decode()
    checked = re.findall(r'<input type="radio" name="role" value="([^"]*)"[^>]*checked', page)
    assert checked == ["Budget managers"]
    assert 'name="is_staff"' not in page and 'name="groups"' not in page

    edit = {"username": "alice", "is_active": "on"}
    assert (
        client.post(f"{PEOPLE}{alice.pk}/change/", {**edit, "role": "Viewers"}).status_code == 302
    )
    assert groups_of(alice) == ["Night shift", "Viewers"]
    client.post(f"{PEOPLE}{alice.pk}/change/", {**edit, "role": ""})
    assert groups_of(alice) == ["Night shift"]
    assert log_in("alice")[1].status_code == 200  # no role: the form says so


def test_a_superuser_cannot_deactivate_or_demote_themselves(login, django_user_model):
    client = login("superuser")
    root = django_user_model.objects.get(username="root")
    response = client.post(f"{PEOPLE}{root.pk}/change/", {"username": "root", "role": ""})
    assert "You cannot deactivate yourself" in text(response)
    assert "You cannot demote yourself" in text(response)
    root.refresh_from_db()
    assert (root.is_active, root.is_superuser) == (True, True)


def test_the_people_list_shows_each_role_and_who_may_log_in(login, django_user_model):
    client = login("superuser")
    for name, role in [("alice", "Budget managers"), ("bob", "Viewers"), ("carol", None)]:
        user = django_user_model.objects.create_user(name, is_staff=name == "carol")
        if role:
            user.groups.add(Group.objects.get(name=role))
    page = client.get(f"{PEOPLE}?o=1")
    page_html = page.content.decode()
    rows = re.findall(r'<tr>.*?field-username.*?>(\w+)</a>.*?field-role_label">([^<]*)<', page_html)
    may = re.findall(r'field-can_log_in"><img src="[^"]*icon-(yes|no)', page_html)
    assert rows == [
        ("alice", "Budget manager"),
        ("bob", "Viewer"),
        ("carol", "No role"),
        ("root", "Superuser"),
    ]
    assert may == ["yes", "yes", "no", "yes"]
    nobody = client.get(f"{PEOPLE}?role=none").content.decode()
    assert re.findall(r"field-username.*?>(\w+)</a>", nobody) == ["carol"]


# Who may log in


def test_a_person_put_into_a_role_in_the_shell_logs_in(django_user_model, db):
    bob = django_user_model.objects.create_user("bob", password=PASSWORD)
    bob.groups.add(Group.objects.get(name="Viewers"))
    browser, answer = log_in("bob")
    assert (answer.status_code, bob.is_staff) == (302, False)
    assert browser.get("/admin/").status_code == 200
    assert browser.get("/admin/password_change/").status_code == 200


@pytest.mark.parametrize("staff", [False, True])
def test_a_person_with_no_role_is_told_so_not_that_the_password_is_wrong(
    django_user_model, db, staff
):
    django_user_model.objects.create_user("carol", password=PASSWORD, is_staff=staff)
    browser, answer = log_in("carol")
    assert answer.status_code == 200
    assert "Your password is right, but you have no role yet" in text(answer)
    assert "_auth_user_id" not in browser.session
    _, wrong = log_in("carol", "not-the-password")
    assert "Please enter a correct username and password" in text(wrong)
    assert "no role" not in text(wrong)


def test_taking_a_person_out_of_their_role_shuts_them_out_at_the_next_click(django_user_model, db):
    bob = django_user_model.objects.create_user("bob", password=PASSWORD)
    bob.groups.add(Group.objects.get(name="Budget managers"))
    browser, _ = log_in("bob")
    assert browser.get("/admin/").status_code == 200
    bob.groups.clear()
    response = browser.get("/admin/")
    assert (response.status_code, response["Location"]) == (302, "/admin/login/?next=/admin/")


def test_a_superuser_with_no_role_and_an_inactive_member_are_treated_as_before(
    django_user_model, db
):
    django_user_model.objects.create_user("root", password=PASSWORD, is_superuser=True)
    gone = django_user_model.objects.create_user("gone", password=PASSWORD, is_active=False)
    gone.groups.add(Group.objects.get(name="Viewers"))
    assert log_in("root")[1].status_code == 302
    assert "Please enter a correct username and password" in text(log_in("gone")[1])


# What each role sees

SUPERUSERS_ONLY = [
    PEOPLE,
    ADD,
    "/admin/auth/group/",
    "/admin/axes/accessattempt/",
    "/admin/axes/accesslog/",
    "/admin/axes/accessfailurelog/",
]


@pytest.mark.parametrize("role", ["Budget managers", "Viewers"])
def test_budget_managers_and_viewers_see_only_the_quotas_pages(login, role):
    dashboard = login(role).get("/admin/")
    assert [app["app_label"] for app in dashboard.context["available_apps"]] == ["quotas"]


def test_a_superuser_also_sees_people_groups_and_login_records(login):
    apps = login("superuser").get("/admin/").context["available_apps"]
    models = {(app["app_label"], model["object_name"]) for app in apps for model in app["models"]}
    assert {
        ("auth", "User"),
        ("auth", "Group"),
        ("axes", "AccessAttempt"),
        ("axes", "AccessLog"),
        ("axes", "AccessFailureLog"),
    } <= models


@pytest.mark.parametrize("role", ["Budget managers", "Viewers"])
def test_people_groups_and_login_records_stay_closed_to_a_role_even_if_granted(login, role):
    granted = Permission.objects.filter(
        content_type__app_label__in=["auth", "axes"], codename__startswith="view_"
    )
    Group.objects.get(name=role).permissions.add(*granted)
    client = login(role)
    assert {page: client.get(page).status_code for page in SUPERUSERS_ONLY} == {
        page: 403 for page in SUPERUSERS_ONLY
    }
    assert "auth" not in [
        app["app_label"] for app in client.get("/admin/").context["available_apps"]
    ]


# The lockout page


def test_the_lockout_page_says_in_words_when_the_lockout_ends(django_user_model, settings, db):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    django_user_model.objects.create_superuser("root", password=PASSWORD)
    browser = Client()
    with time_machine.travel(NOON, tick=False):
        answers = [browser.post(LOGIN, {"username": "root", "password": "guess"}) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    page = text(answers[-1])
    assert "After 3 failed logins as “root” from this address, logging in is locked for " in page
    assert "15 minutes" in page
    until = display.moment(NOON + timedelta(minutes=15))
    assert f"You can try again after {until}, in 15 minutes." in page
    assert admin_look(answers[-1])


def test_a_longer_lockout_is_said_in_hours_and_minutes(django_user_model, settings, db):
    settings.AXES_FAILURE_LIMIT = 1
    settings.AXES_COOLOFF_TIME = timedelta(hours=1, minutes=30)
    with time_machine.travel(NOON, tick=False):
        answer = Client().post(LOGIN, {"username": "nobody", "password": "guess"})
    assert answer.status_code == 429
    until = display.moment(NOON + timedelta(hours=1, minutes=30))
    assert f"You can try again after {until}, in 1 hour 30 minutes." in text(answer)


# Error pages, the favicon, the header


def admin_look(response) -> bool:
    """The page is the admin's: its header, its stylesheet, its favicon."""
    page_html = response.content.decode()
    return all(
        part in page_html
        for part in (
            '<div id="site-name"><a href="/admin/">quotas</a></div>',
            "/static/quotas/admin.css",
            '<link rel="icon" href="/static/quotas/favicon.svg" type="image/svg+xml">',
        )
    )


def test_the_403_page_has_the_admin_look_and_a_link_to_the_dashboard(login):
    response = login("Viewers").get(PEOPLE)
    assert response.status_code == 403
    assert "You may not open this page" in text(response)
    assert '<a class="button" href="/admin/">Back to the dashboard</a>' in response.content.decode()
    assert admin_look(response)


@pytest.mark.parametrize(
    "page", ["/admin/no-such-page/", "/no-such-page", f"{PEOPLE}999/set-password-link/"]
)
def test_the_404_page_has_the_admin_look_and_a_link_to_the_dashboard(login, page):
    response = login("superuser").get(page)
    assert response.status_code == 404
    assert "Page not found" in text(response)
    assert "Back to the dashboard" in text(response)
    assert admin_look(response)


def test_api_paths_keep_their_json_404(client, db):
    response = client.get("/api/v1/no-such-thing")
    assert (response.status_code, response.json()) == (404, {"detail": "Not found."})


def broken(request):
    raise RuntimeError("a bug")


# This module doubles as a URLconf for the 500 test: the project's, plus pages with a bug.
urlpatterns = [
    path("admin/broken/", broken),
    path("api/v1/broken", broken),
    path("", include("project.urls")),
]
handler404 = "quotas.api.errors.not_found"
handler500 = "quotas.api.errors.server_error"


def test_the_500_page_has_the_admin_look_and_api_paths_keep_json(settings, db):
    settings.ROOT_URLCONF = "tests.test_people"
    browser = Client(raise_request_exception=False)
    page = browser.get("/admin/broken/")
    assert page.status_code == 500
    assert "Something went wrong on our side" in text(page)
    assert admin_look(page)
    api = browser.get("/api/v1/broken")
    assert (api.status_code, api.json()) == (500, {"detail": "Internal server error."})


def test_a_stale_form_gets_the_admin_look_not_djangos_csrf_page(db):
    response = Client(enforce_csrf_checks=True).post(LOGIN, {"username": "x", "password": "y"})
    assert response.status_code == 403
    assert "This form had expired" in text(response)
    assert admin_look(response)


def test_the_favicon_is_linked_from_every_admin_page_and_served_at_favicon_ico(login):
    client = login()
    assert admin_look(client.get("/admin/")) and admin_look(Client().get(LOGIN))
    favicon = client.get("/favicon.ico")
    assert (favicon.status_code, favicon["Location"]) == (302, "/static/quotas/favicon.svg")


def test_the_header_has_no_view_site_link(login):
    assert "View site" not in text(login().get("/admin/"))
