from django.core.management.base import BaseCommand, CommandError

from quotas import housekeeping
from quotas.changelog import Actor
from quotas.exceptions import QuotaError


class Command(BaseCommand):
    help = (
        "Close out finished quota days, expire overdue jobs and delete per-minute job counts "
        "that no sliding hour can reach; with --agent, also start that "
        "agent's day afresh. Safe to run at any time and any number of times: usage of a day "
        "that is over never counts against today whether or not this runs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--agent", metavar="ID", help="Also reset this agent's usage today.")
        parser.add_argument(
            "--reason", default="", help="With --agent: why, for the change log (optional)."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Say what would change; change nothing."
        )

    def handle(self, *args, agent=None, dry_run=False, reason="", **options):
        actor = Actor.command("reset_daily_usage")
        try:
            # The reset goes first: an unknown agent stops the command before anything changed.
            reset = (
                housekeeping.reset_usage(
                    agent_id=agent, dry_run=dry_run, actor=actor, reason=reason
                )
                if agent
                else None
            )
        except QuotaError as exc:
            raise CommandError(exc.message) from None
        closed = housekeeping.close_finished_days(dry_run=dry_run)
        expired = housekeeping.expire_overdue_jobs(agent_id=agent, dry_run=dry_run)
        pruned = housekeeping.prune_minute_usage(dry_run=dry_run)
        would = "would " if dry_run else ""
        summary = (
            f"{would}close {closed['agent']} agent, {closed['model']} model and {closed['repo']} "
            f"repo usage days; {would}expire {expired} overdue jobs; {would}delete {pruned} "
            "per-minute job counts older than an hour"
        )
        if agent:
            summary += f"; {would}reset today's usage of {agent} ({reset} usage row)"
        self.stdout.write(("Dry run: " if dry_run else "Done: ") + summary + ".")
