"""The rule language of dynamic segments: validate a rule tree, compile it to a ``Q``.

Marketing describes a dynamic segment as a JSON tree of conditions on customers.
``validate_rules`` checks a tree against the allow-list below and returns it cleaned,
``compile_rules`` turns it into a ``Q`` for ``Customer`` querysets,
``describe_rules`` reads it out in the active language and ``builder_schema`` tells
the segment builder which fields, operators and choices there are.

Nothing from the input ever becomes SQL or a lookup path: field codes and operators
are looked up in the registry here, and every model field path in a ``Q`` or a
subquery comes from that registry. A custom attribute's code is first found among
the active ``AttributeDefinition`` rows, and reaches the database as a query
parameter (a JSON key), never as part of a path.

The tree
--------
A group: ``{"op": "and" | "or" | "not", "rules": [node, ...]}``, where "not" means
NOT (all of the rules). A group needs at least one rule; the exception is the top
level, where ``{}`` or ``{"op": "and", "rules": []}`` means every customer. The top
level is always a group. Groups nest at most 6 deep, and a tree holds at most 60
conditions.

A condition: ``{"field": "<code>", "operator": "<code>", "value": <value>}``, plus
``"days": <int>`` for a purchase in a period. No other keys. Operators that take no
value (``is_set``, ``is_true``...) take the value out or ``null``.

Errors name the node by its path from the top: ``rules.2.field``,
``rules.0.rules.1.value.3``; the top level itself is ``rules``.

Values
------
- text: a string, trimmed, 1-200 characters, no NUL; compared case-insensitively.
- number: a JSON number (never a string, never true/false), finite, at most 10**12
  either way; ``between`` takes ``[low, high]`` with low <= high.
- date: ``"YYYY-MM-DD"`` from 1800 to 2999; ``between`` takes ``[from, to]``,
  both included. ``in_last_days``, ``not_in_last_days`` and ``in_next_days`` take a
  number of days.
- days: a whole number from 1 to 3650.
- choices: a non-empty list (at most 1000) of allowed values; duplicates dropped.
  Ids (tags, stores, categories) are whole numbers and must exist.

What matches (the semantics)
----------------------------
- Every negative operator is the exact complement of its positive partner, so it
  matches customers with no value at all: ``not_equals``, ``not_contains``,
  ``neq``, ``not_in``, ``is_not_set``, ``is_false`` (no, or not given),
  ``has_none``, ``never``, ``not_within_days`` (did not in the last N days,
  including never), ``not_granted`` (withdrawn or never asked) and a store's
  ``not_in``. A "not" group is the complement of its rules too, NULLs included.
- Every other operator needs a value: ``gt``, ``before``, ``not_in_last_days``
  ("more than N days ago") and the like never match an empty value.
- Dates are calendar days in settings.TIME_ZONE (Europe/Warsaw): a date-time field
  (customer since, last seen, first and last order) is compared by its local date.
  "In the last N days" is from the date N days before today up to today;
  "more than N days ago" is on or before the date N + 1 days before today; "in the
  next N days" is from today to N days from today; purchases and behaviour "in the
  last N days" count from the local midnight N days before today.
- Metrics and RFM come from the customer's overall ``CustomerMetrics`` row (store
  empty). A customer without one (never bought) counts as 0 orders, 0 revenue and 0
  lifetime value, and has no other figures: ``orders_count < 2`` matches them,
  ``average_order_value < 50`` does not. ``days_since_last_order`` is today minus
  the local date of the last order.
- Location conditions match when any of the customer's addresses matches (and
  their negatives when none does); so do tags (``has_any``), purchases (any
  order paid, shipped or delivered; a category includes its subcategories) and
  behaviour events.
- Custom attributes: numbers are compared as numbers whether stored as JSON
  numbers or as strings of digits, dates as ISO strings; a value that is not a
  number (or a date) matches nothing. A choice attribute that holds several values
  is ``in`` a list when any of its values is in it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import (
    BooleanField,
    Case,
    Count,
    DecimalField,
    Exists,
    F,
    Func,
    OuterRef,
    Q,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Collate
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    IContains,
    IEndsWith,
    IExact,
    IsNull,
    IStartsWith,
    LessThan,
    LessThanOrEqual,
    Range,
    Regex,
)
from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django_countries import countries

from consents.models import ConsentPurpose, ConsentState
from customers.models import (
    Address,
    AttributeDefinition,
    Customer,
    CustomerIdentity,
    Event,
    Store,
    Tag,
)
from orders.models import Cart, Category, Order, Product
from segments.models import CustomerMetrics, RfmSegment

MAX_DEPTH = 6
MAX_CONDITIONS = 60
MAX_LIST = 1000
MAX_TEXT = 200
MAX_DAYS = 3650
MAX_NUMBER = 10**12
MIN_DATE = dt.date(1800, 1, 1)
MAX_DATE = dt.date(2999, 12, 31)
# Groups and conditions together: a tree of 60 conditions never needs more, and a
# hostile one (thousands of empty groups) is refused before it costs anything.
MAX_NODES = 400
# An invalid tree reports this many problems at most.
MAX_PROBLEMS = 100
# A cart is abandoned once it has not changed for this long.
CART_ABANDONED_AFTER = dt.timedelta(hours=1)
# Offenders are quoted in messages up to this many characters.
_SHOWN = 60

ATTRIBUTE_PREFIX = "attribute."
_ATTRIBUTE_FIELD = re.compile(r"attribute\.([-a-zA-Z0-9_]{1,64})")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# What a stored attribute number looks like (strings of a Decimal, JSON numbers):
# anything else is not cast, so odd data cannot make the query fail.
_NUMBER_PATTERN = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,4})?\s*$"
_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"

GROUP_OPS = ("and", "or", "not")
GROUP_KEYS = frozenset({"op", "rules"})
CONDITION_KEYS = frozenset({"field", "operator", "value", "days"})

GROUPS = (
    ("profile", _("Profile")),
    ("location", _("Location")),
    ("tags", _("Tags")),
    ("attributes", _("Custom attributes")),
    ("metrics", _("Metrics")),
    ("rfm", _("RFM")),
    ("purchases", _("Purchases")),
    ("behaviour", _("Behaviour")),
    ("consent", _("Consent")),
    ("acquisition", _("Acquisition")),
    ("store", _("Store")),
)


class RuleError(ValidationError):
    """An invalid rule tree: one message per problem, each starting with its path."""


# --- Operators -----------------------------------------------------------------------


@dataclass(frozen=True)
class Operator:
    """One operator of a field type, as the builder offers it.

    ``value_kind`` is what the value is (text, number, pair, date, date_pair, days,
    choices, choice, none); "field" means the field's own kind (purchases).
    ``negates`` names the positive operator this one is the complement of.
    """

    code: str
    label: Any
    value_kind: str
    needs_days: bool = False
    negates: str | None = None

    @property
    def needs_value(self) -> bool:
        return self.value_kind != "none"


_IS_SET = Operator("is_set", _("is filled in"), "none")
_IS_NOT_SET = Operator("is_not_set", _("is empty"), "none", negates="is_set")
_BETWEEN_NUMBERS = Operator("between", _("between"), "pair")
_BETWEEN_DATES = Operator("between", _("between"), "date_pair")
_IN_LAST_DAYS = _("in the last … days")
_NOT_IN_LAST_DAYS = _("not in the last … days")

OPERATORS: dict[str, tuple[Operator, ...]] = {
    "text": (
        Operator("equals", _("is"), "text"),
        Operator("not_equals", _("is not"), "text", negates="equals"),
        Operator("contains", _("contains"), "text"),
        Operator("not_contains", _("does not contain"), "text", negates="contains"),
        Operator("starts_with", _("starts with"), "text"),
        Operator("ends_with", _("ends with"), "text"),
        _IS_SET,
        _IS_NOT_SET,
    ),
    "number": (
        Operator("eq", _("equals"), "number"),
        Operator("neq", _("does not equal"), "number", negates="eq"),
        Operator("gt", _("greater than"), "number"),
        Operator("gte", _("at least"), "number"),
        Operator("lt", _("less than"), "number"),
        Operator("lte", _("at most"), "number"),
        _BETWEEN_NUMBERS,
        _IS_SET,
        _IS_NOT_SET,
    ),
    "date": (
        Operator("before", _("before"), "date"),
        Operator("after", _("after"), "date"),
        Operator("on", _("on"), "date"),
        _BETWEEN_DATES,
        Operator("in_last_days", _IN_LAST_DAYS, "days"),
        Operator("not_in_last_days", _("more than … days ago"), "days"),
        Operator("in_next_days", _("in the next … days"), "days"),
        _IS_SET,
        _IS_NOT_SET,
    ),
    "choice": (
        Operator("in", _("is one of"), "choices"),
        Operator("not_in", _("is not one of"), "choices", negates="in"),
    ),
    "boolean": (
        Operator("is_true", _("is yes"), "none"),
        Operator("is_false", _("is no or not given"), "none", negates="is_true"),
    ),
    "tags": (
        Operator("has_any", _("has any of"), "choices"),
        Operator("has_all", _("has all of"), "choices"),
        Operator("has_none", _("has none of"), "choices", negates="has_any"),
    ),
    "purchase": (
        Operator("ever", _("ever"), "field"),
        Operator("never", _("never"), "field", negates="ever"),
        Operator("within_days", _IN_LAST_DAYS, "field", needs_days=True),
        Operator(
            "not_within_days",
            _NOT_IN_LAST_DAYS,
            "field",
            needs_days=True,
            negates="within_days",
        ),
    ),
    "behaviour": (
        Operator("within_days", _IN_LAST_DAYS, "days"),
        Operator("not_within_days", _NOT_IN_LAST_DAYS, "days", negates="within_days"),
    ),
    "consent": (
        Operator("granted", _("granted"), "choice"),
        Operator("not_granted", _("not granted"), "choice", negates="granted"),
    ),
    "store": (
        Operator("in", _("is one of"), "choices"),
        Operator("not_in", _("is not one of"), "choices", negates="in"),
    ),
}


# --- Fields --------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """One field of the rule language and where its values live.

    ``source`` says how a condition is compiled (customer column, any address,
    the overall metrics row, a custom attribute, a subquery); ``column`` is the
    model field path in that source, or the attribute's JSON key, and comes only
    from this registry or from an AttributeDefinition row. ``choices`` names where
    the allowed values come from; ``reference`` is set when they are rows that
    must exist (ids, or consent purpose codes).
    """

    code: str
    label: Any
    group: str
    type: str
    source: str
    column: str = ""
    choices: str | None = None
    # metrics: the value of a customer with no overall row; None is "no value".
    default: int | None = None
    # Never empty (created_at, orders): no is_set / is_not_set.
    always_set: bool = False
    # A DateTimeField, compared by its local date.
    datetime: bool = False
    # Whole numbers only (a count, a score): 2.5 is compared as a count would be.
    integer: bool = False
    minimum: int | None = None
    maximum: int | None = None
    # Purchases and behaviour: what "did not" and "never" read as.
    negative_label: Any = None
    never_label: Any = None
    # Purchases: the value's kind (choice, text, number).
    value_kind: str = ""
    # Custom attributes: several values allowed.
    multiple: bool = False

    @property
    def operators(self) -> tuple[Operator, ...]:
        operators = OPERATORS[self.type]
        if self.always_set:
            operators = tuple(
                o for o in operators if o.code not in {"is_set", "is_not_set"}
            )
        return operators

    def operator(self, code: Any) -> Operator | None:
        for operator in self.operators:
            if operator.code == code:
                return operator
        return None

    @property
    def reference(self) -> str | None:
        return self.choices if self.choices in _REFERENCES else None


# Choice sources that are rows: their values must exist.
_REFERENCES = frozenset({"tag", "store", "category", "product", "purpose"})


def _profile(code: str, label: Any, type_: str, **options: Any) -> FieldSpec:
    return FieldSpec(code, label, "profile", type_, "customer", column=code, **options)


def _metric(code: str, label: Any, type_: str, column: str, **options: Any):
    group = options.pop("group", "metrics")
    return FieldSpec(code, label, group, type_, "metrics", column=column, **options)


FIELDS: tuple[FieldSpec, ...] = (
    _profile("first_name", _("first name"), "text"),
    _profile("last_name", _("last name"), "text"),
    _profile("email", _("email"), "text"),
    _profile("phone", _("phone"), "text"),
    _profile("company", _("company"), "text"),
    _profile("gender", _("gender"), "choice", choices="gender"),
    _profile("language", _("language"), "choice", choices="language"),
    _profile("status", _("status"), "choice", choices="status"),
    _profile("birth_date", _("birth date"), "date"),
    _profile("created_at", _("customer since"), "date", datetime=True, always_set=True),
    _profile("last_seen_at", _("last seen"), "date", datetime=True),
    FieldSpec("city", _("city"), "location", "text", "address", column="city"),
    FieldSpec("postcode", _("postcode"), "location", "text", "address", "postcode"),
    FieldSpec("region", _("region"), "location", "text", "address", column="region"),
    FieldSpec(
        "country", _("country"), "location", "choice", "address", "country", "country"
    ),
    FieldSpec("tags", _("tags"), "tags", "tags", "tags", choices="tag"),
    _metric(
        "orders_count",
        _("orders"),
        "number",
        "orders_count",
        default=0,
        always_set=True,
        integer=True,
    ),
    _metric("revenue", _("revenue"), "number", "revenue", default=0, always_set=True),
    _metric(
        "average_order_value",
        _("average order value"),
        "number",
        "average_order_value",
    ),
    _metric(
        "average_days_between_orders",
        _("average days between orders"),
        "number",
        "average_days_between_orders",
    ),
    _metric(
        "clv", _("lifetime value (CLV)"), "number", "clv", default=0, always_set=True
    ),
    _metric(
        "first_order_at", _("first order"), "date", "first_order_at", datetime=True
    ),
    _metric("last_order_at", _("last order"), "date", "last_order_at", datetime=True),
    _metric(
        "predicted_next_order_on",
        _("next purchase expected"),
        "date",
        "predicted_next_order_on",
    ),
    FieldSpec(
        "days_since_last_order",
        _("days since last order"),
        "metrics",
        "number",
        "days_since_last_order",
        column="last_order_at",
        integer=True,
    ),
    _metric(
        "favourite_category",
        _("favourite category"),
        "choice",
        "favourite_category_id",
        choices="category",
    ),
    _metric("favourite_brand", _("favourite brand"), "text", "favourite_brand"),
    _metric(
        "r_score",
        _("R score"),
        "number",
        "recency_score",
        group="rfm",
        integer=True,
        minimum=1,
        maximum=5,
    ),
    _metric(
        "f_score",
        _("F score"),
        "number",
        "frequency_score",
        group="rfm",
        integer=True,
        minimum=1,
        maximum=5,
    ),
    _metric(
        "m_score",
        _("M score"),
        "number",
        "monetary_score",
        group="rfm",
        integer=True,
        minimum=1,
        maximum=5,
    ),
    _metric(
        "rfm_segment",
        _("RFM segment"),
        "choice",
        "rfm_segment",
        group="rfm",
        choices="rfm_segment",
    ),
    FieldSpec(
        "bought_category",
        _("bought category"),
        "purchases",
        "purchase",
        "purchase",
        column="lines__category_id__in",
        choices="category",
        value_kind="choice",
        negative_label=_("did not buy category"),
        never_label=_("never bought category"),
    ),
    FieldSpec(
        "bought_brand",
        _("bought brand"),
        "purchases",
        "purchase",
        "purchase",
        column="lines__product__brand__iexact",
        value_kind="text",
        negative_label=_("did not buy brand"),
        never_label=_("never bought brand"),
    ),
    FieldSpec(
        "bought_product",
        _("bought product"),
        "purchases",
        "purchase",
        "purchase",
        column="lines__product_id",
        choices="product",
        value_kind="number",
        negative_label=_("did not buy product"),
        never_label=_("never bought product"),
    ),
    FieldSpec(
        "viewed_product",
        _("viewed a product"),
        "behaviour",
        "behaviour",
        "event",
        column=Event.Kind.PRODUCT_VIEW,
        negative_label=_("did not view a product"),
    ),
    FieldSpec(
        "added_to_cart",
        _("added to cart"),
        "behaviour",
        "behaviour",
        "event",
        column=Event.Kind.ADD_TO_CART,
        negative_label=_("did not add to cart"),
    ),
    FieldSpec(
        "abandoned_cart",
        _("abandoned a cart"),
        "behaviour",
        "behaviour",
        "cart",
        negative_label=_("did not abandon a cart"),
    ),
    FieldSpec(
        "consent", _("consent"), "consent", "consent", "consent", choices="purpose"
    ),
    FieldSpec(
        "acquisition_source",
        _("acquisition source"),
        "acquisition",
        "text",
        "customer",
        column="acquisition_source",
    ),
    FieldSpec(
        "acquisition_medium",
        _("acquisition medium"),
        "acquisition",
        "text",
        "customer",
        column="acquisition_medium",
    ),
    FieldSpec(
        "acquisition_campaign",
        _("acquisition campaign"),
        "acquisition",
        "text",
        "customer",
        column="acquisition_campaign",
    ),
    FieldSpec("store", _("store"), "store", "store", "store", choices="store"),
)
FIELDS_BY_CODE = {spec.code: spec for spec in FIELDS}

_ATTRIBUTE_TYPES = {
    AttributeDefinition.Kind.TEXT: "text",
    AttributeDefinition.Kind.NUMBER: "number",
    AttributeDefinition.Kind.DATE: "date",
    AttributeDefinition.Kind.BOOLEAN: "boolean",
    AttributeDefinition.Kind.CHOICE: "choice",
}


def _attribute_field(definition: AttributeDefinition) -> FieldSpec:
    return FieldSpec(
        code=f"{ATTRIBUTE_PREFIX}{definition.code}",
        label=definition.label,
        group="attributes",
        type=_ATTRIBUTE_TYPES[definition.kind],
        source="attribute",
        column=definition.code,
        choices="attribute" if definition.kind == "choice" else None,
        multiple=definition.multiple,
    )


# --- Rows the rules refer to ---------------------------------------------------------


class _Catalogue:
    """Attribute definitions, categories and row labels, each loaded once per call."""

    def __init__(self) -> None:
        self._attributes: dict[str, AttributeDefinition] | None = None
        self._attribute_fields: dict[str, FieldSpec] = {}
        self._categories: dict[int, tuple[str, int | None, str]] | None = None
        self._many_stores: bool | None = None
        self._rfm: dict[str, str] | None = None
        # kind -> value -> label, for the rows a tree refers to.
        self.labels: dict[str, dict[Any, str]] = defaultdict(dict)

    @property
    def attributes(self) -> dict[str, AttributeDefinition]:
        if self._attributes is None:
            self._attributes = {
                definition.code: definition
                for definition in AttributeDefinition.objects.filter(is_active=True)
            }
        return self._attributes

    def field(self, code: Any) -> FieldSpec | None:
        """The field for ``code``, or None: built-in, or an active attribute's."""
        if not isinstance(code, str):
            return None
        if code in FIELDS_BY_CODE:
            return FIELDS_BY_CODE[code]
        match = _ATTRIBUTE_FIELD.fullmatch(code)
        if match is None:
            return None
        definition = self.attributes.get(match.group(1))
        if definition is None:
            return None
        if definition.code not in self._attribute_fields:
            self._attribute_fields[definition.code] = _attribute_field(definition)
        return self._attribute_fields[definition.code]

    def attribute_fields(self) -> list[FieldSpec]:
        """The fields of the active custom attributes, in their order."""
        codes = (f"{ATTRIBUTE_PREFIX}{code}" for code in self.attributes)
        return [spec for spec in map(self.field, codes) if spec is not None]

    @property
    def categories(self) -> dict[int, tuple[str, int | None, str]]:
        """Every category: id -> (name, parent id, store name). One query."""
        if self._categories is None:
            rows = Category.objects.order_by().values_list(
                "pk", "name", "parent_id", "store__name"
            )
            self._categories = {
                pk: (name, parent_id, store) for pk, name, parent_id, store in rows
            }
        return self._categories

    def category_path(self, pk: int) -> str:
        """Its path ("Karma › Karma sucha"), with the store when several have any."""
        names, seen, node = [], set(), pk
        while node is not None and node in self.categories and node not in seen:
            seen.add(node)
            name, node, _store = self.categories[node]
            names.append(name)
        path = " › ".join(reversed(names))
        if self._many_stores is None:
            stores = {store for _name, _parent, store in self.categories.values()}
            self._many_stores = len(stores) > 1
        if self._many_stores and pk in self.categories:
            path = f"{path} ({self.categories[pk][2]})"
        return path

    def category_subtree(self, pk: int) -> list[int]:
        """``pk`` and every category below it."""
        children: dict[int, list[int]] = defaultdict(list)
        for child, (_name, parent, _store) in self.categories.items():
            if parent is not None:
                children[parent].append(child)
        found, frontier = {pk}, [pk]
        while frontier:
            frontier = [c for p in frontier for c in children[p] if c not in found]
            found.update(frontier)
        return sorted(found)

    @property
    def rfm(self) -> dict[str, str]:
        """RFM segment code -> its name (staff may rename a segment)."""
        if self._rfm is None:
            names = {code: str(label) for code, label in RfmSegment.Code.choices}
            # Not str(segment): RfmSegment.__str__ returns the lazy label itself.
            for code, name in RfmSegment.objects.values_list("code", "name"):
                if name:
                    names[code] = name
            self._rfm = names
        return self._rfm

    def choices(self, spec: FieldSpec) -> list[tuple[Any, str]]:
        """(value, label) of every allowed value of a choice field, for the builder."""
        source = spec.choices
        if source == "attribute":
            definition = self.attributes[spec.column]
            return [(choice, choice) for choice in definition.choices]
        if source == "category":
            paths = [(pk, self.category_path(pk)) for pk in self.categories]
            return sorted(paths, key=lambda item: item[1].lower())
        if source == "rfm_segment":
            return list(self.rfm.items())
        if source == "tag":
            return list(Tag.objects.order_by("name").values_list("pk", "name"))
        if source == "store":
            return list(Store.objects.order_by("name").values_list("pk", "name"))
        if source == "purpose":
            return [(p.code, str(p)) for p in ConsentPurpose.objects.all()]
        if source == "product":
            return []  # too many to list: the builder asks for an id
        return [(value, str(label)) for value, label in _static_choices(source)]


def _static_choices(source: str | None) -> list[tuple[str, Any]]:
    if source == "gender":
        return list(Customer.Gender.choices)
    if source == "language":
        return list(settings.LANGUAGES)
    if source == "status":
        return list(Customer.Status.choices)
    if source == "country":
        return [(country.code, country.name) for country in countries]
    if source == "rfm_segment":
        return list(RfmSegment.Code.choices)
    return []


# --- Validation ----------------------------------------------------------------------


def _show(value: Any, depth: int = 0) -> str:
    """``value`` as messages quote it: JSON-like, short, control characters escaped."""
    if isinstance(value, str):
        shown = json.dumps(value[:_SHOWN], ensure_ascii=False)
        return shown[:-1] + '…"' if len(value) > _SHOWN else shown
    if value is None or isinstance(value, bool | float):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 64 else gettext("a huge number")
    if isinstance(value, list | tuple):
        if len(value) <= 3 and depth < 2:
            return "[" + ", ".join(_show(item, depth + 1) for item in value) + "]"
        return ngettext(
            "a list of %(count)s value", "a list of %(count)s values", len(value)
        ) % {"count": len(value)}
    if isinstance(value, dict):
        return "{…}"
    return type(value).__name__


def _join(path: str, key: str | int) -> str:
    return f"{path}.{key}" if path else str(key)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Stop(Exception):
    """Enough problems found: stop walking the tree."""


class _Validator:
    """One walk over a tree: the cleaned tree, or every problem with its path."""

    def __init__(self, catalogue: _Catalogue) -> None:
        self.catalogue = catalogue
        self.problems: list[ValidationError] = []
        self.conditions = 0
        self.nodes = 0
        # kind -> [(value, path, field label)], checked against the database at the end.
        self.references: dict[str, list[tuple[Any, str, Any]]] = defaultdict(list)

    def problem(self, path: str, code: str, message: str) -> None:
        self.problems.append(
            ValidationError(f"{path or 'rules'}: {message}", code=code)
        )
        if len(self.problems) >= MAX_PROBLEMS:
            raise _Stop

    # The tree

    def tree(self, tree: Any) -> dict:
        if isinstance(tree, dict) and not tree:
            return {"op": "and", "rules": []}
        if not isinstance(tree, dict):
            self.problem("", "invalid", self._not_a_rule(tree))
            return {}
        if not (GROUP_KEYS & tree.keys()):
            self.problem(
                "",
                "invalid",
                gettext('the top level must be a group: {"op": "and", "rules": […]}'),
            )
            return {}
        return self.group(tree, "", depth=1) or {}

    def node(self, node: Any, path: str, depth: int) -> dict | None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.problem("", "too_large", gettext("the tree is too large"))
            raise _Stop
        if not isinstance(node, dict):
            self.problem(path, "invalid", self._not_a_rule(node))
            return None
        if GROUP_KEYS & node.keys():
            return self.group(node, path, depth)
        if {"field", "operator"} & node.keys():
            return self.condition(node, path)
        self.problem(path, "invalid", self._not_a_rule(node))
        return None

    def _not_a_rule(self, node: Any) -> str:
        return gettext(
            '%(value)s is not a rule: an object with "field" and "operator", '
            'or a group with "op" and "rules"'
        ) % {"value": _show(node)}

    def _unknown_keys(self, node: dict, allowed: frozenset, path: str) -> None:
        unknown = (key for key in node if key not in allowed)
        for key in islice(unknown, 5):
            self.problem(
                path,
                "unknown_key",
                gettext("unknown key %(key)s") % {"key": _show(key)},
            )

    def group(self, node: dict, path: str, depth: int) -> dict | None:
        if depth > MAX_DEPTH:
            self.problem(
                path,
                "too_deep",
                gettext("groups nest at most %(max)s deep") % {"max": MAX_DEPTH},
            )
            return None
        self._unknown_keys(node, GROUP_KEYS, path)
        op = node.get("op")
        if op not in GROUP_OPS:
            self.problem(
                _join(path, "op"),
                "invalid_op",
                gettext("%(value)s is not a group operator (and, or, not)")
                % {"value": _show(op)},
            )
        rules = node.get("rules")
        rules_path = _join(path, "rules")
        if not isinstance(rules, list):
            self.problem(
                rules_path,
                "invalid",
                gettext("%(value)s is not a list of rules") % {"value": _show(rules)},
            )
            return None
        if not rules and not (path == "" and op == "and"):
            self.problem(
                rules_path, "empty", gettext("a group needs at least one rule")
            )
        if len(rules) > MAX_CONDITIONS:
            self._too_many()
        cleaned = [
            self.node(child, _join(rules_path, index), depth + 1)
            for index, child in enumerate(rules)
        ]
        return {"op": op, "rules": cleaned}

    def _too_many(self) -> None:
        self.problem(
            "",
            "too_many",
            gettext("at most %(max)s conditions in a tree") % {"max": MAX_CONDITIONS},
        )
        raise _Stop

    # Conditions

    def condition(self, node: dict, path: str) -> dict | None:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            self._too_many()
        self._unknown_keys(node, CONDITION_KEYS, path)
        if "field" not in node:
            self.problem(_join(path, "field"), "required", gettext("a field is needed"))
            return None
        spec = self.catalogue.field(node["field"])
        if spec is None:
            self.problem(
                _join(path, "field"),
                "unknown_field",
                gettext("unknown field %(field)s") % {"field": _show(node["field"])},
            )
            return None
        if "operator" not in node:
            self.problem(
                _join(path, "operator"), "required", gettext("an operator is needed")
            )
            return None
        operator = spec.operator(node["operator"])
        if operator is None:
            self.problem(
                _join(path, "operator"),
                "unknown_operator",
                gettext("%(operator)s is not an operator for %(field)s")
                % {"operator": _show(node["operator"]), "field": spec.label},
            )
            return None
        cleaned: dict[str, Any] = {"field": spec.code, "operator": operator.code}
        value_path = _join(path, "value")
        value = node.get("value")
        if operator.needs_value:
            if value is None:
                self.problem(
                    value_path,
                    "required",
                    gettext("a value is needed for %(field)s") % {"field": spec.label},
                )
                return None
            cleaned_value = self.value(spec, operator, value, value_path)
            if cleaned_value is None:
                return None
            cleaned["value"] = cleaned_value
        elif value is not None:
            self.problem(
                value_path,
                "unexpected",
                gettext("%(operator)s takes no value")
                % {"operator": _show(operator.code)},
            )
            return None
        days_path = _join(path, "days")
        days = node.get("days")
        if operator.needs_days:
            if days is None:
                self.problem(
                    days_path,
                    "required",
                    gettext("a number of days is needed for %(field)s")
                    % {"field": spec.label},
                )
                return None
            cleaned_days = self.days(days, days_path)
            if cleaned_days is None:
                return None
            cleaned["days"] = cleaned_days
        elif days is not None:
            self.problem(
                days_path,
                "unexpected",
                gettext('"days" is not used with %(operator)s')
                % {"operator": _show(operator.code)},
            )
            return None
        return cleaned

    # Values

    def value(self, spec: FieldSpec, operator: Operator, value: Any, path: str) -> Any:
        kind = (
            spec.value_kind if operator.value_kind == "field" else operator.value_kind
        )
        if kind == "text":
            return self.text(spec, value, path)
        if kind == "number":
            if spec.reference:
                return self.choice(spec, value, path)
            return self.number(spec, value, path)
        if kind == "pair":
            return self.pair(spec, value, path, self.number, _("numbers"))
        if kind == "date":
            return self.date(spec, value, path)
        if kind == "date_pair":
            return self.pair(spec, value, path, self.date, _("dates"))
        if kind == "days":
            return self.days(value, path)
        if kind == "choice":
            return self.choice(spec, value, path)
        return self.choice_list(spec, value, path)

    def text(self, spec: FieldSpec, value: Any, path: str) -> str | None:
        field = {"field": spec.label, "value": _show(value), "max": MAX_TEXT}
        if not isinstance(value, str):
            message = gettext("%(value)s is not a text for %(field)s")
        elif "\x00" in value:
            message = gettext("%(value)s contains a NUL character")
        elif not value.strip():
            message = gettext("a text is needed for %(field)s")
        elif len(value.strip()) > MAX_TEXT:
            message = gettext("%(value)s is longer than %(max)s characters")
        else:
            return value.strip()
        self.problem(path, "invalid_text", message % field)
        return None

    def number(self, spec: FieldSpec, value: Any, path: str) -> int | float | None:
        params = {"field": spec.label, "value": _show(value)}
        # isfinite() of a huge int overflows: only floats can be NaN or infinite.
        if not _is_number(value) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            self.problem(
                path,
                "invalid_number",
                gettext("%(value)s is not a number for %(field)s") % params,
            )
            return None
        low = -MAX_NUMBER if spec.minimum is None else spec.minimum
        high = MAX_NUMBER if spec.maximum is None else spec.maximum
        if not low <= value <= high:
            params.update(low=low, high=high)
            self.problem(
                path,
                "out_of_range",
                gettext("%(value)s is out of range for %(field)s (%(low)s to %(high)s)")
                % params,
            )
            return None
        return value

    def date(self, spec: FieldSpec, value: Any, path: str) -> str | None:
        params = {"field": spec.label, "value": _show(value)}
        parsed = None
        if isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
            try:
                parsed = dt.date.fromisoformat(value.strip())
            except ValueError:
                parsed = None
        if parsed is None:
            message = gettext("%(value)s is not a date (YYYY-MM-DD) for %(field)s")
        elif not MIN_DATE <= parsed <= MAX_DATE:
            params.update(low=MIN_DATE.isoformat(), high=MAX_DATE.isoformat())
            message = gettext(
                "%(value)s is out of range for %(field)s (%(low)s to %(high)s)"
            )
        else:
            return parsed.isoformat()
        self.problem(path, "invalid_date", message % params)
        return None

    def pair(
        self,
        spec: FieldSpec,
        value: Any,
        path: str,
        clean: Callable[[FieldSpec, Any, str], Any],
        what: Any,
    ) -> list | None:
        if not isinstance(value, list) or len(value) != 2:
            self.problem(
                path,
                "invalid_pair",
                gettext("%(value)s is not a pair of %(what)s [from, to] for %(field)s")
                % {"value": _show(value), "what": what, "field": spec.label},
            )
            return None
        low = clean(spec, value[0], _join(path, 0))
        high = clean(spec, value[1], _join(path, 1))
        if low is None or high is None:
            return None
        if low > high:  # ISO dates compare as their strings do
            self.problem(
                path,
                "invalid_pair",
                gettext("%(value)s: the first must not be greater than the second")
                % {"value": _show(value)},
            )
            return None
        return [low, high]

    def days(self, value: Any, path: str) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool):
            if 1 <= value <= MAX_DAYS:
                return value
        self.problem(
            path,
            "invalid_days",
            gettext("%(value)s is not a number of days (1 to %(max)s)")
            % {"value": _show(value), "max": MAX_DAYS},
        )
        return None

    def choice_list(self, spec: FieldSpec, value: Any, path: str) -> list | None:
        params = {"field": spec.label, "value": _show(value), "max": MAX_LIST}
        if not isinstance(value, list):
            message = gettext("%(value)s is not a list of values for %(field)s")
        elif not value:
            message = gettext("choose at least one value for %(field)s")
        elif len(value) > MAX_LIST:
            message = gettext("at most %(max)s values for %(field)s")
        else:
            before = len(self.problems)
            cleaned, seen = [], set()
            for index, item in enumerate(value):
                choice = self.choice(spec, item, _join(path, index))
                if choice is not None and choice not in seen:
                    seen.add(choice)
                    cleaned.append(choice)
                if len(self.problems) - before >= 5:
                    break  # five bad values tell enough
            return cleaned if len(self.problems) == before else None
        self.problem(path, "invalid_choices", message % params)
        return None

    def choice(self, spec: FieldSpec, value: Any, path: str) -> Any:
        """One allowed value; rows (ids, purpose codes) are checked at the end."""
        params = {"field": spec.label, "value": _show(value)}
        reference = spec.reference
        if reference == "purpose":
            if isinstance(value, str) and value.strip() and len(value) <= MAX_TEXT:
                code = value.strip()
                if "\x00" not in code:
                    self.references[reference].append((code, path, spec.label))
                    return code
        elif reference:
            if isinstance(value, int) and not isinstance(value, bool):
                if 1 <= value <= MAX_NUMBER:
                    self.references[reference].append((value, path, spec.label))
                    return value
            self.problem(
                path,
                "invalid_id",
                gettext("%(value)s is not an id for %(field)s") % params,
            )
            return None
        elif isinstance(value, str):
            choice = (
                value.strip().upper() if spec.choices == "country" else value.strip()
            )
            if choice in self._allowed(spec):
                return choice
        self.problem(
            path,
            "invalid_choice",
            gettext("%(value)s is not a choice for %(field)s") % params,
        )
        return None

    def _allowed(self, spec: FieldSpec) -> set[str]:
        if spec.choices == "attribute":
            return set(self.catalogue.attributes[spec.column].choices)
        return {value for value, _label in _static_choices(spec.choices)}

    def check_references(self) -> None:
        """Every referred row exists: one query per kind of row."""
        catalogue = self.catalogue
        for kind, references in self.references.items():
            wanted = {value for value, _path, _label in references}
            if kind == "category":
                found = {
                    pk: catalogue.category_path(pk)
                    for pk in wanted
                    if pk in catalogue.categories
                }
            elif kind == "tag":
                found = dict(
                    Tag.objects.filter(pk__in=wanted).values_list("pk", "name")
                )
            elif kind == "store":
                found = dict(
                    Store.objects.filter(pk__in=wanted).values_list("pk", "name")
                )
            elif kind == "product":
                found = {
                    pk: f"{name} ({sku})"
                    for pk, name, sku in Product.objects.filter(
                        pk__in=wanted
                    ).values_list("pk", "name", "sku")
                }
            else:
                found = {
                    purpose.code: str(purpose)
                    for purpose in ConsentPurpose.objects.filter(code__in=wanted)
                }
            catalogue.labels[kind].update(found)
            for value, path, label in references:
                if value not in found:
                    self.problem(
                        path,
                        f"unknown_{kind}",
                        _MISSING[kind] % {"value": _show(value), "field": label},
                    )


_MISSING = {
    "tag": _("no tag with id %(value)s"),
    "store": _("no store with id %(value)s"),
    "category": _("no category with id %(value)s"),
    "product": _("no product with id %(value)s"),
    "purpose": _("no consent purpose %(value)s"),
}


def _validate(tree: Any) -> tuple[dict, _Catalogue]:
    catalogue = _Catalogue()
    validator = _Validator(catalogue)
    try:
        cleaned = validator.tree(tree)
        if not validator.problems:
            validator.check_references()
    except _Stop:
        pass
    except RecursionError:  # a Python caller's self-containing list, say
        validator.problems.append(
            ValidationError(f"rules: {gettext('the tree is too large')}", "too_large")
        )
    if validator.problems:
        raise RuleError(validator.problems)
    return cleaned, catalogue


def validate_rules(tree: Any) -> dict:
    """The tree cleaned (values trimmed, duplicates dropped), or RuleError.

    RuleError is a ValidationError with one message per problem, each starting
    with the path of the node at fault: ``rules.2.field: unknown field "password"``.
    """
    cleaned, _catalogue = _validate(tree)
    return cleaned


# --- Compiling -----------------------------------------------------------------------

# Matches no customer. Django drops it from an OR and turns NOT of it into "all".
NOTHING = Q(pk__in=[])

_TEXT_LOOKUPS = {
    "equals": "iexact",
    "contains": "icontains",
    "starts_with": "istartswith",
    "ends_with": "iendswith",
}
_TEXT_EXPRESSION_LOOKUPS = {
    "equals": IExact,
    "contains": IContains,
    "starts_with": IStartsWith,
    "ends_with": IEndsWith,
}
_NUMBER_LOOKUPS = {"eq": "exact", "gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte"}
_NUMBER_EXPRESSION_LOOKUPS = {
    "eq": Exact,
    "gt": GreaterThan,
    "gte": GreaterThanOrEqual,
    "lt": LessThan,
    "lte": LessThanOrEqual,
}
# Whole-number fields: how far (in days or counts) we look before calling it "never".
_FAR = 100_000


class _JsonValue(Func):
    """``attributes -> key``: the key is a query parameter, never SQL."""

    arg_joiner = " -> "
    template = "(%(expressions)s)"


class _JsonText(Func):
    """``attributes ->> key``: the value as text (NULL when the key is missing)."""

    arg_joiner = " ->> "
    template = "(%(expressions)s)"
    output_field = TextField()


class _ToNumeric(Func):
    template = "(%(expressions)s)::numeric"
    output_field = DecimalField()


def _definite(condition: Any) -> Q:
    """``condition`` false where SQL would say unknown, so NOT of it is the rest."""
    return Q(Coalesce(condition, Value(False), output_field=BooleanField()))


def _integer_bounds(operator: str, value: Any) -> tuple[int | None, int | None] | None:
    """The whole numbers ``operator value`` allows, as (low, high); None: none do."""
    if operator == "eq":
        return (int(value), int(value)) if value == int(value) else None
    if operator == "gt":
        return math.floor(value) + 1, None
    if operator == "gte":
        return math.ceil(value), None
    if operator == "lt":
        return None, math.ceil(value) - 1
    if operator == "lte":
        return None, math.floor(value)
    low, high = math.ceil(value[0]), math.floor(value[1])
    return (low, high) if low <= high else None


def _number_holds(operator: str, value: Any, number: int) -> bool:
    """Whether ``number operator value`` is true (a missing row's default)."""
    if operator == "between":
        return value[0] <= number <= value[1]
    return {
        "eq": number == value,
        "gt": number > value,
        "gte": number >= value,
        "lt": number < value,
        "lte": number <= value,
    }.get(operator, False)


def _decimal(value: int | float) -> Decimal:
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


class _Compiler:
    """Turns a cleaned tree into a Q, as of ``now``."""

    def __init__(self, catalogue: _Catalogue, now: dt.datetime) -> None:
        self.catalogue = catalogue
        self.zone = ZoneInfo(settings.TIME_ZONE)
        if timezone.is_naive(now):
            now = timezone.make_aware(now, self.zone)
        self.now = now
        self.today = timezone.localtime(now, self.zone).date()

    def node(self, node: dict) -> Q:
        if "op" not in node:
            return self.condition(node)
        parts = [self.node(child) for child in node["rules"]]
        if not parts:
            return Q()
        combined = parts[0]
        for part in parts[1:]:
            combined = combined | part if node["op"] == "or" else combined & part
        return ~combined if node["op"] == "not" else combined

    def condition(self, node: dict) -> Q:
        spec = self.catalogue.field(node["field"])
        operator = spec.operator(node["operator"])
        if operator.negates:
            return ~self.positive(spec, operator.negates, node)
        return self.positive(spec, operator.code, node)

    def positive(self, spec: FieldSpec, operator: str, node: dict) -> Q:
        value = node.get("value")
        compile_source = getattr(self, f"_{spec.source}")
        return compile_source(spec, operator, value, node)

    # Dates

    def day_start(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time.min, tzinfo=self.zone)

    def days_ago(self, days: int) -> dt.date:
        return self.today - dt.timedelta(days=days)

    def date_range(
        self, operator: str, value: Any
    ) -> tuple[dt.date | None, dt.date | None]:
        """The local dates ``operator value`` covers, first and last included."""
        if operator in {"in_last_days", "not_in_last_days", "in_next_days"}:
            if operator == "in_last_days":
                return self.days_ago(value), self.today
            if operator == "not_in_last_days":
                return None, self.days_ago(value + 1)
            return self.today, self.today + dt.timedelta(days=value)
        if operator == "between":
            return dt.date.fromisoformat(value[0]), dt.date.fromisoformat(value[1])
        day = dt.date.fromisoformat(value)
        one = dt.timedelta(days=1)
        return {
            "before": (None, day - one),
            "after": (day + one, None),
            "on": (day, day),
        }[operator]

    def date_q(self, spec: FieldSpec, column: str, first, last) -> Q:
        condition = Q()
        if spec.datetime:
            if first is not None:
                condition &= Q((f"{column}__gte", self.day_start(first)))
            if last is not None:
                next_day = last + dt.timedelta(days=1)
                condition &= Q((f"{column}__lt", self.day_start(next_day)))
            return condition
        if first is not None:
            condition &= Q((f"{column}__gte", first))
        if last is not None:
            condition &= Q((f"{column}__lte", last))
        return condition

    # A column, of the customer or of the row a subquery reads

    def column(self, spec: FieldSpec, operator: str, value: Any) -> Q:
        column = spec.column
        if operator == "is_set":
            if spec.type == "text":
                return Q((f"{column}__gt", ""))  # neither NULL nor ""
            return Q((f"{column}__isnull", False))
        if spec.type == "text":
            return Q((f"{column}__{_TEXT_LOOKUPS[operator]}", value))
        if spec.type == "choice":
            return Q((f"{column}__in", value))
        if spec.type == "date":
            first, last = self.date_range(operator, value)
            return self.date_q(spec, column, first, last)
        if spec.integer:
            bounds = _integer_bounds(operator, value)
            if bounds is None:
                return NOTHING
            condition = Q()
            if bounds[0] is not None:
                condition &= Q((f"{column}__gte", bounds[0]))
            if bounds[1] is not None:
                condition &= Q((f"{column}__lte", bounds[1]))
            return condition
        if operator == "between":
            return Q((f"{column}__range", (_decimal(value[0]), _decimal(value[1]))))
        return Q((f"{column}__{_NUMBER_LOOKUPS[operator]}", _decimal(value)))

    def _customer(self, spec, operator, value, node) -> Q:
        return self.column(spec, operator, value)

    def _address(self, spec, operator, value, node) -> Q:
        addresses = Address.objects.filter(customer=OuterRef("pk"))
        return Q(Exists(addresses.filter(self.column(spec, operator, value))))

    def _metrics(self, spec, operator, value, node) -> Q:
        overall = CustomerMetrics.objects.overall().filter(customer=OuterRef("pk"))
        condition = self.column(spec, operator, value)
        if condition == NOTHING:
            return NOTHING
        matches = Q(Exists(overall.filter(condition)))
        # A customer with no overall row has the defaults (0 orders, 0 revenue).
        if spec.default is not None and _number_holds(operator, value, spec.default):
            matches |= ~Q(Exists(overall))
        return matches

    def _days_since_last_order(self, spec, operator, value, node) -> Q:
        overall = CustomerMetrics.objects.overall().filter(customer=OuterRef("pk"))
        if operator == "is_set":
            return Q(Exists(overall))
        bounds = _integer_bounds(operator, value)
        if bounds is None:
            return NOTHING
        low, high = bounds
        if (low is not None and low > _FAR) or (high is not None and high < -_FAR):
            return NOTHING
        # Days since >= low: the last order's local date is on or before today - low.
        condition = Q()
        if low is not None and low >= -_FAR:
            condition &= Q(last_order_at__lt=self.day_start(self.days_ago(low - 1)))
        if high is not None and high <= _FAR:
            condition &= Q(last_order_at__gte=self.day_start(self.days_ago(high)))
        return Q(Exists(overall.filter(condition)))

    def _attribute(self, spec, operator, value, node) -> Q:
        key = spec.column  # the AttributeDefinition's code, checked against the table
        if spec.type == "boolean":  # is_true
            return Q(attributes__contains={key: True})
        if spec.type == "choice":  # in: a scalar equal to, or a list holding, a value
            condition = NOTHING
            for choice in value:
                condition |= Q(attributes__contains={key: choice})
                condition |= Q(attributes__contains={key: [choice]})
            return condition
        text = _JsonText(F("attributes"), Value(key))
        if spec.type == "text":
            text = Coalesce(
                text, Value("", output_field=TextField()), output_field=TextField()
            )
            if operator == "is_set":
                return Q(GreaterThan(text, ""))
            return Q(_TEXT_EXPRESSION_LOOKUPS[operator](text, value))
        if spec.type == "date":
            is_date = _definite(Regex(text, _DATE_PATTERN))
            if operator == "is_set":
                return is_date
            first, last = self.date_range(operator, value)
            text = Collate(text, "C")  # ISO dates sort as plain strings do
            condition = is_date
            if first is not None:
                condition &= _definite(GreaterThanOrEqual(text, first.isoformat()))
            if last is not None:
                condition &= _definite(LessThanOrEqual(text, last.isoformat()))
            return condition
        number = Case(
            When(Regex(text, _NUMBER_PATTERN), then=_ToNumeric(text)),
            default=Value(None),
            output_field=DecimalField(),
        )
        if operator == "is_set":
            return Q(IsNull(number, False))
        if operator == "between":
            return _definite(Range(number, (_decimal(value[0]), _decimal(value[1]))))
        return _definite(_NUMBER_EXPRESSION_LOOKUPS[operator](number, _decimal(value)))

    def _tags(self, spec, operator, value, node) -> Q:
        tagged = Customer.tags.through.objects.filter(
            customer_id=OuterRef("pk"), tag_id__in=value
        )
        if operator == "has_any":
            return Q(Exists(tagged))
        every = (
            tagged.values("customer_id")
            .annotate(found=Count("tag_id", distinct=True))
            .filter(found=len(value))
        )
        return Q(Exists(every))

    def _purchase(self, spec, operator, value, node) -> Q:
        orders = Order.objects.completed().filter(customer=OuterRef("pk"))
        if spec.choices == "category":
            value = self.catalogue.category_subtree(value)
        orders = orders.filter(Q((spec.column, value)))
        if operator == "within_days":
            orders = orders.filter(
                placed_at__gte=self.day_start(self.days_ago(node["days"]))
            )
        return Q(Exists(orders))

    def _event(self, spec, operator, value, node) -> Q:
        events = Event.objects.filter(
            customer=OuterRef("pk"),
            kind=spec.column,
            occurred_at__gte=self.day_start(self.days_ago(value)),
        )
        return Q(Exists(events))

    def _cart(self, spec, operator, value, node) -> Q:
        carts = Cart.objects.abandoned_since(self.now - CART_ABANDONED_AFTER).filter(
            customer=OuterRef("pk"),
            updated_at__gte=self.day_start(self.days_ago(value)),
        )
        return Q(Exists(carts))

    def _consent(self, spec, operator, value, node) -> Q:
        states = ConsentState.objects.granted().filter(
            customer=OuterRef("pk"), purpose__code=value
        )
        return Q(Exists(states))

    def _store(self, spec, operator, value, node) -> Q:
        identities = CustomerIdentity.objects.filter(
            customer=OuterRef("pk"), store_id__in=value
        )
        return Q(Exists(identities))


def compile_rules(tree: Any, *, now: dt.datetime | None = None) -> Q:
    """A Q selecting the customers ``tree`` describes, as of ``now``.

    Validates first and raises the same RuleError as ``validate_rules``. Periods
    ("in the last 30 days") are fixed at ``now``: compile again to move them on.
    """
    cleaned, catalogue = _validate(tree)
    return _Compiler(catalogue, now or timezone.now()).node(cleaned)


# --- Describing ----------------------------------------------------------------------


class _Describer:
    def __init__(self, catalogue: _Catalogue) -> None:
        self.catalogue = catalogue

    def node(self, node: dict, *, top: bool = False) -> str:
        if "op" not in node:
            return self.condition(node)
        parts = [self.node(child) for child in node["rules"]]
        if node["op"] == "not":
            return gettext("NOT (%(rules)s)") % {"rules": gettext(" AND ").join(parts)}
        text = (gettext(" OR ") if node["op"] == "or" else gettext(" AND ")).join(parts)
        return text if top or len(parts) == 1 else f"({text})"

    def condition(self, node: dict) -> str:
        spec = self.catalogue.field(node["field"])
        operator = node["operator"]
        value = node.get("value")
        field = str(spec.label)
        if operator in {"is_set", "is_not_set"}:
            if operator == "is_set":
                return gettext("%(field)s is filled in") % {"field": field}
            return gettext("%(field)s is empty") % {"field": field}
        describe = getattr(self, f"_{spec.type}")
        return describe(spec, field, operator, value, node)

    def _text(self, spec, field, operator, value, node) -> str:
        template = {
            "equals": gettext("%(field)s is “%(value)s”"),
            "not_equals": gettext("%(field)s is not “%(value)s”"),
            "contains": gettext("%(field)s contains “%(value)s”"),
            "not_contains": gettext("%(field)s does not contain “%(value)s”"),
            "starts_with": gettext("%(field)s starts with “%(value)s”"),
            "ends_with": gettext("%(field)s ends with “%(value)s”"),
        }[operator]
        return template % {"field": field, "value": value}

    def _number(self, spec, field, operator, value, node) -> str:
        if operator == "between":
            return gettext("%(field)s between %(low)s and %(high)s") % {
                "field": field,
                "low": formats.number_format(value[0]),
                "high": formats.number_format(value[1]),
            }
        sign = {"eq": "=", "neq": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}
        return f"{field} {sign[operator]} {formats.number_format(value)}"

    def _date(self, spec, field, operator, value, node) -> str:
        if operator in {"in_last_days", "not_in_last_days", "in_next_days"}:
            if operator == "in_last_days":
                return _in_last_days(field, value)
            if operator == "not_in_last_days":
                template = ngettext(
                    "%(field)s more than %(days)s day ago",
                    "%(field)s more than %(days)s days ago",
                    value,
                )
            else:
                template = ngettext(
                    "%(field)s in the next %(days)s day",
                    "%(field)s in the next %(days)s days",
                    value,
                )
            return template % {"field": field, "days": value}
        if operator == "between":
            return gettext("%(field)s between %(from)s and %(to)s") % {
                "field": field,
                "from": _date(value[0]),
                "to": _date(value[1]),
            }
        template = {
            "before": gettext("%(field)s before %(date)s"),
            "after": gettext("%(field)s after %(date)s"),
            "on": gettext("%(field)s on %(date)s"),
        }[operator]
        return template % {"field": field, "date": _date(value)}

    def _choice(self, spec, field, operator, value, node) -> str:
        labels = [self.label(spec, item) for item in value]
        if len(labels) == 1:
            if operator == "in":
                template = gettext("%(field)s is %(values)s")
            else:
                template = gettext("%(field)s is not %(values)s")
        elif operator == "in":
            template = gettext("%(field)s is one of %(values)s")
        else:
            template = gettext("%(field)s is none of %(values)s")
        return template % {"field": field, "values": ", ".join(labels)}

    def _boolean(self, spec, field, operator, value, node) -> str:
        if operator == "is_true":
            return gettext("%(field)s is yes") % {"field": field}
        return gettext("%(field)s is no or not given") % {"field": field}

    def _tags(self, spec, field, operator, value, node) -> str:
        template = {
            "has_any": gettext("has any of the tags %(values)s"),
            "has_all": gettext("has all of the tags %(values)s"),
            "has_none": gettext("has none of the tags %(values)s"),
        }[operator]
        return template % {"values": ", ".join(self.label(spec, t) for t in value)}

    def _purchase(self, spec, field, operator, value, node) -> str:
        shown = self.label(spec, value) if spec.reference else f"“{value}”"
        if operator == "ever":
            return f"{field} {shown}"
        if operator == "never":
            return f"{spec.never_label} {shown}"
        label = field if operator == "within_days" else str(spec.negative_label)
        return _in_last_days(f"{label} {shown}", node["days"])

    def _behaviour(self, spec, field, operator, value, node) -> str:
        label = field if operator == "within_days" else str(spec.negative_label)
        return _in_last_days(label, value)

    def _consent(self, spec, field, operator, value, node) -> str:
        params = {"purpose": self.label(spec, value)}
        if operator == "granted":
            return gettext("consent “%(purpose)s” granted") % params
        return gettext("consent “%(purpose)s” not granted") % params

    def _store(self, spec, field, operator, value, node) -> str:
        params = {"stores": ", ".join(self.label(spec, store) for store in value)}
        if operator == "in":
            return gettext("is a customer of %(stores)s") % params
        return gettext("is not a customer of %(stores)s") % params

    def label(self, spec: FieldSpec, value: Any) -> str:
        catalogue = self.catalogue
        if spec.reference:
            return catalogue.labels[spec.reference].get(value, str(value))
        if spec.choices == "rfm_segment":
            return catalogue.rfm.get(value, value)
        if spec.choices == "attribute":
            return value
        return str(dict(_static_choices(spec.choices)).get(value, value))


def _in_last_days(what: str, days: int) -> str:
    return ngettext(
        "%(what)s in the last %(days)s day", "%(what)s in the last %(days)s days", days
    ) % {"what": what, "days": days}


def _date(iso: str) -> str:
    return formats.date_format(dt.date.fromisoformat(iso), "SHORT_DATE_FORMAT")


def describe_rules(tree: dict) -> str:
    """The tree read out in the active language, on one line.

    For example "orders ≥ 3 AND (RFM segment is one of Champions, Loyal OR bought
    category Karma in the last 90 days)". Raises RuleError for an invalid tree.
    """
    cleaned, catalogue = _validate(tree)
    if not cleaned["rules"]:
        return gettext("every customer")
    return _Describer(catalogue).node(cleaned, top=True)


# --- The builder ---------------------------------------------------------------------


def builder_schema() -> dict:
    """Fields, operators and choices for the segment builder, in the active language.

    A handful of queries: attribute definitions, categories, tags, stores, consent
    purposes and RFM segment names, each once.
    """
    catalogue = _Catalogue()
    fields = [*FIELDS, *catalogue.attribute_fields()]
    groups = []
    for group, group_label in GROUPS:
        members = [spec for spec in fields if spec.group == group]
        if members:
            groups.append(
                {
                    "code": group,
                    "label": str(group_label),
                    "fields": [_schema_field(spec, catalogue) for spec in members],
                }
            )
    return {"groups": groups}


def _schema_field(spec: FieldSpec, catalogue: _Catalogue) -> dict:
    operators = []
    for operator in spec.operators:
        kind = (
            spec.value_kind if operator.value_kind == "field" else operator.value_kind
        )
        operators.append(
            {
                "code": operator.code,
                "label": str(operator.label),
                "needs_value": operator.needs_value,
                "value_kind": kind,
                "needs_days": operator.needs_days,
            }
        )
    choices = None
    if spec.choices and spec.choices != "product":
        choices = [
            {"value": value, "label": str(label)}
            for value, label in catalogue.choices(spec)
        ]
    return {
        "code": spec.code,
        "label": str(capfirst(spec.label)),
        "type": spec.type,
        "operators": operators,
        "choices": choices,
    }
