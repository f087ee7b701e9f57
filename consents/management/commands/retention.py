from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from consents.retention import STEPS, retention_apply

LABELS = {
    "leads_erased": gettext_lazy("Leads erased (no order, no consent, inactive)"),
    "unconfirmed_signups_deleted": gettext_lazy("Unconfirmed sign-ups deleted"),
    "events_deleted": gettext_lazy("Behaviour events deleted"),
    "visitors_deleted": gettext_lazy("Visitors deleted"),
    "access_log_kept": gettext_lazy(
        "Access log entries past retention, kept (append-only)"
    ),
}


class Command(BaseCommand):
    help = gettext_lazy(
        "Apply the retention policies (settings.RETENTION). "
        "A dry run unless --apply is given."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--apply",
            action="store_true",
            help=gettext_lazy("Remove the data; without it, only count."),
        )

    def handle(self, *args, apply: bool, **options):
        result = retention_apply(dry_run=not apply)
        if not apply:
            self.stdout.write(
                _("Dry run: nothing was changed. Counts of what would go:")
            )
        for step in STEPS:
            self.stdout.write(f"{LABELS[step]}: {result[step]}")
