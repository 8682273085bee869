"""dashboard_context(): today's totals, who is close to a limit, top spenders, 14, 30 or 90
days of history, the charts and their tables of numbers, the fragment that renders them, the
page's range control, and a query count that does not grow."""

import itertools
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.admin import AdminSite
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.urls import path

from quotas import housekeeping, services
from quotas.charts import CHAR_WIDTH, OTHER_COLOUR, SERIES_COLOURS, day_labels
from quotas.dashboard import dashboard_context, history_days
from quotas.display import dollars_from_microcents as format_dollars
from quotas.models import AgentAllowance, AgentUsage, ModelQuota, ModelUsage, RefusalCount
from quotas.periods import day_start
from tests.conftest import run_job

DAY = timedelta(days=1)


def chart(context: dict, index: int = 0) -> str:
    """The SVG of the dashboard's chart ``index``: the tokens chart, then the models'."""
    return str(context["charts"][index]["svg"])


# An admin site of our own, so the fragment's links can be tested whatever the project's
# admin registers (tests that need it point ROOT_URLCONF at this module).
site = AdminSite(name="admin")
site.register(AgentAllowance)
site.register(ModelQuota)
site.register(RefusalCount)
urlpatterns = [path("admin/", site.urls)]


@pytest.fixture
def priced_model(make_model_quota):
    # $5 per million input tokens and $25 per million output tokens: 100,000 in and 22,000 out
    # cost $0.50 + $0.55 = $1.05.
    return make_model_quota(
        "claude-sonnet",
        input_price_per_mtok=Decimal("5"),
        output_price_per_mtok=Decimal("25"),
    )


@pytest.fixture
def busy_day(make_allowance, priced_model, now):
    """Three agents' day: 134,345 tokens, $1.05, 4 jobs started and 2 refusals."""
    make_allowance("agent-a", daily_token_limit=200_000)
    make_allowance("agent-b", daily_job_limit=4)
    make_allowance("agent-d", daily_job_limit=1)
    run_job("agent-a", "a1", model="claude-sonnet", tokens_in=100_000, tokens_out=22_000, now=now)
    run_job("agent-b", "b1", model="gpt-x", tokens_in=12_000, tokens_out=345, now=now)
    services.dispatch(agent_id="agent-b", job_id="b2", now=now)
    services.dispatch(agent_id="agent-d", job_id="d1", now=now)
    assert not services.dispatch(agent_id="agent-d", job_id="d2", now=now).result.allowed
    assert not services.check(agent_id="agent-d", now=now).allowed
    # Yesterday counts in the history, not today.
    run_job("agent-a", "old", model="claude-sonnet", tokens_in=1_000, now=now - DAY)


def test_totals_are_todays_tokens_cost_jobs_and_refusals(busy_day, now):
    context = dashboard_context(now=now)

    assert context["totals"] == {
        "tokens": 134_345,
        "cost_microcents": 105_000_000,
        "jobs_run": 4,
        "refusals": 2,
    }
    assert [card["value"] for card in context["total_cards"]] == ["134,345", "$1.05", "4", "2"]
    assert (context["time_zone"], context["today"], context["today_display"]) == (
        "UTC",
        date(2026, 3, 10),
        "Mar 10, 2026",
    )
    assert context["has_usage_today"] is True


def test_an_empty_day_has_zero_totals_and_says_so(db, now):
    context = dashboard_context(now=now)

    assert context["totals"] == dict.fromkeys(
        ["tokens", "cost_microcents", "jobs_run", "refusals"], 0
    )
    assert (context["has_usage_today"], context["has_history"]) == (False, False)
    assert context["closest_agents"] == context["top_agents"] == context["top_models"] == []
    html = render_to_string("admin/quotas/dashboard.html", context)
    assert "No usage yet today." in html
    assert "No usage in the last 14 days." in html
    assert "No agent has a daily token or job limit." in html
    assert "No model has a daily token budget or cost ceiling." in html


def test_agents_are_ordered_by_the_largest_share_of_any_limit_used(make_allowance, now):
    make_allowance("*", daily_token_limit=10)
    make_allowance("agent-over", daily_token_limit=1_000)
    make_allowance("agent-both", daily_token_limit=1_000, daily_job_limit=2)
    make_allowance("agent-tokens", daily_token_limit=1_000)
    make_allowance("agent-jobs", daily_job_limit=4)
    paused = make_allowance("agent-paused", daily_token_limit=1_000)
    make_allowance("agent-idle", daily_token_limit=1_000)
    make_allowance("agent-unlimited")
    run_job("agent-over", "j1", tokens_in=1_200, now=now)
    run_job("agent-both", "j1", tokens_in=500, now=now)
    run_job("agent-both", "j2", now=now)
    run_job("agent-tokens", "j1", tokens_in=850, now=now)
    for job in ("j1", "j2", "j3"):
        run_job("agent-jobs", job, now=now)
    run_job("agent-paused", "j1", tokens_in=100, now=now)
    run_job("agent-unlimited", "j1", tokens_in=50_000, now=now)
    paused.paused = True
    paused.save()

    rows = dashboard_context(now=now)["closest_agents"]

    assert [(r["name"], r["percent"], r["progress"], r["status"]) for r in rows] == [
        ("agent-over", 120, 100, "exceeded"),
        ("agent-both", 100, 100, "exceeded"),
        ("agent-tokens", 85, 85, "warning"),
        # The job limit never warns (as in the check), but it does count for the order.
        ("agent-jobs", 75, 75, "ok"),
        ("agent-paused", 10, 10, "paused"),
        ("agent-idle", 0, 0, "ok"),
    ]
    assert rows[1]["detail"] == "500 of 1,000 tokens; 2 of 2 jobs"
    assert rows[1]["percent_display"] == "100%"
    assert [r["status_label"] for r in rows] == [
        "Exceeded",
        "Exceeded",
        "Warning",
        "OK",
        "Paused",
        "OK",
    ]
    assert rows[0]["pk"] == AgentAllowance.objects.get(agent_id="agent-over").pk


def test_at_most_ten_agents_are_listed_as_closest(make_allowance, now):
    for n in range(12):
        make_allowance(f"agent-{n:02}", daily_token_limit=100)
        run_job(f"agent-{n:02}", "j1", tokens_in=n, now=now)

    rows = dashboard_context(now=now)["closest_agents"]

    assert [r["name"] for r in rows] == [f"agent-{n:02}" for n in range(11, 1, -1)]


def test_models_are_ordered_by_the_largest_share_of_tokens_or_cost(
    make_allowance, make_model_quota, now
):
    make_allowance("agent-1")
    make_model_quota(
        "model-cost",
        cost_ceiling=100,
        input_price_per_mtok=Decimal("5"),
        output_price_per_mtok=Decimal("25"),
    )
    make_model_quota("model-tokens", daily_token_budget=10_000)
    make_model_quota("model-quiet", daily_token_budget=100_000, cost_ceiling=500)
    make_model_quota("model-unlimited")
    run_job("agent-1", "j1", model="model-cost", tokens_in=100_000, tokens_out=22_000, now=now)
    run_job("agent-1", "j2", model="model-tokens", tokens_in=9_000, now=now)
    run_job("agent-1", "j3", model="model-quiet", tokens_in=1_000, now=now)
    run_job("agent-1", "j4", model="model-unlimited", tokens_in=10**6, now=now)

    rows = dashboard_context(now=now)["closest_models"]

    assert [(r["name"], r["percent"], r["progress"], r["status"]) for r in rows] == [
        ("model-cost", 105, 100, "exceeded"),
        ("model-tokens", 90, 90, "warning"),
        ("model-quiet", 1, 1, "ok"),
    ]
    assert rows[0]["detail"] == "$1.05 of $1.00 spent"
    assert rows[2]["detail"] == "1,000 of 100,000 tokens; $0.00 of $5.00 spent"


def test_top_spenders_are_ranked_by_money_with_tokens_and_jobs_beside_it(
    busy_day, make_model_quota, now
):
    make_model_quota("cheap", input_price_per_mtok=Decimal("1"))
    run_job("agent-b", "b3", model="cheap", tokens_in=500_000, now=now)
    # Usage of an agent whose allowance has since been deleted still shows, without a link.
    AgentUsage.objects.create(agent_id="gone", period_start=day_start(now), tokens_consumed=7)

    context = dashboard_context(now=now)

    # agent-b used four times the tokens of agent-a, for half the money.
    assert [
        (r["name"], r["cost_display"], r["tokens_display"], r["jobs"], r["pk"] is None)
        for r in context["top_agents"]
    ] == [
        ("agent-a", "$1.05", "122,000", 1, False),
        ("agent-b", "$0.50", "512,345", 3, False),
        ("gone", "$0.00", "7", 0, True),
    ]
    assert [
        (r["name"], r["cost_display"], r["tokens"], r["jobs"]) for r in context["top_models"]
    ] == [
        ("claude-sonnet", "$1.05", 122_000, 1),
        ("cheap", "$0.50", 500_000, 1),
        ("gpt-x", "$0.00", 12_345, 1),
    ]
    top_agents = next(t for t in context["tables"] if t["title"] == "Top spenders today: agents")
    assert top_agents["columns"] == ["Cost", "Tokens", "Jobs"]
    assert top_agents["rows"][0]["cells"] == ["$1.05", "122,000", "1"]


def test_a_reset_changes_neither_totals_nor_top_spenders_nor_history(busy_day, now):
    before = dashboard_context(now=now)

    assert housekeeping.reset_usage(now=now) == 3

    after = dashboard_context(now=now)
    assert AgentUsage.objects.filter(period_start=day_start(now), tokens_used__gt=0).count() == 0
    for key in ("totals", "top_agents", "top_models", "history"):
        assert after[key] == before[key], key
    assert after["totals"]["tokens"] == 134_345
    # What counts against the limits did go back: nobody is close to one any more.
    assert [r["percent"] for r in after["closest_agents"]] == [0, 0, 0]


def test_history_has_fourteen_days_oldest_first_with_empty_days_as_zero(
    make_allowance, priced_model, now
):
    make_allowance("agent-1")
    for back, tokens_in in ((15, 9), (14, 8), (13, 1_000), (5, 300), (1, 20), (0, 100_000)):
        day = now - back * DAY
        run_job("agent-1", f"j{back}", model="claude-sonnet", tokens_in=tokens_in, now=day)

    history = dashboard_context(now=now)["history"]

    assert [d["date"] for d in history["days"]] == [date(2026, 2, 25) + n * DAY for n in range(14)]
    assert history["days"][0]["label"] == "Feb 25"
    assert history["days"][-1]["label"] == "Mar 10"
    tokens = [0] * 14
    tokens[0], tokens[8], tokens[12], tokens[13] = 1_000, 300, 20, 100_000
    assert [d["tokens"] for d in history["days"]] == tokens
    # $5 per million tokens is 500 microcents a token.
    assert [d["cost_microcents"] for d in history["days"]] == [t * 500 for t in tokens]


def test_history_splits_tokens_into_the_top_five_agents_and_the_rest(
    make_allowance, make_model_quota, now
):
    make_allowance("*")
    for n, model in enumerate(("m1", "m2", "m3", "m4", "m5", "m6")):
        make_model_quota(model, input_price_per_mtok=Decimal(n + 1))
    # agent-6 uses most over the 14 days, agent-0 least; agent-old only before the window.
    for n in range(7):
        run_job(f"agent-{n}", "today", tokens_in=100 * (n + 1), now=now)
        run_job(
            f"agent-{n}", "earlier", model=f"m{n % 6 + 1}", tokens_in=1_000_000, now=now - 3 * DAY
        )
    run_job("agent-old", "long-ago", tokens_in=10**9, now=now - 20 * DAY)

    context = dashboard_context(now=now)
    history = context["history"]

    assert [a["agent_id"] for a in history["agents"]] == [f"agent-{n}" for n in (6, 5, 4, 3, 2)]
    assert history["agents"][0]["tokens"][-1] == 700
    assert history["agents"][0]["tokens"][10] == 1_000_000
    assert history["agents"][0]["total"] == 1_000_700
    assert history["other_agent_tokens"][-1] == 100 + 200
    assert history["other_agent_tokens"][10] == 2_000_000
    assert sum(history["other_agent_tokens"]) == 2_000_300
    # Cost by model: m6 served agent-5 ($6), ..., m1 agent-0 and agent-6 ($1 + $1) and m2
    # agent-1 ($2); the tie goes to the name that sorts first.
    assert [(m["model"], m["total"]) for m in history["models"]] == [
        ("m6", 600 * 10**6),
        ("m5", 500 * 10**6),
        ("m4", 400 * 10**6),
        ("m3", 300 * 10**6),
        ("m1", 200 * 10**6),
    ]
    assert history["models"][0]["cost_microcents"][10] == 600 * 10**6
    assert history["models"][0]["cost_microcents"][-1] == 0
    svg = chart(context)
    assert "<title>other agents, Mar 10: 300 tokens</title>" in svg
    assert ">other agents<" in svg


def test_the_chart_is_accessible_svg_with_separators_dollars_and_a_legend(busy_day, now):
    svg = chart(dashboard_context(now=now))

    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 460 ')
    assert 'role="img"' in svg
    assert 'aria-label="Tokens and cost per day, Feb 25 to Mar 10"' in svg
    assert "<title>Tokens and cost per day, Feb 25 to Mar 10</title>" in svg
    assert 'width="100%"' in svg
    # Tokens peak at 134,345: the left axis goes to 200,000 in steps of 50,000; the cost
    # peaks at $1.05: the right axis goes to $2.00 in steps of $0.50.
    for label in (">50,000<", ">200,000<", ">$0.50<", ">$2.00<", ">Tokens<", ">Cost<"):
        assert label in svg
    for legend in (">agent-a<", ">agent-b<", ">cost per day<"):
        assert legend in svg
    assert "other agents" not in svg  # only two agents used tokens: there are no others
    assert "<title>agent-b, Mar 10: 12,345 tokens</title>" in svg
    assert "<title>Mar 10: $1.05</title>" in svg
    assert "<script" not in svg
    assert svg.count("http") == 1  # the SVG namespace; nothing is loaded from elsewhere


def test_days_are_labelled_by_number_with_the_month_where_it_starts_and_today_marked(db, now):
    context = dashboard_context(now=now)

    labels = day_labels(context["history"]["days"], slot=25)

    assert labels[:5] == [("25", "Feb"), ("26", ""), ("27", ""), ("28", ""), ("1", "Mar")]
    assert labels[-2:] == [("9", ""), ("10", "today")]
    svg = chart(context)
    for text in (">25<", ">Feb<", ">1<", ">Mar<", ">today<"):
        assert text in svg


@pytest.mark.parametrize(("days", "step"), [(14, 1), (30, 2), (90, 7)])
def test_day_labels_are_thinned_out_from_today_so_that_none_overlap(now, days, step):
    points = [{"date": day} for day, _ in history_days(now, days)]
    slot = 340 / days  # a 460-unit chart's plot, between six-figure and dollar axes

    labels = day_labels(points, slot)

    numbered = [index for index, (number, _) in enumerate(labels) if number]
    assert numbered[-1] == days - 1
    assert {b - a for a, b in itertools.pairwise(numbered)} == {step}
    assert labels[-1] == ("10", "today")
    for line in (0, 1):
        placed = [(i * slot, len(label[line]) * CHAR_WIDTH) for i, label in enumerate(labels)]
        placed = [(x, width) for x, width in placed if width]
        for (x1, w1), (x2, w2) in itertools.pairwise(placed):
            assert x2 - x1 >= (w1 + w2) / 2, (line, x1, x2)
    # Each month is named under its first numbered day, but for one so close to "today" that
    # it would touch it (at 90 days, "Mar" under the 3rd, a week before).
    months = [below for _, below in labels if below and below != "today"]
    assert months == {14: ["Feb", "Mar"], 30: ["Feb", "Mar"], 90: ["Dec", "Jan", "Feb"]}[days]


def test_a_month_name_that_would_touch_today_is_left_out(now):
    points = [{"date": day} for day, _ in history_days(now - 8 * DAY, 14)]  # to March 2

    labels = day_labels(points, slot=25)

    assert labels[-3:] == [("28", ""), ("1", ""), ("2", "today")]
    assert labels[0] == ("17", "Feb")


def test_chart_labels_are_escaped(db, now):
    # The validators never let such names in; rows written straight to the database still
    # must not be able to inject markup into the admin.
    hostile_agent = '<script>alert("x")</script>'
    AgentUsage.objects.create(
        agent_id=hostile_agent, period_start=day_start(now), tokens_used=5, tokens_consumed=5
    )
    ModelUsage.objects.create(
        model="a<b&c", period_start=day_start(now), tokens_used=5, cost_microcents=10**6
    )

    context = dashboard_context(now=now)
    html = render_to_string("admin/quotas/dashboard.html", context)

    for markup in (chart(context), chart(context, 1), html):
        assert "<script>" not in markup
        assert "a<b" not in markup
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in chart(context)
    assert ">a&lt;b&amp;c<" in chart(context, 1)


def test_long_names_are_shortened_in_the_legend_but_kept_whole_in_the_tooltip(make_allowance, now):
    name = "agent-" + "x" * 60
    make_allowance(name)
    run_job(name, "j1", tokens_in=10, now=now)

    svg = chart(dashboard_context(now=now))

    assert f"<title>{name}</title>" in svg
    shortened = re.search(r">(agent-x+)\u2026<", svg)
    assert shortened is not None
    assert 10 < len(shortened[1]) < 30


def test_dollars_round_to_the_nearest_cent_with_separators():
    assert [format_dollars(n) for n in (0, 499_999, 500_000, 105_000_000, 123_456_789_000_000)] == [
        "$0.00",
        "$0.00",
        "$0.01",
        "$1.05",
        "$1,234,567.89",
    ]


def test_days_follow_the_quota_time_zone(settings, make_allowance):
    settings.QUOTAS_TIME_ZONE = "Asia/Tokyo"
    make_allowance("agent-1")
    now = datetime(2026, 3, 10, 16, 0, tzinfo=UTC)  # 01:00 on March 11 in Tokyo
    run_job("agent-1", "late", tokens_in=40, now=datetime(2026, 3, 10, 14, 59, tzinfo=UTC))
    run_job("agent-1", "early", tokens_in=2, now=datetime(2026, 3, 10, 15, 0, tzinfo=UTC))

    context = dashboard_context(now=now)

    assert (context["today"], context["time_zone"]) == (date(2026, 3, 11), "Asia/Tokyo")
    assert context["totals"]["tokens"] == 2
    assert [(d["label"], d["tokens"]) for d in context["history"]["days"][-2:]] == [
        ("Mar 10", 40),
        ("Mar 11", 2),
    ]
    assert history_days(now)[-1] == (date(2026, 3, 11), datetime(2026, 3, 10, 15, tzinfo=UTC))
    html = render_to_string("admin/quotas/dashboard.html", context)
    assert "Today (Mar 11, 2026, Asia/Tokyo)" in html


def test_history_days_across_a_dst_change_start_at_local_midnight(settings):
    settings.QUOTAS_TIME_ZONE = "Europe/Berlin"
    days = history_days(datetime(2026, 3, 30, 12, tzinfo=UTC))

    # Clocks went forward on March 29: midnight moves from 23:00 to 22:00 UTC.
    assert days[-3:] == [
        (date(2026, 3, 28), datetime(2026, 3, 27, 23, tzinfo=UTC)),
        (date(2026, 3, 29), datetime(2026, 3, 28, 23, tzinfo=UTC)),
        (date(2026, 3, 30), datetime(2026, 3, 29, 22, tzinfo=UTC)),
    ]


def add_agents(count, now, *, start=0):
    """Agents with limits, a model each, and usage on every one of the last 20 days."""
    AgentAllowance.objects.bulk_create(
        AgentAllowance(agent_id=f"bulk-{n}", daily_token_limit=10**6, daily_job_limit=100)
        for n in range(start, start + count)
    )
    ModelQuota.objects.bulk_create(
        ModelQuota(model=f"model-{n}", daily_token_budget=10**7, cost_ceiling=10**4)
        for n in range(start, start + count)
    )
    days = [day_start(now - back * DAY) for back in range(20)]
    AgentUsage.objects.bulk_create(
        AgentUsage(
            agent_id=f"bulk-{n}",
            period_start=day,
            tokens_used=n + 1,
            jobs_started=1,
            tokens_consumed=n + 1,
            cost_microcents=n,
            jobs_run=1,
        )
        for n in range(start, start + count)
        for day in days
    )
    ModelUsage.objects.bulk_create(
        ModelUsage(model=f"model-{n}", period_start=day, tokens_used=n + 1, cost_microcents=n)
        for n in range(start, start + count)
        for day in days
    )


def test_query_count_does_not_grow_with_agents_models_or_days(
    busy_day, now, django_assert_num_queries
):
    add_agents(3, now)
    with CaptureQueriesContext(connection) as few:
        small = dashboard_context(now=now)
    add_agents(57, now, start=3)

    with django_assert_num_queries(len(few)):
        large = dashboard_context(now=now)
    with django_assert_num_queries(len(few)):
        quarter = dashboard_context(now=now, days=90)

    # The day sums (tokens, cost and jobs in one), refusals, the two "closest" tables, the
    # two top spenders tables, and the top five agents' and models' days. One less than before
    # consumption was kept per agent: the cost per day is now summed with the tokens.
    assert len(few) == 8
    assert (len(small["closest_agents"]), len(large["closest_agents"])) == (6, 10)
    assert len(large["history"]["agents"]) == 5
    assert len(quarter["history"]["days"]) == 90
    assert quarter["history"]["days"][-20]["tokens"] == sum(n + 1 for n in range(60))


def test_fragment_renders_totals_tables_statuses_and_chart(busy_day, make_allowance, now):
    make_allowance("agent-near", daily_token_limit=1_000)
    run_job("agent-near", "j1", tokens_in=900, now=now)
    paused = make_allowance("agent-paused", daily_token_limit=1_000, paused=True)
    assert paused.paused

    html = render_to_string("admin/quotas/dashboard.html", dashboard_context(now=now))

    assert "Today (Mar 10, 2026, UTC)" in html
    assert ">135,245<" in html  # 134,345 + 900 tokens
    assert ">$1.05<" in html
    assert 'class="qd-status qd-status-warning">Warning<' in html
    assert 'class="qd-status qd-status-exceeded">Exceeded<' in html  # agent-d: 1 of 1 jobs
    assert 'class="qd-status qd-status-paused">Paused<' in html
    assert 'class="qd-status qd-status-ok">OK<' in html  # agent-a: 122,000 of 200,000
    assert '<progress max="100" value="90"' in html
    assert "Agents closest to their limits" in html
    assert "Models closest to their limits" in html
    assert "Top spenders today: agents" in html
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in html
    assert "No usage yet today." not in html
    assert "<html" not in html and "{%" not in html


def test_fragment_links_names_to_their_admin_change_pages(
    settings, busy_day, make_model_quota, now
):
    settings.ROOT_URLCONF = __name__
    quota = make_model_quota("model-capped", daily_token_budget=100)
    agent = AgentAllowance.objects.get(agent_id="agent-a")

    html = render_to_string("admin/quotas/dashboard.html", dashboard_context(now=now))

    assert f'<a href="/admin/quotas/agentallowance/{agent.pk}/change/">agent-a</a>' in html
    assert f'<a href="/admin/quotas/modelquota/{quota.pk}/change/">model-capped</a>' in html
    # gpt-x has no quota: its name is shown without a link.
    assert "gpt-x" in html
    assert "gpt-x</a>" not in html


def test_the_refusals_tile_links_to_the_refusals_page(settings, busy_day, now):
    settings.ROOT_URLCONF = __name__

    context = dashboard_context(now=now)
    html = render_to_string("admin/quotas/dashboard.html", context)

    assert context["total_cards"][3] == {
        "label": "Refusals",
        "value": "2",
        "url": "/admin/quotas/refusalcount/",
    }
    assert '<a class="qd-card qd-card-link" href="/admin/quotas/refusalcount/">' in html
    assert "See each refusal" in html


# Pictures anyone can read


def contrast(foreground: str, background: str = "#FFFFFF") -> float:
    """WCAG 2 contrast ratio of two #RRGGBB colours."""

    def luminance(colour):
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_chart_colours_reach_3_to_1_against_white():
    ratios = {colour: round(contrast(colour), 2) for colour in (*SERIES_COLOURS, OTHER_COLOUR)}

    assert min(ratios.values()) >= 3, ratios
    assert len(set(ratios)) == 6


def test_stacked_segments_are_kept_apart_by_a_gap(make_allowance, now):
    for n in range(7):
        make_allowance(f"agent-{n}")
        run_job(f"agent-{n}", "j", tokens_in=1_000 * (n + 1), now=now)

    svg = chart(dashboard_context(now=now))

    bars = svg.split('<g class="qd-bars">', 1)[1].split("</g>", 1)[0]
    segments = [
        (float(y), float(height))
        for y, height in re.findall(
            r'<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"', bars
        )
    ]
    assert len(segments) == 6  # five agents and the others, today
    # Drawn from the bottom up: each segment ends at least 1.5 units below the next one's top.
    for (lower_y, _), (upper_y, upper_height) in itertools.pairwise(segments):
        assert lower_y - (upper_y + upper_height) >= 1.5


def test_every_chart_has_its_numbers_as_a_table(make_allowance, make_model_quota, now):
    make_allowance("agent-1")
    make_model_quota("m", input_price_per_mtok=Decimal("5"))
    run_job("agent-1", "j1", model="m", tokens_in=200_000, now=now - 2 * DAY)
    run_job("agent-1", "j2", tokens_in=7, now=now)

    context = dashboard_context(now=now, days=30)
    html = render_to_string("admin/quotas/dashboard.html", context)

    assert html.count('<details class="qd-numbers">') == 2
    tables = re.findall(r"<table class=\"qd-table\">(.*?)</table>", html, re.S)[-2:]
    tokens, models = tables
    assert "<caption>Tokens and cost per day, Feb 9, 2026 to Mar 10, 2026</caption>" in tokens
    headers = re.findall(r'<th scope="col"[^>]*>([^<]*)</th>', tokens)
    assert headers == ["Day", "agent-1 (tokens)", "All agents (tokens)", "Cost"]
    rows = re.findall(r'<tr><th scope="row">([^<]*)</th>(.*?)</tr>', tokens, re.S)
    cells = {day: re.findall(r'<td class="qd-num">([^<]*)</td>', rest) for day, rest in rows}
    assert len(cells) == 31  # 30 days and the totals
    assert cells["Mar 8, 2026"] == ["200,000", "200,000", "$1.00"]
    assert cells["Mar 10, 2026"] == ["7", "7", "$0.00"]
    assert cells["Feb 9, 2026"] == ["0", "0", "$0.00"]
    assert cells["Total"] == ["200,007", "200,007", "$1.00"]
    model_rows = re.findall(r'<tr><th scope="row">([^<]*)</th>(.*?)</tr>', models, re.S)
    assert [(day, re.findall(r">([^<]*)</td>", rest)) for day, rest in model_rows[-4:-1]] == [
        ("Mar 8, 2026", ["$1.00"]),
        ("Mar 9, 2026", ["$0.00"]),
        ("Mar 10, 2026", ["$0.00"]),
    ]


# The page: its range control and the exports' form


def test_the_dashboard_page_shows_the_range_asked_for(login, make_allowance, now):
    make_allowance("agent-1")
    run_job("agent-1", "old", tokens_in=5, now=now - 60 * DAY)
    client = login()

    with time_machine.travel(now, tick=False):
        default, quarter = client.get("/admin/"), client.get("/admin/?days=90")

    assert (default.status_code, quarter.status_code) == (200, 200)
    assert "No usage in the last 14 days." in default.content.decode()
    page = quarter.content.decode()
    assert "The last 90 days" in page
    assert '<option value="90" selected>90 days</option>' in page
    assert "Jan 9, 2026" in page  # the day of the old job, in the table of numbers


@pytest.mark.parametrize("asked", ["7", "abc", "14.0", "-30"])
def test_a_range_not_offered_shows_14_days_and_says_why(login, db, asked):
    response = login().get(f"/admin/?days={asked}")

    assert response.status_code == 400
    page = response.content.decode()
    assert "The last 14 days" in page
    error = page.split('id="qd-range-error"', 1)[1].split("</p>", 1)[0]
    assert f"Select a valid choice. {asked} is not one of the available choices." in error
    assert "Choose 14, 30 or 90 days." in error
