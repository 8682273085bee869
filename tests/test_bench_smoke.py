"""The benchmark scripts still run (on tiny loads): a benchmark that rots is worse than none."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_admin_pages_benchmark_runs_and_reports_every_page():
    result = subprocess.run(
        [sys.executable, "bench/admin_pages.py", "--agents", "3", "--rounds", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "3 agents, 2 renders per page, sqlite3"
    page = re.compile(
        r"(.+?)\s+median\s+([\d.]+) ms\s+p95\s+([\d.]+) ms\s+slowest\s+([\d.]+) ms\s+(\d+) queries$"
    )
    rows = [page.match(line).groups() for line in lines[1:]]
    assert [name for name, *_ in rows] == [
        "agents list",
        "agents list, warning filter",
        "agent page",
        "models list",
        "jobs list",
        "dashboard",
    ]
    for name, median, p95, slowest, queries in rows:
        assert 0 < float(median) <= float(p95) <= float(slowest), (name, lines)
        assert int(queries) >= 2, (name, lines)  # the session's user, then the page's rows
