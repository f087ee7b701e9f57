"""Storage limitation (Art. 5(1)(e)): what is kept how long, applied every night.

One step per policy in ``settings.RETENTION``. Each step counts what it would
remove and, unless it is a dry run, removes it: through the erasure and
double opt-in services where those carry rules, set-based in batches where the
rows are plain behaviour data. The access log is append-only in the database and
is never deleted here; its old rows are only counted.
"""

from __future__ import annotations

import datetime as dt
import logging

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from psycopg import sql

from consents.double_opt_in import double_opt_in_purge
from consents.erasure import customer_erase
from consents.models import AccessLog, ConsentState, DataSubjectRequest
from customers.models import Customer, Event, Visitor
from orders.models import Order

logger = logging.getLogger(__name__)

# Rows deleted per statement: each batch is its own short transaction, so the
# nightly run never holds a lock on millions of rows nor bloats one transaction.
DELETE_BATCH = 50_000

# The result's keys, in the order the steps run.
STEPS = (
    "leads_erased",
    "unconfirmed_signups_deleted",
    "events_deleted",
    "visitors_deleted",
    "access_log_kept",
)


def months_before(moment: dt.datetime, months: int) -> dt.datetime:
    """The same local day and time ``months`` calendar months earlier.

    A day the earlier month lacks (31 March - 1 month) becomes its last day.
    """
    local = timezone.localtime(moment)
    earlier = local.replace(tzinfo=None) - relativedelta(months=months)
    return timezone.make_aware(earlier, local.tzinfo)


def retention_stale_leads(*, before: dt.datetime) -> QuerySet:
    """Leads to erase: no order, no consent now, not created or seen since ``before``.

    Restricted customers (Art. 18: keep, but do not process) and customers with an
    open data-subject request are left alone: erasing them would defeat the request.
    """
    return (
        Customer.objects.leads()
        .not_erased()
        .filter(restricted_at__isnull=True, created_at__lt=before)
        .filter(Q(last_seen_at__isnull=True) | Q(last_seen_at__lt=before))
        .exclude(Exists(Order.objects.filter(customer=OuterRef("pk"))))
        .exclude(Exists(ConsentState.objects.granted().filter(customer=OuterRef("pk"))))
        .exclude(
            Exists(DataSubjectRequest.objects.open().filter(customer=OuterRef("pk")))
        )
    )


def _erase_leads(*, before: dt.datetime, dry_run: bool) -> int:
    leads = retention_stale_leads(before=before)
    if dry_run:
        return leads.count()
    lead_ids = list(leads.order_by("pk").values_list("pk", flat=True))
    erased = 0
    for start in range(0, len(lead_ids), 500):
        chunk = lead_ids[start : start + 500]
        # The rule again, per chunk: a lead who ordered or agreed meanwhile stays.
        for customer in leads.filter(pk__in=chunk).order_by("pk"):
            # One transaction per customer (inside the service): one failure
            # stops no other erasure.
            try:
                customer_erase(customer=customer, actor=None)
            except Exception:
                logger.exception("Retention could not erase customer %s", customer.pk)
                continue
            erased += 1
    return erased


def _purge_unconfirmed_signups(*, now: dt.datetime, dry_run: bool) -> int:
    days = dt.timedelta(days=settings.RETENTION["unconfirmed_signup_days"])
    # The service measures from the clock; shift it so ``now`` is honoured.
    return double_opt_in_purge(
        older_than=days + (timezone.now() - now), dry_run=dry_run
    )


def _delete_in_batches(model, *, column: str, before: dt.datetime) -> int:
    """DELETE rows with ``column`` < ``before``, DELETE_BATCH ids per statement."""
    statement = sql.SQL(
        "DELETE FROM {table} WHERE {pk} IN "
        "(SELECT {pk} FROM {table} WHERE {column} < %s LIMIT %s)"
    ).format(
        table=sql.Identifier(model._meta.db_table),
        pk=sql.Identifier(model._meta.pk.column),
        column=sql.Identifier(model._meta.get_field(column).column),
    )
    deleted = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [before, DELETE_BATCH])
            batch = cursor.rowcount
        deleted += batch
        if batch < DELETE_BATCH:
            return deleted


def _old_rows(model, *, column: str, before: dt.datetime, dry_run: bool) -> int:
    if dry_run:
        return model.objects.filter(**{f"{column}__lt": before}).count()
    return _delete_in_batches(model, column=column, before=before)


def retention_apply(*, dry_run: bool, now: dt.datetime | None = None) -> dict[str, int]:
    """Apply every retention policy; return the count per step (see ``STEPS``).

    With ``dry_run`` nothing changes and the counts are what would be removed.
    ``access_log_kept`` counts access log rows past their retention: the log is
    append-only and is kept.
    """
    now = now or timezone.now()
    policy = settings.RETENTION
    event_cutoff = months_before(now, policy["event_months"])
    result = {
        "leads_erased": _erase_leads(
            before=months_before(now, policy["lead_months"]), dry_run=dry_run
        ),
        "unconfirmed_signups_deleted": _purge_unconfirmed_signups(
            now=now, dry_run=dry_run
        ),
        "events_deleted": _old_rows(
            Event, column="occurred_at", before=event_cutoff, dry_run=dry_run
        ),
        "visitors_deleted": _old_rows(
            Visitor, column="last_seen_at", before=event_cutoff, dry_run=dry_run
        ),
        "access_log_kept": AccessLog.objects.filter(
            at__lt=months_before(now, policy["access_log_months"])
        ).count(),
    }
    logger.info("Retention %s: %s", "dry run" if dry_run else "applied", result)
    return result
