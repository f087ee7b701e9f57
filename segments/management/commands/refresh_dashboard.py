"""``manage.py refresh_dashboard``: the dashboard's pre-aggregated figures now.

The work is ``segments.rollups``: by default the last few days and the snapshot
(what the frequent and nightly tasks do); ``--days N`` the last N days; ``--full``
every day (what the weekly task and the first run ever do).
"""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from segments.rollups import (
    WINDOW_DAYS,
    dashboard_rollups_refresh,
    dashboard_snapshot_refresh,
)


class Command(BaseCommand):
    help = (
        "Rebuild the dashboard's daily figures (the last days, --days N, or --full "
        "for every day) and its snapshot (cohorts, lifetime values, RFM mix, "
        "consent coverage)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=WINDOW_DAYS,
            help=f"Rebuild the last N days, today included (default {WINDOW_DAYS}).",
        )
        parser.add_argument(
            "--full",
            action="store_true",
            help="Rebuild every day since the first order.",
        )
        parser.add_argument(
            "--no-snapshot",
            action="store_true",
            help="Leave the snapshot (cohorts, lifetime values, ...) as it is.",
        )

    def handle(self, *args, days: int, full: bool, no_snapshot: bool, **options):
        if days < 1:
            raise CommandError("--days must be at least 1.")
        result = dashboard_rollups_refresh(days=None if full else days)
        scope = (
            "every day"
            if result.first_day is None
            else f"the days from {result.first_day:%Y-%m-%d}"
        )
        self.stdout.write(
            f"Rebuilt {scope}: {result.rows} rows in {result.seconds:.1f} s."
        )
        if not no_snapshot:
            snapshot = dashboard_snapshot_refresh()
            self.stdout.write(
                f"Snapshot of {snapshot.rows} scopes in {snapshot.seconds:.1f} s."
            )
