"""``manage.py recompute_metrics``: every buyer's metrics and RFM scores now.

The work is ``segments.metrics``: ``metrics_recompute()`` ranks every buyer afresh
(what the nightly task does); ``--queued`` recomputes only the customers whose
orders or rights changed since the last run (what the queue's task does).
"""

from django.core.management.base import BaseCommand, CommandParser

from segments.metrics import metrics_recompute, metrics_recompute_queued


class Command(BaseCommand):
    help = (
        "Recompute customer metrics and RFM scores for every buyer, or with "
        "--queued only for the customers queued since the last run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queued",
            action="store_true",
            help="Only the customers whose orders or rights changed (the queue).",
        )

    def handle(self, *args, queued: bool, **options) -> None:
        if queued:
            done = metrics_recompute_queued()
            self.stdout.write(f"Recomputed {done} queued customers.")
            return
        result = metrics_recompute()
        self.stdout.write(
            f"Recomputed {result.customers} buyers ({result.rows} rows: "
            f"{result.inserted} new, {result.updated} changed, {result.deleted} "
            f"removed), {result.moves} RFM segment moves, in {result.seconds:.1f} s."
        )
        if result.orders_without_rate:
            self.stderr.write(
                f"{result.orders_without_rate} orders are in a currency with no "
                "rate: they count for recency and frequency, not for money. Add "
                "the rates in the admin (Currency rates)."
            )
