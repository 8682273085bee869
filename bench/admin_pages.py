"""How fast the budget managers' pages render: the agents list with N agents, and more.

    python bench/admin_pages.py [--agents 200] [--rounds 20] [--database-url URL]
    python bench/admin_pages.py --scale [--rounds 5] [--postgres postgres://...]

Builds a throwaway database (a temporary SQLite file unless --database-url names another,
which must be empty or disposable: it is migrated and filled), loads N agents with a day of
usage and a few jobs each, and renders each page `rounds` times through Django's test client
as a logged-in superuser. Prints one line per page: median, 95th percentile and slowest
render, and the SQL queries of one render.

--scale loads, into a new PostgreSQL database (dropped at the end), the data of
``bench/api.py --scale``: 100,000 agents, 1,000,000 jobs and 90 days of usage (9,000,000
agent usage rows), vacuumed after the load; then it renders every page, sort and filter a
budget manager uses, and downloads each export whole, ``rounds`` times each (5 by default:
the figures are medians of 5 loads).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [
    ("agents list", "/admin/quotas/agentallowance/?all="),
    ("agents list, warning filter", "/admin/quotas/agentallowance/?status=warning"),
    ("agent page", "/admin/quotas/agentallowance/{pk}/change/"),
    ("models list", "/admin/quotas/modelquota/"),
    ("jobs list", "/admin/quotas/job/"),
    ("dashboard", "/admin/"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=None, help="20, or 5 with --scale")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--scale", action="store_true", help="PostgreSQL; see above")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    options = parser.parse_args()
    options.rounds = options.rounds or (5 if options.scale else 20)
    if options.agents < 1 or options.rounds < 1:
        parser.error("--agents and --rounds must be at least 1")
    if options.scale:
        scale(options)
        return
    workdir = tempfile.mkdtemp(prefix="quotas-bench-")
    os.environ["DATABASE_URL"] = options.database_url or f"sqlite:///{workdir}/bench.sqlite3"
    os.environ.setdefault("SECRET_KEY", "benchmark-only")
    os.environ.setdefault("ENV_FILE", os.devnull)
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
    sys.path.insert(0, str(ROOT))
    import warnings

    import django

    warnings.filterwarnings("ignore", message="No directory at")  # static files not collected
    django.setup()
    from django.conf import settings

    settings.ALLOWED_HOSTS = ["testserver"]
    settings.STORAGES["staticfiles"] = {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
    }
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    pk = load(options.agents)
    client = logged_in_client()
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(f"{options.agents} agents, {options.rounds} renders per page, {engine}")
    for name, url in PAGES:
        measure(client, name, url.format(pk=pk), options.rounds)


def scale(options) -> None:
    """The pages, sorts, filters and exports at the scale of a large fleet."""
    sys.path.insert(0, str(ROOT / "bench"))
    import api

    database = f"quotas_bench_admin_{os.getpid()}"
    api.postgres_admin(options.postgres, f'CREATE DATABASE "{database}"')
    try:
        api.configure(f"{options.postgres.rstrip('/')}/{database}")
        from django.conf import settings

        settings.ALLOWED_HOSTS = ["testserver"]
        settings.STORAGES["staticfiles"] = {
            "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        }
        started = time.monotonic()
        api.prepare_database()
        loaded = api.load_scale()
        print(f"loaded {loaded} in {time.monotonic() - started:.0f} s")
        client = logged_in_client()
        print(f"{options.rounds} loads per page, medians")
        for name, url in scale_pages():
            measure(client, name, url, options.rounds)
    finally:
        from django.db import connections

        connections.close_all()
        api.postgres_admin(options.postgres, f'DROP DATABASE IF EXISTS "{database}"')


def scale_pages() -> list[tuple[str, str]]:
    from quotas.admin.limits import AgentAllowanceAdmin
    from quotas.models import AgentAllowance

    def sort_by(column: str) -> str:
        return str(AgentAllowanceAdmin.list_display.index(column) + 1)

    agents = "/admin/quotas/agentallowance/"
    pk = AgentAllowance.objects.order_by("pk").values_list("pk", flat=True).first()
    export = "/admin/export/agent-usage.csv?first_day={first}&last_day={last}"
    from django.utils import timezone

    today = timezone.localdate()
    month, quarter = today - timedelta(days=29), today - timedelta(days=89)
    return [
        ("dashboard", "/admin/"),
        ("agents list", agents),
        ("agents list, by running jobs", f"{agents}?o=-{sort_by('running')}"),
        ("agents list, by tokens today", f"{agents}?o=-{sort_by('tokens_today')}"),
        ("agents list, warning filter", f"{agents}?status=warning"),
        ("agents list, page 500", f"{agents}?p=500"),
        ("agents list, search", f"{agents}?q=agent-0999"),
        ("agent page", f"{agents}{pk}/change/"),
        ("models list", "/admin/quotas/modelquota/"),
        ("repository limits list", "/admin/quotas/repolimit/"),
        ("jobs list", "/admin/quotas/job/"),
        ("usage events list", "/admin/quotas/usageevent/"),
        ("export per agent, 30 days", export.format(first=month, last=today)),
        ("export per agent, 90 days", export.format(first=quarter, last=today)),
    ]


def load(agents: int) -> int:
    from quotas import services
    from quotas.models import AgentAllowance, ModelQuota

    ModelQuota.objects.create(
        model="anthropic/claude-sonnet-4",
        daily_token_budget=10**9,
        cost_ceiling=100_000,
        input_price_per_mtok=3,
        output_price_per_mtok=15,
    )
    AgentAllowance.objects.bulk_create(
        AgentAllowance(
            agent_id=f"agent-{i:05}",
            daily_token_limit=1_000_000,
            daily_job_limit=100,
            concurrent_jobs=5,
        )
        for i in range(agents)
    )
    for i in range(agents):
        agent = f"agent-{i:05}"
        for j in range(3):
            services.dispatch(agent_id=agent, job_id=f"job-{j}", model="anthropic/claude-sonnet-4")
        services.record_usage(
            agent_id=agent,
            job_id="job-0",
            event="job_completed",
            tokens_in=1000 * (i % 1000),
            tokens_out=500,
        )
    return AgentAllowance.objects.order_by("pk").first().pk


def logged_in_client():
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_superuser("bench", password="bench-password-123")
    client = Client()
    client.force_login(user)
    return client


def measure(client, name: str, url: str, rounds: int) -> None:
    from django.db import connection

    queries = []
    with connection.execute_wrapper(
        lambda execute, sql, *args: queries.append(sql) or execute(sql, *args)
    ):
        assert client.get(url).status_code == 200, url
    seconds, lines = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(url)
        if response.streaming:  # an export: only the whole file counts
            lines = sum(chunk.count(b"\n") for chunk in response.streaming_content)
        seconds.append(time.perf_counter() - started)
        assert response.status_code == 200, url
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    print(
        f"{name:30} median {statistics.median(ms):7.1f} ms  p95 {p95:7.1f} ms  "
        f"slowest {ms[-1]:7.1f} ms  {len(queries)} queries"
        + (f"  {lines:,} lines" if lines else "")
    )


if __name__ == "__main__":
    main()
