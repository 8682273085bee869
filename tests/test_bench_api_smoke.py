"""The API benchmarks still run end to end: tiny runs on SQLite. The scripts set their own
DATABASE_URL and SECRET_KEY, so a CI run on PostgreSQL never reaches the test database."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NUMBER = r"(\d+\.\d)"
RATIO = r"(\d+\.\d\d)"
ENDPOINT = re.compile(
    rf"^(?P<label>.+?)\s+rps\s+{NUMBER}\s+p50\s+{NUMBER} ms\s+p95\s+{NUMBER} ms\s+"
    rf"p99\s+{NUMBER} ms\s+{RATIO} x baseline(?: \({RATIO}-{RATIO}\))?\s+(\d+) errors"
)


def run_bench(script: str, *args: str) -> str:
    """The script's output, once it has exited 0 on SQLite."""
    command = [sys.executable, f"bench/{script}", "--db", "sqlite", *args]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_api_benchmark_reports_throughput_and_latency_of_every_endpoint():
    stdout = run_bench("api.py", "--seconds", "1", "--rounds", "2", "--connections", "2")
    rows = {m["label"]: m.groups()[1:] for m in map(ENDPOINT.match, stdout.splitlines()) if m}
    for label in (
        "GET /api/v1/health",
        "POST /api/v1/check",
        "POST /api/v1/dispatch",
        "dispatch + job_completed",
    ):
        rps, p50, p95, p99, ratio, low, high, errors = rows[label]
        assert float(rps) > 0 and float(ratio) > 0, stdout
        assert 0 < float(p50) <= float(p95) <= float(p99), stdout
        # The median of the slices' ratios to the baseline around them, within their range.
        assert float(low) <= float(ratio) <= float(high), stdout
        assert errors == "0", stdout
    assert rows["GET /api/v1/health"][4:7] == ("1.00", "1.00", "1.00")
    cpu = re.search(r"^POST /api/v1/check .* cpu ms/op: load ([\d.]+) app ([\d.]+)$", stdout, re.M)
    assert cpu and float(cpu[1]) > 0 and float(cpu[2]) > 0, stdout
    verdicts = re.findall(r"^(PASS|FAIL)  ", stdout, re.MULTILINE)
    assert len(verdicts) == 3, stdout


def test_instruction_benchmark_runs_every_kind_of_request():
    """Without valgrind (too slow for the suite), on SQLite: the children set up, warm up
    and send their requests, each checked for the answer it must give."""
    stdout = run_bench("instructions.py", "--requests", "3", "--no-valgrind")
    kinds = re.findall(r"^(\w+) +0 instructions per operation$", stdout, re.MULTILINE)
    assert kinds == ["health", "check", "cycle"], stdout
