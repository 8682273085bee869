import sys

from django.core.management.base import BaseCommand

from quotas.reconcile import reconcile_usage


class Command(BaseCommand):
    help = (
        "Recompute every usage counter from the usage event log (and the last hour's jobs per "
        "model and minute from the job ledger) and print any drift. Exits "
        "with status 1 if there was drift; with --fix, also makes the counters agree."
    )

    def add_arguments(self, parser):
        parser.add_argument("--fix", action="store_true", help="Repair the drift it finds.")

    def handle(self, *args, fix=False, **options):
        drift = reconcile_usage(fix=fix)
        for difference in drift:
            self.stdout.write(str(difference))
        if not drift:
            self.stdout.write(
                "No drift: every usage counter agrees with the event log and the job ledger."
            )
            return
        verb = "Repaired" if fix else "Found"
        self.stdout.write(f"{verb} {len(drift)} drifted counters.")
        sys.exit(1)
