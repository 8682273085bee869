"""The usage exports: what was consumed per agent, per model and per agent and model, per day
or over the whole range, in dollars to the cent; and bad dates, which show the dashboard again
with the error beside them and export nothing."""

import csv
import io
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from quotas import housekeeping, selectors, services
from quotas.exports import cost_usd
from quotas.models import AgentUsage, ModelUsage, UsageEvent
from tests.conftest import run_job

DAY = timedelta(days=1)
AGENTS, MODELS, BOTH = (
    "/admin/export/agent-usage.csv",
    "/admin/export/model-usage.csv",
    "/admin/export/agent-model-usage.csv",
)
MARCH_10 = "first_day=2026-03-10&last_day=2026-03-10"
TWO_DAYS = "first_day=2026-03-09&last_day=2026-03-10"


def download(client, url: str) -> list[list[str]]:
    response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.fixture
def two_days(make_allowance, make_model_quota, now):
    """Yesterday and today of two agents, on two priced models and without a model, with a
    reset of each agent today after its work (which changes no fact)."""
    make_allowance("agent-a")
    make_allowance("agent-b")
    # $2.50 per million input tokens: 3,195,567 tokens cost $7.9889175.
    make_model_quota("m-cheap", input_price_per_mtok=Decimal("2.5"))
    make_model_quota(
        "m-dear", input_price_per_mtok=Decimal("5"), output_price_per_mtok=Decimal("25")
    )
    yesterday = now - DAY
    run_job("agent-a", "a0", model="m-dear", tokens_in=1_000, now=yesterday)
    run_job("agent-b", "b0", tokens_in=70, now=yesterday)
    run_job("agent-a", "a1", model="m-cheap", tokens_in=3_195_567, now=now)
    run_job("agent-a", "a2", model="m-dear", tokens_in=100_000, tokens_out=22_000, now=now)
    run_job("agent-a", "a3", tokens_in=500, now=now)
    run_job("agent-b", "b1", model="m-dear", tokens_in=40, event="job_failed", now=now)
    run_job("agent-b", "b2", tokens_in=9, now=now)
    services.dispatch(agent_id="agent-b", job_id="b3", model="m-cheap", now=now)
    assert housekeeping.reset_usage(agent_id="agent-a", now=now) == 1
    assert housekeeping.reset_usage(agent_id="agent-b", now=now) == 1


def test_the_per_agent_export_gives_tokens_cost_in_dollars_and_jobs_started_per_day(
    login, two_days
):
    rows = download(login(), f"{AGENTS}?{TWO_DAYS}")

    assert rows == [
        ["date", "agent_id", "tokens", "cost_usd", "jobs"],
        ["2026-03-09", "agent-a", "1000", "0.01", "1"],
        ["2026-03-09", "agent-b", "70", "0.00", "1"],
        # 3,195,567 + 122,000 + 500 tokens; $7.9889175 + $1.05, to the cent.
        ["2026-03-10", "agent-a", "3318067", "9.04", "3"],
        # A failed job is charged half its tokens: 20 + 9; and b3 has started.
        ["2026-03-10", "agent-b", "29", "0.00", "3"],
    ]


def test_the_per_model_export_ends_each_day_with_the_jobs_reported_without_a_model(login, two_days):
    rows = download(login(), f"{MODELS}?{TWO_DAYS}")

    assert rows == [
        ["date", "model", "tokens", "cost_usd", "jobs"],
        ["2026-03-09", "m-dear", "1000", "0.01", "1"],
        ["2026-03-09", "(no model)", "70", "0.00", "1"],
        ["2026-03-10", "m-cheap", "3195567", "7.99", "2"],
        ["2026-03-10", "m-dear", "122020", "1.05", "2"],
        ["2026-03-10", "(no model)", "509", "0.00", "2"],
    ]


def test_the_agent_and_model_export_has_a_row_per_agent_model_and_day_from_the_event_log(
    login, two_days
):
    rows = download(login(), f"{BOTH}?{TWO_DAYS}")

    assert rows == [
        ["date", "agent_id", "model", "tokens", "cost_usd", "jobs"],
        ["2026-03-09", "agent-a", "m-dear", "1000", "0.01", "1"],
        ["2026-03-09", "agent-b", "(no model)", "70", "0.00", "1"],
        ["2026-03-10", "agent-a", "(no model)", "500", "0.00", "1"],
        ["2026-03-10", "agent-a", "m-cheap", "3195567", "7.99", "1"],
        ["2026-03-10", "agent-a", "m-dear", "122000", "1.05", "1"],
        ["2026-03-10", "agent-b", "(no model)", "9", "0.00", "1"],
        ["2026-03-10", "agent-b", "m-cheap", "0", "0.00", "1"],
        ["2026-03-10", "agent-b", "m-dear", "20", "0.00", "1"],
    ]


def test_the_whole_range_gives_one_row_per_agent_per_model_and_per_pair(login, two_days):
    client = login()
    whole = f"{TWO_DAYS}&rows=range"

    assert download(client, f"{AGENTS}?{whole}") == [
        ["first_day", "last_day", "agent_id", "tokens", "cost_usd", "jobs"],
        # Rounded once over the range: $9.0389175 + $0.005 is $9.04, where the days' rows
        # (rounded each) add up to $9.05.
        ["2026-03-09", "2026-03-10", "agent-a", "3319067", "9.04", "4"],
        ["2026-03-09", "2026-03-10", "agent-b", "99", "0.00", "4"],
    ]
    assert download(client, f"{MODELS}?{whole}") == [
        ["first_day", "last_day", "model", "tokens", "cost_usd", "jobs"],
        ["2026-03-09", "2026-03-10", "m-cheap", "3195567", "7.99", "2"],
        ["2026-03-09", "2026-03-10", "m-dear", "123020", "1.06", "3"],
        ["2026-03-09", "2026-03-10", "(no model)", "579", "0.00", "3"],
    ]
    response = client.get(f"{AGENTS}?{whole}")
    assert response["Content-Disposition"] == (
        'attachment; filename="agent-usage-2026-03-09-to-2026-03-10-whole-range.csv"'
    )
    both = download(client, f"{BOTH}?{whole}")
    assert both[0] == ["first_day", "last_day", "agent_id", "model", "tokens", "cost_usd", "jobs"]
    assert [row[2:] for row in both[1:]] == [
        ["agent-a", "(no model)", "500", "0.00", "1"],
        ["agent-a", "m-cheap", "3195567", "7.99", "1"],
        ["agent-a", "m-dear", "123000", "1.06", "2"],
        ["agent-b", "(no model)", "79", "0.00", "2"],
        ["agent-b", "m-cheap", "0", "0.00", "1"],
        ["agent-b", "m-dear", "20", "0.00", "1"],
    ]


def test_the_three_exports_add_up_to_the_same_totals(login, two_days):
    client = login()

    def totals(url):
        rows = download(client, f"{url}?{TWO_DAYS}")[1:]
        return [sum(int(row[-3]) for row in rows), sum(int(row[-1]) for row in rows)]

    assert totals(AGENTS) == totals(MODELS) == totals(BOTH) == [3_319_166, 8]


def test_a_reset_changes_no_exported_figure(login, make_allowance, make_model_quota, now):
    make_allowance("agent-a")
    make_model_quota("m", input_price_per_mtok=Decimal("1"))
    run_job("agent-a", "a1", model="m", tokens_in=2_000_000, now=now)
    client = login()
    before = [download(client, f"{url}?{MARCH_10}") for url in (AGENTS, MODELS, BOTH)]

    housekeeping.reset_usage(agent_id="agent-a", now=now)

    assert AgentUsage.objects.get().tokens_used == 0
    after = [download(client, f"{url}?{MARCH_10}") for url in (AGENTS, MODELS, BOTH)]
    assert after == before
    assert after[0][1] == ["2026-03-10", "agent-a", "2000000", "2.00", "1"]


def test_costs_are_rounded_to_the_nearest_cent_halves_up():
    assert [cost_usd(n) for n in (0, 499_999, 500_000, 798_891_750, 123_456_789_000_000)] == [
        "0.00",
        "0.00",
        "0.01",
        "7.99",
        "1234567.89",
    ]


def test_export_days_follow_the_quota_time_zone(settings, login, make_allowance):
    settings.QUOTAS_TIME_ZONE = "Asia/Tokyo"
    make_allowance("agent-a")
    # 23:30 on March 10 in Tokyo, then 00:30 on March 11.
    run_job(
        "agent-a", "late", tokens_in=40, now=datetime.fromisoformat("2026-03-10T14:30:00+00:00")
    )
    run_job(
        "agent-a", "early", tokens_in=2, now=datetime.fromisoformat("2026-03-10T15:30:00+00:00")
    )

    rows = download(login(), f"{AGENTS}?first_day=2026-03-11&last_day=2026-03-11")

    assert rows[1:] == [["2026-03-11", "agent-a", "2", "0.00", "1"]]


def test_without_dates_the_last_30_days_are_exported(login, make_allowance, now):
    make_allowance("agent-a")
    for back in (0, 29, 30):
        run_job("agent-a", f"j{back}", tokens_in=back + 1, now=now - back * DAY)

    with time_machine.travel(now, tick=False):
        response = login().get(AGENTS)

    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row[:3] for row in rows[1:]] == [
        ["2026-02-09", "agent-a", "30"],
        ["2026-03-10", "agent-a", "1"],
    ]
    assert response["Content-Disposition"] == (
        'attachment; filename="agent-usage-2026-02-09-to-2026-03-10.csv"'
    )


def test_exports_read_values_without_making_a_model_instance_per_row(login, two_days, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an export made a model instance")

    for model in (AgentUsage, ModelUsage, UsageEvent):
        monkeypatch.setattr(model, "from_db", classmethod(refuse))
    client = login()

    sizes = [len(download(client, f"{url}?{TWO_DAYS}")) for url in (AGENTS, MODELS, BOTH)]

    assert sizes == [5, 6, 9]
    rows = selectors.daily_usage("agent", first_day=date(2026, 3, 10), last_day=date(2026, 3, 10))
    assert [row[1:] for row in rows] == [
        ("agent-a", 3_318_067, 903_891_750, 3),
        ("agent-b", 29, 10_000, 3),
    ]


def test_export_is_forbidden_to_viewers(login, make_allowance):
    make_allowance()
    client = login("Viewers")
    assert [client.get(url).status_code for url in (AGENTS, MODELS, BOTH)] == [403, 403, 403]


# Bad dates: the dashboard again, with the error beside the date fields


def page_of(response) -> str:
    return response.content.decode()


@pytest.mark.parametrize("url", [AGENTS, MODELS, BOTH])
def test_dates_in_the_wrong_order_show_the_dashboard_with_the_error_beside_them(
    login, two_days, url
):
    before = (AgentUsage.objects.count(), UsageEvent.objects.count())
    response = login().get(f"{url}?first_day=2026-03-10&last_day=2026-03-02")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    page = page_of(response)
    assert "Today (" in page and "Top spenders today" in page  # the dashboard
    errors = page.split('id="qd-export-errors"', 1)[1].split("</ul>", 1)[0]
    assert "The first day (2026-03-10) is after the last day (2026-03-02): swap them." in errors
    # Beside the date fields, which keep what was typed.
    fields = page.split('<fieldset class="qd-fieldset">', 1)[1].split("</fieldset>", 1)[0]
    assert 'id="qd-export-errors"' in fields
    assert 'name="first_day" value="2026-03-10" aria-describedby="qd-export-errors"' in fields
    assert 'name="last_day" value="2026-03-02"' in fields
    assert "Nothing was exported." in fields
    assert (AgentUsage.objects.count(), UsageEvent.objects.count()) == before


def test_a_range_longer_than_allowed_is_refused_the_same_way(login, db):
    response = login().get(f"{AGENTS}?first_day=2016-01-01&last_day=2026-03-10")

    assert response.status_code == 400
    errors = page_of(response).split('id="qd-export-errors"', 1)[1].split("</ul>", 1)[0]
    assert "Export at most 3,660 days at a time; 2016-01-01 to 2026-03-10 is 3,722 days." in errors


@pytest.mark.parametrize(
    "query",
    [
        "first_day=9999-12-31&last_day=9999-12-31",
        "last_day=0001-01-01",
        "first_day=0001-01-01&last_day=0001-01-02",
    ],
)
def test_days_at_the_ends_of_the_calendar_are_refused_not_crashed_on(login, db, query):
    response = login().get(f"{AGENTS}?{query}")

    assert response.status_code == 400
    assert "Enter a day from 1900-01-01 to 9999-12-30." in page_of(response)


def test_a_date_that_does_not_exist_and_an_unknown_choice_are_named(login, db):
    client = login()

    bad_date = client.get(f"{AGENTS}?first_day=2026-02-30")
    bad_rows = client.get(f"{MODELS}?rows=weekly")

    assert (bad_date.status_code, bad_rows.status_code) == (400, 400)
    assert "<li>From: Enter a valid date.</li>" in page_of(bad_date)
    assert "Select a valid choice. weekly is not one of the available choices." in (
        page_of(bad_rows)
    )
