from io import StringIO

from django.contrib.auth import get_user_model
from django.core.management import call_command


def run():
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    return out.getvalue()


def test_it_creates_one_admin_and_prints_its_password_once(db):
    first = run()
    password = first.split("password: ")[1].split()[0]
    user = get_user_model().objects.get()
    assert (user.username, user.is_superuser, user.check_password(password)) == (
        "admin",
        True,
        True,
    )
    assert run() == "An admin user exists already; nothing to do.\n"
    assert get_user_model().objects.count() == 1
