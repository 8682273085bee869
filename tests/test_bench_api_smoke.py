"""The API benchmarks still run end to end: tiny runs on SQLite. The scripts set their own
DATABASE_URL and SECRET_KEY, so a CI run on PostgreSQL never reaches the test database."""

import re
import statistics
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
SLICES = re.compile(
    r"^(?P<label>.+?)\s+(?P<slices>\d+) slices, (?P<count>\d+) operations in "
    r"(?P<seconds>\d+\.\d{3}) s(?:; x baseline: (?P<ratios>[\d. ]+))?$"
)
SECONDS, ROUNDS = 1, 3
SLICED = ("POST /api/v1/check", "POST /api/v1/dispatch", "dispatch + job_completed")


def run_bench(script: str, *args: str) -> str:
    """The script's output, once it has exited 0 on SQLite."""
    command = [sys.executable, f"bench/{script}", "--db", "sqlite", *args]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_api_benchmark_reports_throughput_and_latency_of_every_endpoint():
    stdout = run_bench(
        "api.py", "--seconds", str(SECONDS), "--rounds", str(ROUNDS), "--connections", "2"
    )
    lines = stdout.splitlines()
    rows = {m["label"]: m.groups()[1:] for m in map(ENDPOINT.match, lines) if m}
    slices = {m["label"]: m for m in map(SLICES.match, lines) if m}
    assert list(slices) == ["GET /api/v1/health", *SLICED], stdout
    for label, found in slices.items():
        rps, p50, p95, p99, ratio, low, high, errors = rows[label]
        assert float(rps) > 0 and errors == "0", stdout
        assert 0 < float(p50) <= float(p95) <= float(p99), stdout
        # The endpoint's rps is its slices' operations over their own time, and those slices
        # ran for about --seconds (the baseline: before the first slice and after each one).
        count, seconds = int(found["count"]), float(found["seconds"])
        assert abs(count / seconds - float(rps)) <= 0.06 + 0.002 * float(rps), stdout
        planned = SECONDS * (1 if label in SLICED else len(SLICED) + 1 / ROUNDS)
        assert 0.5 * planned <= seconds <= 1.5 * planned, stdout
    assert int(slices["GET /api/v1/health"]["slices"]) == len(SLICED) * ROUNDS + 1, stdout
    for label in SLICED:
        ratios = [float(r) for r in slices[label]["ratios"].split()]
        _, _, _, _, ratio, low, high, _ = rows[label]
        assert (int(slices[label]["slices"]), len(ratios)) == (ROUNDS, ROUNDS), stdout
        assert all(r > 0 for r in ratios), stdout
        # The printed ratio is the median of the slices', the range their lowest and highest.
        assert abs(statistics.median(ratios) - float(ratio)) <= 0.006, stdout
        assert abs(min(ratios) - float(low)) <= 0.006, stdout
        assert abs(max(ratios) - float(high)) <= 0.006, stdout

    half = re.search(r"^check at half peak \((\d+)/s\)\s+rps\s+([\d.]+)", stdout, re.M)
    assert half, stdout
    # An open loop at half the check's peak: the rate asked for, not the peak again.
    assert abs(int(half[1]) - float(rows["POST /api/v1/check"][0]) / 2) <= 1, stdout
    assert 0.3 * int(half[1]) <= float(half[2]) <= 1.2 * int(half[1]) + 1, stdout

    cpu = re.search(r"^POST /api/v1/check .* cpu ms/op: load ([\d.]+) app ([\d.]+)$", stdout, re.M)
    assert cpu and float(cpu[1]) > 0 and float(cpu[2]) > 0, stdout

    # Two targets: check throughput, and check p99 at half peak; each verdict follows its
    # figure on the endpoint's line (but for a figure that rounds to the target itself).
    verdicts = re.findall(r"^(PASS|FAIL)  (.*)$", stdout, re.MULTILINE)
    assert len(verdicts) == 2, stdout
    (check_verdict, check_text), (p99_verdict, p99_text) = verdicts
    check_ratio = re.match(r"check throughput (\d+\.\d\d) x baseline \(target >= 0.6 x", check_text)
    assert check_ratio and check_ratio[1] == rows["POST /api/v1/check"][4], stdout
    if check_ratio[1] != "0.60":
        assert check_verdict == ("PASS" if float(check_ratio[1]) > 0.6 else "FAIL"), stdout
    p99 = re.match(r"check p99 at half peak (\d+\.\d) ms \(target < 25 ms\)", p99_text)
    half_row = next(row for label, row in rows.items() if label.startswith("check at half"))
    assert p99 and p99[1] == half_row[3], stdout
    if p99[1] != "25.0":
        assert p99_verdict == ("PASS" if 0 < float(p99[1]) < 25 else "FAIL"), stdout


def test_instruction_benchmark_runs_every_kind_of_request():
    """Without valgrind (too slow for the suite), on SQLite: the children set up, warm up
    and send their requests, each checked for the answer it must give."""
    stdout = run_bench("instructions.py", "--requests", "3", "--no-valgrind")
    kinds = re.findall(r"^(\w+) +0 instructions per operation$", stdout, re.MULTILINE)
    assert kinds == ["health", "check", "cycle"], stdout
    answered = re.findall(r"^(\w+) +(\d+) operations answered as expected$", stdout, re.M)
    # Per kind, a child with the 30 warm-up operations only, then one with 3 more.
    assert answered == [(kind, n) for kind in kinds for n in ("30", "33")], stdout
