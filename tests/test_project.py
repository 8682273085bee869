"""The project as a whole: migrations match the models, settings fail clearly."""

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent


def test_models_and_migrations_agree(db):
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def load_settings(**env):
    """Import the settings in a fresh interpreter with only the given variables set."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("SECRET_KEY", "DEBUG", "QUOTAS_"))
    }
    clean.pop("DATABASE_URL", None)
    code = (
        "import django; from django.conf import settings; django.setup(); "
        "db = settings.DATABASES['default']; "
        "print(settings.DEBUG, settings.QUOTAS_TIME_ZONE, settings.TIME_ZONE, "
        "settings.QUOTAS_WARNING_RATIO, db['ENGINE'], db['OPTIONS'].get('transaction_mode'), "
        "','.join(settings.ALLOWED_HOSTS))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        # ENV_FILE points away from a developer's .env, which would fill in missing values.
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "ENV_FILE": os.devnull,
            "PYTHONPATH": str(ROOT),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_defaults_are_sqlite_utc_and_debug_off():
    result = load_settings(SECRET_KEY="k")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "False",
        "UTC",
        "UTC",
        "0.8",
        "django.db.backends.sqlite3",
        "IMMEDIATE",
        "localhost,127.0.0.1",
    ]


def test_settings_come_from_the_environment():
    result = load_settings(
        SECRET_KEY="k",
        QUOTAS_TIME_ZONE="Europe/Berlin",
        QUOTAS_WARNING_RATIO="0.9",
        ALLOWED_HOSTS="quotas.example.com",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[1:4] == ["Europe/Berlin", "Europe/Berlin", "0.9"]
    assert result.stdout.split()[-1] == "quotas.example.com"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "SECRET_KEY is required when DEBUG is off"),
        ({"SECRET_KEY": "k", "QUOTAS_TIME_ZONE": "Mars/Olympus"}, "is not a time zone name"),
        ({"SECRET_KEY": "k", "QUOTAS_WARNING_RATIO": "1.5"}, "must be above 0 and at most 1"),
        ({"SECRET_KEY": "k", "QUOTAS_API_KEY_CACHE_SECONDS": "-1"}, "must be from 0 to 60"),
    ],
)
def test_bad_settings_stop_the_service_with_a_clear_message(env, message):
    result = load_settings(**env)
    assert result.returncode != 0
    assert message in result.stderr


def test_debug_runs_without_a_secret_key():
    result = load_settings(DEBUG="on")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "True"


def test_sqlite_runs_in_wal_mode_with_immediate_transactions(db):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite settings")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
    assert connection.transaction_mode == "IMMEDIATE"
