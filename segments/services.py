"""Writes with business rules for segments. Every interface calls these.

A dynamic segment's members are whoever its rules select among the customers who
may be profiled (``segment_scope``): not erased, not restricted, no objection to
profiling. A rebuild materialises them in SegmentMembership with set-based SQL and
records who entered and who left (SegmentChange) and the size (SegmentRebuild).
A static segment is a list staff keep by hand or by pasting contacts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import QuerySet
from django.db.models.functions import Upper
from django.utils import timezone
from django.utils.translation import gettext as _

from customers.models import Customer
from customers.validators import normalize_phone
from segments.models import Segment, SegmentChange, SegmentMembership, SegmentRebuild
from segments.rules import compile_rules, validate_rules

Trigger = SegmentRebuild.Trigger
# A pasted list: at most this many contacts at once.
LIST_LIMIT = 100_000


def segment_scope() -> QuerySet:
    """Customers a dynamic segment may hold: processable, not objecting to profiling."""
    return Customer.objects.processable().filter(profiling_objection_at__isnull=True)


def segment_customers(rules: Any) -> QuerySet:
    """The customers ``rules`` select now (validated: raises ValidationError)."""
    return segment_scope().filter(compile_rules(rules))


def segment_preview(rules: Any) -> int:
    """How many customers ``rules`` select now: the builder's live count."""
    return segment_customers(rules).count()


def _clean(
    *, name: Any, kind: Any, rules: Any, schedule: Any, description: Any
) -> dict[str, Any]:
    errors: dict[str, Any] = {}
    values: dict[str, Any] = {}
    name = str(name or "").strip()
    if not name or len(name) > 200:
        errors["name"] = ValidationError(
            _("Give the segment a name (at most 200 characters)."), code="required"
        )
    values["name"] = name
    if kind not in Segment.Kind.values:
        errors["kind"] = ValidationError(
            _("Choose dynamic or static."), "invalid_choice"
        )
    values["kind"] = kind
    if schedule not in Segment.Schedule.values:
        errors["schedule"] = ValidationError(
            _("Choose how often it is rebuilt."), "invalid_choice"
        )
    values["schedule"] = schedule
    values["description"] = str(description or "").strip()
    if kind == Segment.Kind.DYNAMIC:
        try:
            values["rules"] = validate_rules(rules or {})
        except ValidationError as error:
            errors["rules"] = error
    else:
        values["rules"] = {}
    if errors:
        raise ValidationError(errors)
    return values


def segment_create(
    *,
    name: str,
    kind: str = Segment.Kind.DYNAMIC,
    rules: Any = None,
    schedule: str = Segment.Schedule.DAILY,
    description: str = "",
    actor: Any = None,
) -> Segment:
    """Create a segment. A dynamic one is left for the caller to rebuild (a task)."""
    values = _clean(
        name=name, kind=kind, rules=rules, schedule=schedule, description=description
    )
    user = actor if getattr(actor, "is_authenticated", False) else None
    return Segment.objects.create(created_by=user, **values)


def segment_update(*, segment: Segment, actor: Any = None, **changes: Any) -> bool:
    """Change a segment's name, description, rules, schedule or active flag.

    The kind cannot change (a list's members are not a rule's). Returns whether
    the rules changed: the caller then rebuilds it.
    """
    allowed = {"name", "description", "rules", "schedule", "is_active"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"Unknown segment fields: {sorted(unknown)}")
    current = {
        "name": segment.name,
        "kind": segment.kind,
        "rules": segment.rules,
        "schedule": segment.schedule,
        "description": segment.description,
    }
    values = _clean(**{**current, **{k: v for k, v in changes.items() if k in current}})
    rules_changed = values["rules"] != segment.rules
    for field, value in values.items():
        setattr(segment, field, value)
    if "is_active" in changes:
        segment.is_active = bool(changes["is_active"])
    segment.save()
    return rules_changed


def segment_rebuild(
    *, segment: Segment, trigger: str = Trigger.MANUAL, actor: Any = None
) -> SegmentRebuild:
    """Materialise the segment's members now; record who entered and who left.

    One transaction, with the segment's row locked so two rebuilds queue up. A
    dynamic segment's members become exactly what its rules select; a static
    segment keeps its list, less anyone who was erased.
    """
    started_at = timezone.now()
    user = actor if getattr(actor, "is_authenticated", False) else None
    with transaction.atomic():
        segment = Segment.objects.select_for_update().get(pk=segment.pk)
        if segment.is_dynamic:
            members = segment_customers(segment.rules).values("id")
        else:
            members = Customer.objects.filter(
                erased_at__isnull=True,
                segment_memberships__segment=segment,
            ).values("id")
        rebuild = SegmentRebuild.objects.create(
            segment=segment,
            trigger=trigger,
            started_at=started_at,
            finished_at=started_at,
            size=0,
            entered=0,
            left=0,
            rules=segment.rules,
            requested_by=user,
        )
        entered, left, size = _materialise(segment, rebuild, members, started_at)
        finished_at = timezone.now()
        SegmentRebuild.objects.filter(pk=rebuild.pk).update(
            finished_at=finished_at, size=size, entered=entered, left=left
        )
        Segment.objects.filter(pk=segment.pk).update(size=size, rebuilt_at=finished_at)
    rebuild.finished_at, rebuild.size = finished_at, size
    rebuild.entered, rebuild.left = entered, left
    return rebuild


def _materialise(
    segment: Segment, rebuild: SegmentRebuild, members: QuerySet, now: Any
) -> tuple[int, int, int]:
    """Set the segment's memberships to ``members``; (entered, left, size)."""
    query, params = members.query.sql_with_params()
    membership = SegmentMembership._meta.db_table
    change = SegmentChange._meta.db_table
    keys = {"segment": segment.pk, "rebuild": rebuild.pk, "now": now}
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS pg_temp.segment_members")
        # The compiled rules' own SQL and parameters (the ORM's), nothing else.
        cursor.execute(
            "CREATE TEMPORARY TABLE segment_members ON COMMIT DROP AS "  # noqa: S608
            f"SELECT DISTINCT id AS customer_id FROM ({query}) q",
            params,
        )
        size = cursor.rowcount
        cursor.execute("ANALYZE pg_temp.segment_members")
        cursor.execute(
            f"""
            WITH gone AS (
                DELETE FROM {membership} m WHERE m.segment_id = %(segment)s
                AND NOT EXISTS (
                    SELECT 1 FROM pg_temp.segment_members f
                    WHERE f.customer_id = m.customer_id
                )
                RETURNING m.customer_id
            )
            INSERT INTO {change} (segment_id, customer_id, rebuild_id, kind, at)
            SELECT %(segment)s, customer_id, %(rebuild)s, 'left', %(now)s FROM gone
            """,  # noqa: S608 - table names from the models
            keys,
        )
        left = cursor.rowcount
        # Who enters, chosen before anyone is inserted: an anti-join against the
        # table being filled would read it again for every row.
        cursor.execute("DROP TABLE IF EXISTS pg_temp.segment_entering")
        cursor.execute(
            f"""
            CREATE TEMPORARY TABLE segment_entering ON COMMIT DROP AS
            SELECT f.customer_id FROM pg_temp.segment_members f
            WHERE NOT EXISTS (
                SELECT 1 FROM {membership} m
                WHERE m.segment_id = %(segment)s AND m.customer_id = f.customer_id
            )
            """,  # noqa: S608 - table names from the models
            keys,
        )
        cursor.execute(
            f"""
            INSERT INTO {membership} (segment_id, customer_id, entered_at)
            SELECT %(segment)s, customer_id, %(now)s FROM pg_temp.segment_entering
            """,  # noqa: S608 - table names from the models
            keys,
        )
        cursor.execute(
            f"""
            INSERT INTO {change} (segment_id, customer_id, rebuild_id, kind, at)
            SELECT %(segment)s, customer_id, %(rebuild)s, 'entered', %(now)s
            FROM pg_temp.segment_entering
            """,  # noqa: S608 - table names from the models
            keys,
        )
        entered = cursor.rowcount
        if entered + left > max(10_000, size // 10):
            # Many came or went: the next rebuild's plans need to know.
            cursor.execute(f"ANALYZE {membership}")
    return entered, left, size


def segments_rebuild_due(*, now: Any = None) -> list[SegmentRebuild]:
    """Rebuild every active dynamic segment whose schedule says it is due."""
    now = now or timezone.now()
    return [
        segment_rebuild(segment=segment, trigger=Trigger.SCHEDULE)
        for segment in Segment.objects.filter(is_active=True, kind=Segment.Kind.DYNAMIC)
        if segment.rebuild_due(now)
    ]


# --- Static segments: lists -------------------------------------------------------


def _static(segment: Segment) -> None:
    if segment.is_dynamic:
        raise ValidationError(
            {
                "segment": ValidationError(
                    _("A dynamic segment's members come from its rules."),
                    code="dynamic",
                )
            }
        )


def segment_members_add(
    *, segment: Segment, customers: Iterable[Customer | int], actor: Any = None
) -> int:
    """Put customers on a static segment's list; returns how many were new."""
    _static(segment)
    ids = sorted({c if isinstance(c, int) else c.pk for c in customers})
    user = actor if getattr(actor, "is_authenticated", False) else None
    now = timezone.now()
    membership = SegmentMembership._meta.db_table
    with transaction.atomic():
        rebuild = _list_change(segment, user, now)
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                WITH came AS (
                    INSERT INTO {membership}
                        (segment_id, customer_id, entered_at, added_by_id)
                    SELECT %(segment)s, c.id, %(now)s, %(user)s
                    FROM {Customer._meta.db_table} c
                    WHERE c.id = ANY(%(ids)s) AND c.erased_at IS NULL
                    ON CONFLICT (segment_id, customer_id) DO NOTHING
                    RETURNING customer_id
                )
                INSERT INTO {SegmentChange._meta.db_table}
                    (segment_id, customer_id, rebuild_id, kind, at)
                SELECT %(segment)s, customer_id, %(rebuild)s, 'entered', %(now)s
                FROM came
                """,  # noqa: S608 - table names from the models
                {
                    "segment": segment.pk,
                    "now": now,
                    "user": user.pk if user else None,
                    "ids": ids,
                    "rebuild": rebuild.pk,
                },
            )
            added = cursor.rowcount
        _list_change_done(segment, rebuild, entered=added, left=0)
    return added


def _list_change(segment: Segment, user: Any, now: Any) -> SegmentRebuild:
    return SegmentRebuild.objects.create(
        segment=segment,
        trigger=Trigger.LIST,
        started_at=now,
        finished_at=now,
        size=0,
        entered=0,
        left=0,
        requested_by=user,
    )


def _list_change_done(
    segment: Segment, rebuild: SegmentRebuild, *, entered: int, left: int
) -> None:
    """Record a list edit's size, or forget it if nothing changed."""
    if not entered and not left:
        rebuild.delete()
        return
    _size_refresh(segment)
    SegmentRebuild.objects.filter(pk=rebuild.pk).update(
        size=segment.size, entered=entered, left=left, finished_at=timezone.now()
    )


def _size_refresh(segment: Segment) -> None:
    segment.size = segment.memberships.count()
    Segment.objects.filter(pk=segment.pk).update(size=segment.size)


def segment_members_remove(
    *, segment: Segment, customers: Iterable[Customer | int], actor: Any = None
) -> int:
    """Take customers off a static segment's list; returns how many were on it."""
    _static(segment)
    ids = sorted({c if isinstance(c, int) else c.pk for c in customers})
    user = actor if getattr(actor, "is_authenticated", False) else None
    now = timezone.now()
    with transaction.atomic():
        rebuild = _list_change(segment, user, now)
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                WITH gone AS (
                    DELETE FROM {SegmentMembership._meta.db_table}
                    WHERE segment_id = %(segment)s AND customer_id = ANY(%(ids)s)
                    RETURNING customer_id
                )
                INSERT INTO {SegmentChange._meta.db_table}
                    (segment_id, customer_id, rebuild_id, kind, at)
                SELECT %(segment)s, customer_id, %(rebuild)s, 'left', %(now)s
                FROM gone
                """,  # noqa: S608 - table names from the models
                {"segment": segment.pk, "ids": ids, "rebuild": rebuild.pk, "now": now},
            )
            removed = cursor.rowcount
        _list_change_done(segment, rebuild, entered=0, left=removed)
    return removed


_SEPARATORS = re.compile(r"[\s,;]+")


def segment_members_paste(
    *, segment: Segment, text: str, actor: Any = None
) -> Mapping[str, Any]:
    """Add the customers named in ``text`` (emails or phones, any separators).

    Returns {"added": n, "already": n, "unknown": [what matched nobody]}.
    """
    _static(segment)
    tokens = [t for t in _SEPARATORS.split(text or "") if t]
    if len(tokens) > LIST_LIMIT:
        raise ValidationError(
            {
                "text": ValidationError(
                    _("At most %(limit)d contacts at once."),
                    code="too_many",
                    params={"limit": LIST_LIMIT},
                )
            }
        )
    emails = {t.lower() for t in tokens if "@" in t}
    phones: dict[str, str] = {}
    for token in tokens:
        if "@" not in token:
            try:
                phones[normalize_phone(token)] = token
            except ValidationError:
                phones[token] = token
    # UPPER(email) as the unique index has it: the local part keeps its case.
    by_email = Customer.objects.alias(upper_email=Upper("email")).filter(
        upper_email__in=sorted(e.upper() for e in emails)
    )
    by_phone = Customer.objects.filter(phone__in=sorted(phones))
    matched = list(
        (by_email | by_phone)
        .filter(erased_at__isnull=True)
        .values_list("pk", "email", "phone")
    )
    seen_emails = {(email or "").lower() for _pk, email, _phone in matched}
    seen_phones = {phone for _pk, _email, phone in matched}
    unknown = sorted(e for e in emails if e not in seen_emails) + sorted(
        raw for phone, raw in phones.items() if phone not in seen_phones
    )
    ids = {pk for pk, _e, _p in matched}
    added = segment_members_add(segment=segment, customers=ids, actor=actor)
    return {"added": added, "already": len(ids) - added, "unknown": unknown}
