"""Reads that compose several sources: the customer timeline.

The timeline is one list, newest first, of everything that happened with a
customer: orders, support interactions, consent changes and behaviour on the
store's site (summarised per day and kind: "viewed 14 products in Pet food").

It costs a bounded number of queries whatever the customer's history: one
``UNION ALL`` over the sources picks the page's rows (source, id or group key,
moment), newest first, with LIMIT/OFFSET; then one query per source on the page
fetches its objects with what they show (``select_related``). Behaviour rows are
complete summaries already and need no second query.

Customers sits leftmost in the layering: orders and consents are reached through
reverse relations (``customer.orders``, ``customer.consent_events``) and
``apps.get_model``, never imported. An app to the right adds its own source with
:func:`timeline_source_register` from its ``AppConfig.ready()``, as the campaigns
app adds the messages sent to the customer (``campaigns.timeline``), with a row
query, a fetch and a template of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.contrib.postgres.aggregates import StringAgg
from django.db.models import (
    BigIntegerField,
    Case,
    CharField,
    Count,
    DateField,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Cast, TruncDate
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from customers.models import Customer, Event
from customers.paginators import PageLinks

#: The columns every source's rows give, in this order (the UNION lines them up).
ROW_FIELDS = (
    "tl_source",  # the source's key
    "tl_ref",  # the object's id; NULL for a summary (behaviour)
    "tl_day",  # a summary's day in the business's zone; else NULL
    "tl_kind",  # a summary's event kind; else ""
    "tl_category",  # a product summary's category name, if known
    "tl_detail",  # a summary's text (search keywords), else ""
    "tl_count",  # how many events a summary stands for; else 1
    "tl_at",  # when: the moment entries are ordered by
)
# A separator no keyword contains (keywords are single-line text).
_DETAIL_SEPARATOR = "\x1f"
#: Search keywords a behaviour summary names at most.
SUMMARY_KEYWORDS = 5
#: Event kinds about one product, summarised per product category.
PRODUCT_EVENT_KINDS = (Event.Kind.PRODUCT_VIEW, Event.Kind.ADD_TO_CART)


@dataclass(frozen=True)
class TimelineSource:
    """One kind of timeline entry: where its rows come from and how they show.

    ``rows(customer)`` is a ``values()`` queryset of :data:`ROW_FIELDS` (build it
    with :func:`timeline_rows`), ordered newest first. ``fetch(customer, ids)``
    returns the page's objects by id (None when the rows are the entries, as for
    behaviour summaries). ``template`` renders one entry (``entry`` in its
    context). Staff without ``permission`` (if given) do not see the source.
    """

    key: str
    label: str | Promise
    rows: Callable[[Customer], QuerySet]
    template: str
    fetch: Callable[[Customer, Sequence[int]], Mapping[int, Any]] | None = None
    permission: str = ""


_SOURCES: dict[str, TimelineSource] = {}


def timeline_source_register(source: TimelineSource) -> None:
    """Add ``source`` to every customer's timeline (a later one replaces a key)."""
    _SOURCES[source.key] = source


def timeline_sources(user: Any = None) -> list[TimelineSource]:
    """The registered sources, in registration order; those ``user`` may see."""
    return [
        source
        for source in _SOURCES.values()
        if user is None or not source.permission or user.has_perm(source.permission)
    ]


def timeline_rows(
    queryset: QuerySet,
    *,
    source: str,
    at: Any,
    ref: Any = None,
    day: Any = None,
    kind: Any = "",
    category: Any = None,
    detail: Any = "",
    count: Any = 1,
) -> QuerySet:
    """``queryset`` as timeline rows (:data:`ROW_FIELDS`); plain values: constants."""

    def expression(value: Any, output_field: Any) -> Any:
        if hasattr(value, "resolve_expression"):
            return value
        # Typed: PostgreSQL reads a bare NULL in a UNION's first branch as text.
        return Cast(Value(value), output_field=output_field)

    return queryset.annotate(
        tl_source=Value(source, output_field=CharField()),
        tl_ref=expression(ref, BigIntegerField()),
        tl_day=expression(day, DateField()),
        tl_kind=expression(kind, CharField()),
        tl_category=expression(category, CharField()),
        tl_detail=expression(detail, TextField()),
        tl_count=expression(count, IntegerField()),
        tl_at=expression(at, None),
    ).values(*ROW_FIELDS)


@dataclass
class TimelineEntry:
    """One line of the timeline: an object (an order, an interaction…) or a summary."""

    source: str
    at: Any
    template: str
    object: Any = None
    ref: int | None = None
    day: Any = None
    kind: str = ""
    category: str | None = None
    count: int = 1
    keywords: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """A behaviour summary in words ("viewed 14 products in Pet food")."""
        return behaviour_summary(
            self.kind, self.count, category=self.category, keywords=self.keywords
        )


@dataclass
class TimelinePage(PageLinks):
    """One page of a timeline; whether older entries exist, without counting them."""

    entries: list[TimelineEntry]
    number: int
    per_page: int
    has_next: bool
    kinds: tuple[str, ...]

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def customer_timeline(
    customer: Customer,
    *,
    kinds: Iterable[str] | None = None,
    page: Any = 1,
    per_page: int = 25,
    user: Any = None,
    known: Mapping[str, Iterable[Any]] | None = None,
) -> TimelinePage:
    """Page ``page`` of the customer's timeline, newest first, in few queries.

    ``kinds`` picks sources by key (None, or nothing known: all of them); ``user``
    leaves out the sources they may not see. ``known`` holds objects the caller
    has already loaded, by source key (the customer page has the newest orders):
    those on the page are not fetched again. One UNION ALL query, then at most
    one query per source on the page.
    """
    try:
        number = max(1, int(page))
    except (TypeError, ValueError):
        number = 1
    visible = {source.key: source for source in timeline_sources(user)}
    wanted = tuple(key for key in dict.fromkeys(kinds or ()) if key in visible)
    sources = [visible[key] for key in wanted] if wanted else list(visible.values())
    if not sources:
        return TimelinePage([], number, per_page, has_next=False, kinds=wanted)

    offset = (number - 1) * per_page
    # Each source gives at most as many rows as the page can reach: its newest
    # offset + per_page + 1 (the extra one says whether there is a next page).
    reach = offset + per_page + 1
    branches = [source.rows(customer)[:reach] for source in sources]
    if len(branches) > 1:
        combined = (
            branches[0]
            .union(*branches[1:], all=True)
            .order_by("-tl_at", "tl_source", "-tl_ref", "tl_kind", "tl_category")
        )
    else:
        combined = branches[0]
    rows = list(combined[offset:reach])
    has_next = len(rows) > per_page
    rows = rows[:per_page]

    objects = _fetch_objects(customer, rows, visible, known or {})
    entries = []
    for row in rows:
        source = visible[row["tl_source"]]
        obj = None
        if source.fetch is not None:
            obj = objects[source.key].get(row["tl_ref"])
            if obj is None:  # gone since the first query
                continue
        detail = row["tl_detail"] or ""
        entries.append(
            TimelineEntry(
                source=source.key,
                at=row["tl_at"],
                template=source.template,
                object=obj,
                ref=row["tl_ref"],
                day=row["tl_day"],
                kind=row["tl_kind"] or "",
                category=row["tl_category"],
                count=row["tl_count"] or 0,
                keywords=[k for k in detail.split(_DETAIL_SEPARATOR) if k][
                    :SUMMARY_KEYWORDS
                ],
            )
        )
    return TimelinePage(entries, number, per_page, has_next=has_next, kinds=wanted)


def _fetch_objects(
    customer: Customer,
    rows: list[dict[str, Any]],
    sources: Mapping[str, TimelineSource],
    known: Mapping[str, Iterable[Any]],
) -> dict[str, dict[int, Any]]:
    """The page's objects by source key and id: known ones, the rest fetched."""
    refs: dict[str, list[int]] = {}
    for row in rows:
        if sources[row["tl_source"]].fetch is not None:
            refs.setdefault(row["tl_source"], []).append(row["tl_ref"])
    found: dict[str, dict[int, Any]] = {}
    for key, ids in refs.items():
        wanted = set(ids)
        objects = {obj.pk: obj for obj in known.get(key, ()) if obj.pk in wanted}
        missing = [pk for pk in ids if pk not in objects]
        if missing:
            objects.update(sources[key].fetch(customer, missing))
        found[key] = objects
    return found


# --- Behaviour summaries ---------------------------------------------------------


def behaviour_summary(
    kind: str,
    count: int,
    *,
    category: str | None = None,
    keywords: Sequence[str] = (),
) -> str:
    """A day's events of one kind in words, for the timeline."""
    Kind = Event.Kind
    if kind == Kind.PRODUCT_VIEW:
        if category:
            return ngettext(
                "viewed %(count)d product in %(category)s",
                "viewed %(count)d products in %(category)s",
                count,
            ) % {"count": count, "category": category}
        return ngettext(
            "viewed %(count)d product", "viewed %(count)d products", count
        ) % {"count": count}
    if kind == Kind.ADD_TO_CART:
        if category:
            return ngettext(
                "added %(count)d product from %(category)s to the cart",
                "added %(count)d products from %(category)s to the cart",
                count,
            ) % {"count": count, "category": category}
        return ngettext(
            "added %(count)d product to the cart",
            "added %(count)d products to the cart",
            count,
        ) % {"count": count}
    if kind == Kind.SEARCH:
        text = ngettext(
            "searched %(count)d time", "searched %(count)d times", count
        ) % {"count": count}
        if keywords:
            quoted = ", ".join(f"“{keyword}”" for keyword in keywords)
            text = f"{text}: {quoted}"
        return text
    if kind == Kind.CHECKOUT_STARTED:
        return ngettext(
            "started checkout %(count)d time",
            "started checkout %(count)d times",
            count,
        ) % {"count": count}
    return ngettext("viewed %(count)d page", "viewed %(count)d pages", count) % {
        "count": count
    }


# --- The built-in sources -----------------------------------------------------------


def _order_rows(customer: Customer) -> QuerySet:
    return timeline_rows(
        customer.orders.order_by("-placed_at", "-pk"),
        source="orders",
        ref=F("pk"),
        at=F("placed_at"),
    )


def _order_objects(customer: Customer, ids: Sequence[int]) -> dict[int, Any]:
    return customer.orders.select_related("store").in_bulk(ids)


def _interaction_rows(customer: Customer) -> QuerySet:
    return timeline_rows(
        customer.interactions.order_by("-occurred_at", "-pk"),
        source="interactions",
        ref=F("pk"),
        at=F("occurred_at"),
    )


def _interaction_objects(customer: Customer, ids: Sequence[int]) -> dict[int, Any]:
    return customer.interactions.select_related(
        "order", "author", "assignee", "store"
    ).in_bulk(ids)


def _consent_rows(customer: Customer) -> QuerySet:
    return timeline_rows(
        customer.consent_events.order_by("-occurred_at", "-pk"),
        source="consents",
        ref=F("pk"),
        at=F("occurred_at"),
    )


def _consent_objects(customer: Customer, ids: Sequence[int]) -> dict[int, Any]:
    return customer.consent_events.select_related("purpose", "staff_user").in_bulk(ids)


def _behaviour_rows(customer: Customer) -> QuerySet:
    """A day's events per kind (product events also per category), newest first.

    The product of an event is the store's product with its SKU (products are
    per store); its category's name groups product views and adds to cart.
    """
    product_model = apps.get_model("orders", "Product")
    category = Subquery(
        product_model.objects.filter(
            store_id=OuterRef("store_id"), sku=OuterRef("product_sku")
        )
        .order_by()
        .values("category__name")[:1],
        output_field=CharField(),
    )
    grouped = (
        customer.events.order_by()
        .annotate(
            b_day=TruncDate("occurred_at"),
            b_kind=F("kind"),
            b_category=Case(
                When(
                    Q(kind__in=PRODUCT_EVENT_KINDS) & ~Q(product_sku=""), then=category
                ),
                default=Value(None, output_field=CharField()),
                output_field=CharField(),
            ),
        )
        .values("b_day", "b_kind", "b_category")
        .annotate(
            b_count=Count("pk"),
            b_at=Max("occurred_at"),
            b_detail=StringAgg(
                "keyword",
                delimiter=_DETAIL_SEPARATOR,
                distinct=True,
                filter=Q(kind=Event.Kind.SEARCH) & ~Q(keyword=""),
                default=Value(""),
            ),
        )
    )
    return timeline_rows(
        grouped.order_by("-b_at", "b_kind", "b_category"),
        source="behaviour",
        at=F("b_at"),
        day=F("b_day"),
        kind=F("b_kind"),
        category=F("b_category"),
        detail=F("b_detail"),
        count=F("b_count"),
    )


timeline_source_register(
    TimelineSource(
        key="orders",
        label=_("Orders"),
        rows=_order_rows,
        fetch=_order_objects,
        template="customers/support/timeline/_order.html",
    )
)
timeline_source_register(
    TimelineSource(
        key="interactions",
        label=_("Interactions"),
        rows=_interaction_rows,
        fetch=_interaction_objects,
        template="customers/support/timeline/_interaction.html",
        permission="customers.view_interaction",
    )
)
timeline_source_register(
    TimelineSource(
        key="consents",
        label=_("Consents"),
        rows=_consent_rows,
        fetch=_consent_objects,
        template="customers/support/timeline/_consent.html",
    )
)
timeline_source_register(
    TimelineSource(
        key="behaviour",
        label=_("Behaviour"),
        rows=_behaviour_rows,
        template="customers/support/timeline/_behaviour.html",
    )
)
