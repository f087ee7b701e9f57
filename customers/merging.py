"""Merging duplicate customers, and undoing a merge within 30 days.

``customers_merge`` folds one record (the merged-away one) into another (the
survivor): staff choose, field by field, which values survive; every row that
belongs to the person moves to the survivor; the merged-away record keeps only its
consent ledger and access log (append-only proof, which cannot move) and a pointer,
``Customer.merged_into``. A ``CustomerMerge`` row is the audit trail: both records
as they were, every row moved, and what the merge appended to the survivor's
consent ledger. ``customer_merge_undo`` puts everything back.

Which rows move is declared per foreign key to Customer, in a ``merging.py`` module
of the app that owns the model (``merge_relations_register``; discovered when the
customers app is ready), so the customers app never imports the apps to its right.
A test checks that every foreign key to Customer has a declaration. The apps act on
the merge through two signals: ``customers_merged`` and ``customers_merge_undone``
(the consents app merges the ledgers, the segments app recomputes the metrics).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Exists, OuterRef, Q
from django.dispatch import Signal
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules
from django.utils.translation import gettext as _

from customers.models import (
    Address,
    Customer,
    CustomerIdentity,
    CustomerMerge,
    DuplicateCandidate,
    Event,
    Interaction,
    Visitor,
)
from customers.signals import customer_activity_changed_send

# Sent inside the merge's transaction, after the rows moved: ``merge`` (the saved
# CustomerMerge; receivers may add to its JSON fields and save them).
customers_merged = Signal()
# Sent inside the undo's transaction, after the rows moved back: ``merge``.
customers_merge_undone = Signal()

# The fields staff choose between, in the order the compare page shows them.
CHOSEN_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "nip",
    "birth_date",
    "gender",
    "language",
    "preferred_channels",
    "acquisition_source",
    "acquisition_medium",
    "acquisition_campaign",
    "acquisition_keyword",
)
# The person's rights: whichever record has one set, the survivor keeps the
# earliest (a merge never lifts a restriction or an objection).
RIGHTS_FIELDS = ("restricted_at", "marketing_objection_at", "profiling_objection_at")
# What the merged-away record keeps: the fields that are not about the person.
KEPT_FIELDS = {"id", "status", "language", "created_at", "updated_at", "erased_at"}
KEPT_FIELDS.update(RIGHTS_FIELDS)


@dataclass(frozen=True)
class Relation:
    """What a merge does with the rows of ``model`` whose ``field`` is the customer.

    ``move``: they move to the survivor (their ids are recorded, for the undo). If
    ``unique_with`` is given, a row whose values there equal one of the survivor's
    rows would break a unique constraint: ``on_clash`` says whether it stays with
    the merged-away record (``keep``: kept history) or is taken away (``remove``:
    the survivor's like serves; the row is restored on undo).
    ``keep``: they stay with the merged-away record (append-only proof).
    ``drop``: they are derived and deleted (recomputed for the survivor).
    """

    model: type[models.Model]
    field: str = "customer"
    action: Literal["move", "keep", "drop"] = "move"
    unique_with: tuple[str, ...] = ()
    on_clash: Literal["keep", "remove"] = "keep"

    @property
    def key(self) -> str:
        return f"{self.model._meta.label_lower}.{self.field}"

    @property
    def label(self) -> str:
        return str(self.model._meta.verbose_name_plural)


_RELATIONS: dict[str, Relation] = {}


def merge_relations_register(*relations: Relation) -> None:
    """Declare what a merge does with rows pointing at a customer (see Relation)."""
    for relation in relations:
        _RELATIONS[relation.key] = relation


def merge_relations() -> list[Relation]:
    """Every declared relation, in registration order."""
    return list(_RELATIONS.values())


def merge_relations_discover() -> None:
    """Import every app's ``merging`` module (CustomersConfig.ready)."""
    autodiscover_modules("merging")


merge_relations_register(
    Relation(Customer.tags.through, unique_with=("tag",), on_clash="remove"),
    Relation(CustomerIdentity),
    # Their default addresses become plain ones where the survivor has a default
    # of the kind (_addresses_demote); the undo makes them defaults again.
    Relation(Address),
    Relation(Visitor),
    Relation(Event),
    Relation(Interaction),
    # Records merged into the merged-away one earlier stay pointing at it: the
    # chain is followed (merged_into_final), and each merge undoes on its own.
    Relation(Customer, field="merged_into", action="keep"),
    Relation(DuplicateCandidate, action="drop"),
    Relation(DuplicateCandidate, field="other", action="drop"),
    Relation(CustomerMerge, field="survivor", action="keep"),
    Relation(CustomerMerge, field="merged", action="keep"),
)


# --- The plan the compare page shows ---------------------------------------------


@dataclass
class FieldChoice:
    name: str
    label: str
    survivor_value: Any
    merged_value: Any
    # The merged record's value is taken unless staff choose otherwise: where the
    # survivor has none.
    take_merged: bool

    @property
    def differs(self) -> bool:
        return self.survivor_value != self.merged_value


@dataclass
class MergePlan:
    survivor: Customer
    merged: Customer
    fields: list[FieldChoice]
    moving: list[tuple[str, int]] = field(default_factory=list)
    staying: list[tuple[str, int]] = field(default_factory=list)

    @property
    def default_take(self) -> list[str]:
        return [choice.name for choice in self.fields if choice.take_merged]


def _blank(value: Any) -> bool:
    return value in (None, "", [], {})


def default_take(survivor: Customer, merged: Customer) -> set[str]:
    """The fields a merge takes from ``merged`` unless told otherwise.

    Those where the survivor has no value and the merged record has one.
    """
    return {
        name
        for name in CHOSEN_FIELDS
        if _blank(getattr(survivor, name)) and not _blank(getattr(merged, name))
    }


def merge_plan(*, survivor: Customer, merged: Customer) -> MergePlan:
    """What merging ``merged`` into ``survivor`` would do: fields and row counts."""
    taken = default_take(survivor, merged)
    fields = [
        FieldChoice(
            name=name,
            label=str(Customer._meta.get_field(name).verbose_name),
            survivor_value=getattr(survivor, name),
            merged_value=getattr(merged, name),
            take_merged=name in taken,
        )
        for name in CHOSEN_FIELDS
    ]
    plan = MergePlan(survivor=survivor, merged=merged, fields=fields)
    for relation in merge_relations():
        if relation.model is Customer or relation.model is CustomerMerge:
            continue
        rows = relation.model._default_manager.filter(**{relation.field: merged})
        count = rows.count()
        if not count:
            continue
        if relation.action == "move":
            clash = _clashing(relation, rows, survivor).count()
            moving = count - clash
            if moving:
                plan.moving.append((relation.label, moving))
            if clash and relation.on_clash == "keep":
                plan.staying.append((relation.label, clash))
        elif relation.action == "keep":
            plan.staying.append((relation.label, count))
    return plan


# --- Merging ---------------------------------------------------------------------


def _snapshot(customer: Customer) -> dict[str, Any]:
    """The customer's own fields as stored, with their tags' names."""
    values = {
        f.attname: getattr(customer, f.attname) for f in Customer._meta.concrete_fields
    }
    values["tags"] = sorted(customer.tags.values_list("name", flat=True))
    return values


def _parse(name: str, value: Any) -> Any:
    """A snapshot's JSON value back to the field's Python value."""
    model_field = Customer._meta.get_field(name)
    if value is None:
        return None
    if isinstance(model_field, models.DateTimeField | models.DateField):
        return model_field.to_python(value)
    if isinstance(model_field, models.DecimalField):
        return Decimal(str(value))
    return value


def _locked_pair(first: Customer, second: Customer) -> tuple[Customer, Customer]:
    """Both rows locked for update, in id order (two merges cannot deadlock)."""
    rows = {
        row.pk: row
        for row in Customer.objects.select_for_update()
        .filter(pk__in=[first.pk, second.pk])
        .order_by("pk")
    }
    if len(rows) != 2:
        raise ValidationError(_("One of the records no longer exists."), "missing")
    return rows[first.pk], rows[second.pk]


def _check_mergeable(survivor: Customer, merged: Customer) -> None:
    if survivor.pk == merged.pk:
        raise ValidationError(_("Choose two different records."), "same")
    for customer in (survivor, merged):
        if customer.erased_at is not None:
            raise ValidationError(
                _("Record #%(id)s was erased: it cannot be merged."),
                "erased",
                params={"id": customer.pk},
            )
        if customer.merged_into_id is not None:
            raise ValidationError(
                _("Record #%(id)s was already merged into #%(into)s."),
                "merged",
                params={"id": customer.pk, "into": customer.merged_into_id},
            )


def merge_error(survivor: Customer, merged: Customer) -> str | None:
    """Why the two cannot be merged, or None."""
    try:
        _check_mergeable(survivor, merged)
    except ValidationError as error:
        return " ".join(error.messages)
    return None


def _survivor_values(
    survivor: Customer, merged: Customer, take: set[str]
) -> dict[str, Any]:
    """The survivor's fields after the merge: the chosen ones and the rules."""
    values: dict[str, Any] = {name: getattr(merged, name) for name in take}
    if Customer.Status.BUYER in (survivor.status, merged.status):
        values["status"] = Customer.Status.BUYER
    values["created_at"] = min(survivor.created_at, merged.created_at)
    seen = [c for c in (survivor, merged) if c.last_seen_at is not None]
    if seen:
        latest = max(seen, key=lambda c: c.last_seen_at)
        values["last_seen_at"] = latest.last_seen_at
        for name in ("last_device", "last_os", "last_browser"):
            values[name] = getattr(latest, name) or getattr(survivor, name)
    for name in RIGHTS_FIELDS:
        moments = [getattr(c, name) for c in (survivor, merged) if getattr(c, name)]
        values[name] = min(moments) if moments else None
    values["attributes"] = {**merged.attributes, **survivor.attributes}
    notes = [c.note.strip() for c in (survivor, merged) if c.note.strip()]
    values["note"] = "\n\n".join(dict.fromkeys(notes))
    for name in ("imported_orders_count", "imported_total_spent"):
        figures = [getattr(c, name) for c in (survivor, merged)]
        if any(figure is not None for figure in figures):
            values[name] = sum(figure for figure in figures if figure is not None)
    return {
        name: value
        for name, value in values.items()
        if value != getattr(survivor, name)
    }


def _clashing(relation: Relation, rows: models.QuerySet, survivor: Customer):
    """``rows`` (the merged record's) that would duplicate one of the survivor's."""
    if not relation.unique_with:
        return rows.none()
    twins = relation.model._default_manager.filter(
        **{relation.field: survivor},
        **{name: OuterRef(name) for name in relation.unique_with},
    )
    return rows.filter(Exists(twins))


def _addresses_demote(survivor: Customer, merged: Customer) -> list[int]:
    """The merged record's default addresses of a kind the survivor has a default of.

    They move as plain addresses (one default per kind); returns their ids.
    """
    kinds = Address.objects.filter(customer=survivor, is_default=True).values("kind")
    demoted = Address.objects.filter(customer=merged, is_default=True, kind__in=kinds)
    ids = list(demoted.values_list("pk", flat=True))
    if ids:
        Address.objects.filter(pk__in=ids).update(is_default=False)
    return ids


def _rows_move(merge: CustomerMerge, survivor: Customer, merged: Customer) -> None:
    """Move, remove or drop every relation's rows; record them on ``merge``."""
    moved: dict[str, list[int]] = {}
    removed: dict[str, list[dict]] = {}
    demoted = _addresses_demote(survivor, merged)
    if demoted:
        moved["customers.address.is_default"] = demoted
    for relation in merge_relations():
        manager = relation.model._default_manager
        rows = manager.filter(**{relation.field: merged})
        if relation.action == "keep":
            continue
        if relation.action == "drop":
            rows.delete()
            continue
        clash = _clashing(relation, rows, survivor)
        if relation.unique_with and relation.on_clash == "remove":
            taken = list(clash.values())
            if taken:
                removed[relation.key] = taken
                manager.filter(pk__in=[row["id"] for row in taken]).delete()
        elif relation.unique_with:
            rows = rows.exclude(pk__in=clash.values("pk"))
        ids = list(rows.values_list("pk", flat=True))
        if ids:
            manager.filter(pk__in=ids).update(**{relation.field: survivor})
            moved[relation.key] = ids
    merge.moved = moved
    merge.removed = removed


@transaction.atomic
def customers_merge(
    *,
    survivor: Customer,
    merged: Customer,
    take: Iterable[str] = (),
    actor: Any = None,
) -> CustomerMerge:
    """Fold ``merged`` into ``survivor``, taking the ``take`` fields from it.

    The other chosen fields keep the survivor's value. The rest follows fixed
    rules: the survivor is a buyer if either was, customer since the earlier
    date, last seen at the later one; it keeps every restriction and objection
    either had (the earliest), both notes, the custom attributes of both (its
    own win), and the imported totals added up. One transaction; refused with a
    ValidationError for the same record twice, an erased record or one already
    merged.
    """
    take = set(take)
    unknown = take - set(CHOSEN_FIELDS)
    if unknown:
        raise ValidationError(
            _("These fields cannot be chosen: %(fields)s."),
            "invalid",
            params={"fields": ", ".join(sorted(unknown))},
        )
    survivor, merged = _locked_pair(survivor, merged)
    _check_mergeable(survivor, merged)
    now = timezone.now()
    survivor_before = _snapshot(survivor)
    merged_before = _snapshot(merged)
    changes = _survivor_values(survivor, merged, take)

    # The merged record gives up what is about the person first: its email may be
    # the one the survivor takes (the email is unique).
    for f in Customer._meta.concrete_fields:
        if f.attname not in KEPT_FIELDS and not f.primary_key:
            if f.name in ("merged_into", "merged_at"):
                continue
            setattr(merged, f.attname, f.get_default())
    merged.email = None
    merged.merged_into = survivor
    merged.merged_at = now
    merged.save()

    for name, value in changes.items():
        setattr(survivor, name, value)
    survivor.save()

    merge = CustomerMerge.objects.create(
        survivor=survivor,
        merged=merged,
        merged_at=now,
        merged_by=actor if getattr(actor, "is_authenticated", False) else None,
        changed={
            name: {"before": survivor_before[name], "after": value}
            for name, value in changes.items()
        },
        survivor_before=survivor_before,
        merged_before=merged_before,
    )
    _rows_move(merge, survivor, merged)
    merge.save(update_fields=["moved", "removed"])
    customers_merged.send(sender=CustomerMerge, merge=merge)
    customer_activity_changed_send(
        sender=Customer, customer_ids={survivor.pk, merged.pk}
    )
    return merge


# --- Undo ------------------------------------------------------------------------


@dataclass
class UndoResult:
    merge: CustomerMerge
    # Survivor fields changed again since the merge: their newer value stays.
    kept_fields: list[str]
    # Rows that moved on since the merge (another merge, a deletion).
    rows_not_back: int


def merge_undo_error(merge: CustomerMerge) -> str | None:
    """Why ``merge`` cannot be undone now, or None if it can."""
    if merge.undone_at is not None:
        return _("This merge was already undone.")
    if timezone.now() >= merge.undo_until:
        return _("A merge can be undone for %(days)s days; this one is older.") % {
            "days": CustomerMerge.UNDO_DAYS
        }
    if merge.survivor.erased_at is not None or merge.merged.erased_at is not None:
        return _("The person was erased since: there is nothing to restore.")
    if merge.survivor.merged_into_id is not None:
        return _(
            "The surviving record was merged into #%(id)s since: undo that merge first."
        ) % {"id": merge.survivor.merged_into_id}
    return None


def _model(key: str) -> tuple[type[models.Model], str]:
    relation = _RELATIONS[key]
    return relation.model, relation.field


@transaction.atomic
def customer_merge_undo(*, merge: CustomerMerge, actor: Any = None) -> UndoResult:
    """Undo ``merge``: both records as they were, every moved row back.

    A survivor field changed again after the merge keeps its newer value (reported
    in ``kept_fields``); so do rows that have moved on since. The consents app
    restores the survivor's consent state (``customers_merge_undone``). Refused
    with a ValidationError when ``merge_undo_error`` says why.
    """
    merge = CustomerMerge.objects.select_for_update().get(pk=merge.pk)
    survivor, merged = _locked_pair(merge.survivor, merge.merged)
    merge.survivor, merge.merged = survivor, merged
    error = merge_undo_error(merge)
    if error:
        raise ValidationError(error, "not_undoable")

    kept: list[str] = []
    for name, change in merge.changed.items():
        current = getattr(survivor, name)
        if current == _parse(name, change["after"]):
            setattr(survivor, name, _parse(name, change["before"]))
        else:
            kept.append(name)
    try:
        with transaction.atomic():
            survivor.save()
            for name, value in merge.merged_before.items():
                if name not in ("tags", "id"):
                    setattr(merged, name, _parse(name, value))
            merged.merged_into = None
            merged.merged_at = None
            merged.save()
    except IntegrityError:
        raise ValidationError(
            _(
                "Another record now has the email of one of these: change it first, "
                "then undo."
            ),
            "conflict",
        ) from None

    not_back = 0
    demoted = merge.moved.get("customers.address.is_default", [])
    for key, ids in merge.moved.items():
        if key == "customers.address.is_default" or key not in _RELATIONS:
            continue
        model, field_name = _model(key)
        back = (
            model._default_manager.filter(pk__in=ids, **{field_name: survivor})
            .order_by()
            .update(**{field_name: merged})
        )
        not_back += len(ids) - back
    if demoted:
        Address.objects.filter(pk__in=demoted, customer=merged).exclude(
            Exists(
                Address.objects.filter(
                    customer=merged, kind=OuterRef("kind"), is_default=True
                )
            )
        ).update(is_default=True)
    for key, rows in merge.removed.items():
        if key in _RELATIONS:
            model, _field = _model(key)
            model._default_manager.bulk_create(
                [model(**row) for row in rows], ignore_conflicts=True
            )

    merge.undone_at = timezone.now()
    merge.undone_by = actor if getattr(actor, "is_authenticated", False) else None
    merge.save(update_fields=["undone_at", "undone_by"])
    customers_merge_undone.send(sender=CustomerMerge, merge=merge)
    customer_activity_changed_send(
        sender=Customer, customer_ids={survivor.pk, merged.pk}
    )
    return UndoResult(merge=merge, kept_fields=kept, rows_not_back=not_back)


# --- Batch merge of exact duplicates ---------------------------------------------


@dataclass
class MergeGroup:
    """Records the duplicate scan found to share an email or phone, all linked."""

    survivor: Customer
    others: list[Customer]
    key: str


def _order_counts(ids: Iterable[int]) -> dict[int, int]:
    from django.apps import apps

    # By name: customers sits left of orders.
    order_model = apps.get_model("orders", "Order")
    return dict(
        order_model.objects.filter(customer_id__in=list(ids))
        .order_by()
        .values_list("customer_id")
        .annotate(n=models.Count("pk"))
        .values_list("customer_id", "n")
    )


def exact_duplicate_groups(
    *, reason: str, limit: int = 100
) -> tuple[list[MergeGroup], int]:
    """Groups of exact duplicates (``reason`` email or phone) and how many in all.

    Pairs that share a record form one group (A~B and B~C: A, B and C). The
    survivor is the record with the most orders, then the oldest. Records merged
    or erased since the scan are left out. The first ``limit`` groups, oldest
    records first.
    """
    if reason not in DuplicateCandidate.EXACT_REASONS:
        raise ValidationError(_("Only exact duplicates merge in a batch."), "invalid")
    live = Q(merged_into__isnull=True, erased_at__isnull=True)
    live_ids = Customer.objects.filter(live).values("pk")
    pairs = (
        DuplicateCandidate.objects.filter(reason=reason)
        .filter(customer_id__in=live_ids, other_id__in=live_ids)
        .order_by("customer_id", "other_id")
        .values_list("customer_id", "other_id", "key")
    )
    parent: dict[int, int] = {}
    keys: dict[int, str] = {}

    def root(pk: int) -> int:
        parent.setdefault(pk, pk)
        while parent[pk] != pk:
            parent[pk] = parent[parent[pk]]
            pk = parent[pk]
        return pk

    for first, second, key in pairs:
        a, b = root(first), root(second)
        if a != b:
            parent[max(a, b)] = min(a, b)
        keys.setdefault(first, key)
    members: dict[int, list[int]] = {}
    for pk in parent:
        members.setdefault(root(pk), []).append(pk)
    roots = sorted(members)
    chosen = roots[:limit]
    ids = [pk for top in chosen for pk in members[top]]
    customers = Customer.objects.in_bulk(ids)
    orders = _order_counts(ids)
    groups = []
    for top in chosen:
        records = sorted(
            (customers[pk] for pk in members[top] if pk in customers),
            key=lambda c: (-orders.get(c.pk, 0), c.pk),
        )
        if len(records) > 1:
            groups.append(
                MergeGroup(
                    survivor=records[0], others=records[1:], key=keys.get(top, "")
                )
            )
    return groups, len(roots)


@dataclass
class BatchResult:
    merged: int = 0
    groups: int = 0
    errors: list[str] = field(default_factory=list)


def customers_merge_batch(
    *, groups: Iterable[tuple[int, Iterable[int]]], actor: Any = None
) -> BatchResult:
    """Merge each group's records (ids) into its survivor.

    Fields as ``default_take`` chooses. Each merge commits on its own; a record
    that cannot be merged (merged or erased meanwhile) is reported and skipped.
    """
    result = BatchResult()
    for survivor_id, other_ids in groups:
        merged_any = False
        for other_id in other_ids:
            try:
                survivor = Customer.objects.get(pk=survivor_id)
                other = Customer.objects.get(pk=other_id)
                customers_merge(
                    survivor=survivor,
                    merged=other,
                    take=default_take(survivor, other),
                    actor=actor,
                )
            except (Customer.DoesNotExist, ValidationError) as error:
                messages = getattr(error, "messages", None) or [str(error)]
                result.errors.append(
                    f"#{other_id} → #{survivor_id}: {' '.join(messages)}"
                )
                continue
            result.merged += 1
            merged_any = True
        result.groups += merged_any
    return result


# --- Reading ---------------------------------------------------------------------


def merged_into_final(customer: Customer) -> Customer | None:
    """The record ``customer`` ended up in (following merges of merges), or None."""
    seen = {customer.pk}
    current = customer
    while current.merged_into_id is not None:
        if current.merged_into_id in seen:  # a cycle cannot be made; be safe
            return None
        seen.add(current.merged_into_id)
        current = Customer.objects.get(pk=current.merged_into_id)
    return current if current.pk != customer.pk else None


def merges_scrub(*, customer_ids: Iterable[int]) -> int:
    """Blank the personal data in the snapshots of merges of these customers.

    For erasure: the merge records stay (who merged what, when) without the
    person's data; they cannot be undone any more.
    """
    ids = list(customer_ids)
    merges = CustomerMerge.objects.filter(Q(survivor_id__in=ids) | Q(merged_id__in=ids))
    scrubbed = 0
    for merge in merges:
        merge.survivor_before = _scrubbed(merge.survivor_before)
        merge.merged_before = _scrubbed(merge.merged_before)
        merge.changed = {
            name: {"before": None, "after": None}
            for name in merge.changed
            if name not in KEPT_FIELDS
        }
        merge.removed = {}
        merge.save(
            update_fields=["survivor_before", "merged_before", "changed", "removed"]
        )
        scrubbed += 1
    return scrubbed


def _scrubbed(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in snapshot.items() if name in KEPT_FIELDS}


def customer_merges_context(request: Any, customer: Customer) -> dict[str, Any]:
    """The customer page's "Duplicates" panel: merges into it, likely duplicates."""
    user = request.user
    can_merge = user.has_perm("customers.merge_customer")
    merges = []
    if user.has_perm("customers.view_customermerge"):
        merges = list(
            CustomerMerge.objects.filter(survivor=customer, undone_at=None).order_by(
                "-merged_at"
            )[:10]
        )
    duplicates = []
    if can_merge:
        pairs = (
            DuplicateCandidate.objects.filter(Q(customer=customer) | Q(other=customer))
            .select_related("customer", "other")
            .order_by("reason", "-score")[:10]
        )
        seen: set[int] = set()
        for pair in pairs:
            other = pair.other if pair.customer_id == customer.pk else pair.customer
            if other.pk not in seen and other.merged_into_id is None:
                seen.add(other.pk)
                duplicates.append((other, pair.get_reason_display()))
    return {"merges": merges, "can_merge": can_merge, "duplicates": duplicates}
