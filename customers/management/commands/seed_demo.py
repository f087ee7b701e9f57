"""``manage.py seed_demo``: realistic demo data; the work is in ``customers.demo``."""

from django.core.management.base import BaseCommand, CommandParser

from customers.demo import DEMO_ADMIN_USERNAME, DEMO_PASSWORD, DEMO_USERS, demo_seed


class Command(BaseCommand):
    help = (
        "Seed demo data: two stores, customers with addresses and identities, a "
        "catalogue, three years of orders, and one staff user per role."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--customers", type=int, default=2000, help="How many customers to add."
        )
        parser.add_argument(
            "--seed", type=int, default=None, help="Random seed, for reproducible data."
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Do nothing when the database holds customers already.",
        )

    def handle(
        self, *args, customers: int, seed: int | None, if_empty: bool, **options
    ):
        verbose = options["verbosity"] > 0
        summary = demo_seed(
            customers=customers,
            seed=seed,
            if_empty=if_empty,
            log=(lambda message: self.stdout.write(message)) if verbose else None,
        )
        if verbose:
            if not summary.skipped:
                users = ", ".join([*DEMO_USERS, DEMO_ADMIN_USERNAME])
                self.stdout.write(f"Demo users: {users}; password: {DEMO_PASSWORD}")
            self.stdout.write(self.style.SUCCESS(str(summary)))
