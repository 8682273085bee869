"""What the new columns of 0007 hold for the days before it, recomputed from the books.

An agent's consumption and spend of a day are the sums of its events' charged tokens, costs
and starts (a reset's event moves none of them), exactly what reconcile_usage will compare
them with. A refusal count's last refusal is taken to be its row's last update.
"""

from django.db import migrations

AGENT_EVENTS = "('job_started', 'job_completed', 'job_failed', 'job_cancelled', 'usage_reset')"
SUM_OF = """COALESCE((SELECT SUM(e.{delta}) FROM quotas_usageevent e
    WHERE e.agent_id = quotas_agentusage.agent_id
      AND e.period_start = quotas_agentusage.period_start
      AND e.event IN {events}), 0)"""

FORWARD = [
    "UPDATE quotas_usageevent SET jobs_run_delta = 1 WHERE event = 'job_started'",
    "UPDATE quotas_agentusage SET "
    + ", ".join(
        f"{counter} = {SUM_OF.format(delta=delta, events=AGENT_EVENTS)}"
        for counter, delta in [
            ("tokens_consumed", "model_tokens_delta"),
            ("cost_microcents", "cost_delta_microcents"),
            ("jobs_run", "jobs_run_delta"),
        ]
    ),
    "UPDATE quotas_refusalcount SET last_refused_at = updated_at",
]


class Migration(migrations.Migration):
    dependencies = [("quotas", "0007_consumption_refusal_details_change_log")]

    operations = [migrations.RunSQL(FORWARD, reverse_sql=migrations.RunSQL.noop)]
