"""How fast the budget managers' pages render: the agents list with N agents, and more.

    python bench/admin_pages.py [--agents 200] [--rounds 20] [--database-url URL]

Builds a throwaway database (a temporary SQLite file unless --database-url names another,
which must be empty or disposable: it is migrated and filled), loads N agents with a day of
usage and a few jobs each, and renders each page `rounds` times through Django's test client
as a logged-in superuser. Prints one line per page: median, 95th percentile and slowest
render, and the SQL queries of one render.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
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
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--database-url", default="")
    options = parser.parse_args()
    if options.agents < 1 or options.rounds < 1:
        parser.error("--agents and --rounds must be at least 1")
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
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(url)
        seconds.append(time.perf_counter() - started)
        assert response.status_code == 200, url
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    print(
        f"{name:30} median {statistics.median(ms):7.1f} ms  p95 {p95:7.1f} ms  "
        f"slowest {ms[-1]:7.1f} ms  {len(queries)} queries"
    )


if __name__ == "__main__":
    main()
