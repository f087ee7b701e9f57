from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Exists, F, Func, OuterRef, Q, Subquery, TextField, Value
from django.db.models.functions import Cast, Coalesce, Concat, Lower, Upper
from django.db.models.lookups import Regex
from django.utils.translation import gettext_lazy as _
from django_countries.fields import CountryField

from customers.validators import (
    normalize_phone,
    normalize_postcode,
    validate_nip,
    validate_phone,
)

currency_validator = RegexValidator(
    r"^[A-Z]{3}$", _("Use a three-letter ISO 4217 code, e.g. PLN."), "invalid_currency"
)


class Store(models.Model):
    """A sales channel of the business: a shop, a marketplace account, a branch."""

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=200)
    domain = models.CharField(_("domain"), max_length=255, blank=True)
    currency = models.CharField(
        _("currency"),
        max_length=3,
        default=settings.DEFAULT_CURRENCY,
        validators=[currency_validator],
    )
    language = models.CharField(
        _("language"), max_length=8, choices=settings.LANGUAGES, default="pl"
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("store")
        verbose_name_plural = _("stores")
        ordering = ["name"]
        # The deployment's health (/status/: checks, queues, task failures) has no
        # model of its own; its permission lives with the stores, the business's
        # own set-up.
        permissions = [("view_system_status", _("Can see the system status"))]
        constraints = [
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"), name="store_currency_iso"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.CharField(_("name"), max_length=64)
    color = models.CharField(
        _("colour"),
        max_length=7,
        default="#64748b",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$")],
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(Upper("name"), name="tag_name_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class AttributeDefinition(models.Model):
    """A custom attribute defined by staff; values live in Customer.attributes."""

    class Kind(models.TextChoices):
        TEXT = "text", _("Text")
        NUMBER = "number", _("Number")
        DATE = "date", _("Date")
        BOOLEAN = "boolean", _("Yes/no")
        CHOICE = "choice", _("Choice")

    code = models.SlugField(
        _("code"),
        max_length=64,
        unique=True,
        help_text=_("Key under which the value is stored; lower case, no spaces."),
    )
    label = models.CharField(_("label"), max_length=120)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    choices = ArrayField(
        models.CharField(max_length=120),
        verbose_name=_("choices"),
        default=list,
        blank=True,
        help_text=_("Allowed values for a choice attribute, comma-separated."),
    )
    multiple = models.BooleanField(
        _("several values allowed"),
        default=False,
        help_text=_("A choice attribute may hold several of its choices."),
    )
    help_text = models.CharField(_("help text"), max_length=255, blank=True)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("custom attribute")
        verbose_name_plural = _("custom attributes")
        ordering = ["position", "label"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="choice", choices__len__gt=0) | ~Q(kind="choice"),
                name="attribute_choice_has_choices",
            ),
            models.CheckConstraint(
                condition=Q(multiple=False) | Q(kind="choice"),
                name="attribute_multiple_only_for_choice",
            ),
        ]

    def __str__(self) -> str:
        return self.label


# The search box folds letters to their base, in the index and in the query alike,
# so "zolkiewska" finds "Żółkiewska": Unicode NFD splits each accented letter into
# its base and its marks, the marks go, the few letters with no decomposition
# (ł, ß, ø, đ) are mapped, then lower(). All of it is immutable, so it can be
# indexed (unaccent is an extension not every server has; the embedded one has
# not), and it costs 3 µs a customer on each write and recheck, where translate()
# with a map of every accented letter cost 19 µs (it compares each character with
# the whole map). Lower-casing last works even where lower() knows only ASCII.
SEARCH_FOLD_MARKS = r"[\u0300-\u036f]"
SEARCH_FOLD_FROM = "łŁßøØđĐ"
SEARCH_FOLD_TO = "lLsoOdD"
_SEARCH_MARKS = re.compile("[\u0300-\u036f]")
_SEARCH_FOLD = str.maketrans(SEARCH_FOLD_FROM, SEARCH_FOLD_TO)


def search_fold(text: str) -> str:
    """``text`` as the search index holds it: letters folded to base, lower case."""
    bare = _SEARCH_MARKS.sub("", unicodedata.normalize("NFD", text))
    return bare.translate(_SEARCH_FOLD).lower()


def search_document() -> Func:
    """What the search box matches a customer's words against: email, names, company.

    One expression behind the ``customer_search_trgm`` index (trigrams: any part of
    a word is found): the email in lower case, then the names and the company
    folded as :func:`search_fold` folds the query (an email is ASCII: folding it
    would only cost).
    """
    names = Concat(
        "first_name",
        Value(" "),
        "last_name",
        Value(" "),
        "company",
        output_field=TextField(),
    )
    decomposed = Func(
        names,
        function="normalize",
        template="%(function)s(%(expressions)s, NFD)",
        output_field=TextField(),
    )
    bare = Func(
        decomposed,
        Value(SEARCH_FOLD_MARKS),
        Value(""),
        Value("g"),
        function="regexp_replace",
        output_field=TextField(),
    )
    folded = Func(
        bare,
        Value(SEARCH_FOLD_FROM),
        Value(SEARCH_FOLD_TO),
        function="translate",
        output_field=TextField(),
    )
    return Concat(
        Lower(Coalesce("email", Value(""))),
        Value(" "),
        Lower(folded),
        output_field=TextField(),
    )


class CustomerQuerySet(models.QuerySet):
    def buyers(self) -> CustomerQuerySet:
        """Customers who have placed at least one order."""
        return self.filter(status=Customer.Status.BUYER)

    def leads(self) -> CustomerQuerySet:
        """Customers known to us who have not ordered yet."""
        return self.filter(status=Customer.Status.LEAD)

    def not_erased(self) -> CustomerQuerySet:
        """Customers who have not been erased (anonymised) on request."""
        return self.filter(erased_at__isnull=True)

    def not_merged(self) -> CustomerQuerySet:
        """Customers who have not been merged into another record."""
        return self.filter(merged_into__isnull=True)

    def processable(self) -> CustomerQuerySet:
        """Customers who may be in campaigns, segments, scoring and exports.

        That is, neither erased, restricted nor merged into another record.
        """
        return self.filter(
            erased_at__isnull=True,
            restricted_at__isnull=True,
            merged_into__isnull=True,
        )

    def in_store(self, store: Store) -> CustomerQuerySet:
        """Customers with an identity in the given store."""
        return self.filter(
            Exists(
                CustomerIdentity.objects.filter(customer=OuterRef("pk"), store=store)
            )
        )

    def with_tag(self, tag: Tag) -> CustomerQuerySet:
        """Customers carrying the given tag."""
        return self.filter(tags=tag)

    def by_email(self, email: str) -> CustomerQuerySet:
        """Customers whose email matches, case-insensitively (uses the unique index)."""
        return self.filter(email__iexact=email)

    def search(self, query: str) -> CustomerQuerySet:
        """Customers matching the search box: email, phone, name, order or external id.

        The rule (``CustomerSearchTerms`` takes the query apart):

        - every word of three characters or more, folded as ``search_fold`` folds it
          ("Żółk" -> "zolk"), must be contained in ``search_document()`` (email,
          first and last name, company; the ``customer_search_trgm`` index). Shorter
          words cannot use a trigram index and are ignored; a query of short words
          only matches no names;
        - a query of digits and phone punctuation ("601 234 567", "+48 601-234-567",
          "0048601234567", "#100001") is a phone, order number or external id, never
          a name: it matches the phone exactly when it parses as one, and the phone's
          digits anywhere when it has 6 digits or more (no leading "#");
        - any query matches the email exactly (case-insensitively), and the customers
          of orders whose number is the query (case-insensitive, with or without a
          leading "#") or whose external id is the query, and of store identities
          whose external id is the query.

        An empty query leaves the queryset as it is. Every match is a condition on
        the customer row (no join to many): no duplicates.
        """
        if not (query or "").strip():
            return self
        return CustomerSearchTerms.parse(query).apply(self)


# A query made only of digits and what people write between them is a phone number,
# an order number or an external id, never a name: "601 234 567", "+48 (601) 234-567",
# "#100001".
_NUMERIC_QUERY = re.compile(r"#?[\d\s+()./-]+")
# pg_trgm indexes three-character pieces: a shorter word cannot use the index and
# would make PostgreSQL read all of it.
SEARCH_MIN_WORD_LENGTH = 3
# Fewer digits than that match too many phones to be worth showing.
SEARCH_MIN_PHONE_DIGITS = 6
# Customers resolved from orders and identities; more is a catch-all, not a match.
_SEARCH_RESOLVED_LIMIT = 100


@dataclass(frozen=True)
class CustomerSearchTerms:
    """One search-box query taken apart, as ``CustomerQuerySet.search`` applies it.

    ``exact`` is what a unique or btree index finds exactly (the email, the phone,
    customers resolved from order numbers and external ids); ``partial`` is the
    words in ``search_document()`` and the phone's digits (trigram indexes). Either
    may be empty. ``order_numbers`` maps a customer found through an order to that
    order's number. The live search shows exact matches first, from these parts.
    """

    exact: Q
    partial: Q
    order_numbers: dict[int, str]

    @classmethod
    def parse(cls, query: str) -> CustomerSearchTerms:
        """Take ``query`` apart; resolves order numbers and external ids (1 query)."""
        query = (query or "").replace("\x00", "").strip()
        if not query:
            return cls(exact=Q(), partial=Q(), order_numbers={})
        exact = Q()
        partial = Q()
        numeric = _NUMERIC_QUERY.fullmatch(query) is not None
        if "@" in query:
            exact |= Q(email__iexact=query)
        if numeric:
            digits = "".join(ch for ch in query if ch.isdigit())
            if len(digits) >= SEARCH_MIN_PHONE_DIGITS and not query.startswith("#"):
                try:
                    exact |= Q(phone=normalize_phone(query))
                except ValidationError:
                    pass  # not a whole phone number; its digits may be part of one
                partial |= Q(phone__contains=digits)
        else:
            words = [
                word
                for word in search_fold(query).split()
                if len(word) >= SEARCH_MIN_WORD_LENGTH
            ]
            if words:
                partial |= Q.create(
                    [("search_document__contains", word) for word in words]
                )
        # Resolved to ids first: "pk IN (SELECT ...)" inside the OR would keep
        # PostgreSQL from combining the indexes in one bitmap OR, and it would read
        # every customer instead.
        resolved = _search_resolve(query)
        if resolved:
            exact |= Q(pk__in=list(resolved))
        order_numbers = {pk: number for pk, number in resolved.items() if number}
        return cls(exact=exact, partial=partial, order_numbers=order_numbers)

    def apply(
        self, queryset: CustomerQuerySet, *, exact: bool = True, partial: bool = True
    ) -> CustomerQuerySet:
        """``queryset`` narrowed to the exact matches, the partial ones or both."""
        condition = (self.exact if exact else Q()) | (self.partial if partial else Q())
        if not condition:
            return queryset.none()
        # The expression exactly as customer_search_trgm indexes it, or the planner
        # does not see the index.
        return queryset.alias(search_document=search_document()).filter(condition)


def _search_resolve(query: str) -> dict[int, str]:
    """Customer id -> matched order number ("" for an identity) for ``query``.

    One query over the unique or btree indexes: orders by UPPER(number) (with and
    without a leading "#") or external id, identities by (store, external id) for
    every store (the store list is tiny; ``store_id IN`` lets the unique index
    serve each store).
    """
    from django.apps import apps

    # Orders are referenced by name: customers sits left of orders in the layering.
    order_model = apps.get_model("orders", "Order")
    bare = query.removeprefix("#")
    numbers = {bare, f"#{bare}"} if bare else {query}
    number_condition = Q.create(
        [("number__iexact", number) for number in sorted(numbers)], connector=Q.OR
    )
    orders = (
        order_model.objects.filter(number_condition | Q(external_id=query))
        .order_by()
        .annotate(matched_number=F("number"))
        .values_list("customer_id", "matched_number")[:_SEARCH_RESOLVED_LIMIT]
    )
    identities = (
        CustomerIdentity.objects.filter(
            store_id__in=Store.objects.order_by().values("pk"), external_id=query
        )
        .order_by()
        .annotate(matched_number=Value("", output_field=models.CharField()))
        .values_list("customer_id", "matched_number")[:_SEARCH_RESOLVED_LIMIT]
    )
    resolved: dict[int, str] = {}
    for customer_id, number in orders.union(identities, all=True):
        if number or customer_id not in resolved:
            resolved[customer_id] = number
    return resolved


class Customer(models.Model):
    class Status(models.TextChoices):
        LEAD = "lead", _("Lead")
        BUYER = "buyer", _("Buyer")

    class Gender(models.TextChoices):
        FEMALE = "female", _("Female")
        MALE = "male", _("Male")
        OTHER = "other", _("Other")
        UNKNOWN = "", _("Not given")

    class Channel(models.TextChoices):
        EMAIL = "email", _("Email")
        SMS = "sms", _("SMS")
        PHONE = "phone", _("Phone")
        POST = "post", _("Post")

    first_name = models.CharField(_("first name"), max_length=150, blank=True)
    last_name = models.CharField(_("last name"), max_length=150, blank=True)
    # NULL, not "", when absent: the case-insensitive unique index skips NULLs.
    email = models.EmailField(  # noqa: DJ001
        _("email"), max_length=254, null=True, blank=True
    )
    phone = models.CharField(
        _("phone"), max_length=16, blank=True, validators=[validate_phone]
    )
    birth_date = models.DateField(_("birth date"), null=True, blank=True)
    gender = models.CharField(
        _("gender"), max_length=8, choices=Gender.choices, blank=True, default=""
    )
    language = models.CharField(
        _("language"), max_length=8, choices=settings.LANGUAGES, default="pl"
    )
    company = models.CharField(_("company"), max_length=200, blank=True)
    nip = models.CharField(
        _("NIP"), max_length=10, blank=True, validators=[validate_nip]
    )
    preferred_channels = ArrayField(
        models.CharField(max_length=8, choices=Channel.choices),
        verbose_name=_("preferred channels"),
        default=list,
        blank=True,
    )
    acquisition_source = models.CharField(
        _("acquisition source"), max_length=100, blank=True
    )
    acquisition_medium = models.CharField(
        _("acquisition medium"), max_length=100, blank=True
    )
    acquisition_campaign = models.CharField(
        _("acquisition campaign"), max_length=200, blank=True
    )
    acquisition_keyword = models.CharField(
        _("acquisition keyword"), max_length=200, blank=True
    )
    last_device = models.CharField(_("device last seen"), max_length=32, blank=True)
    last_os = models.CharField(_("OS last seen"), max_length=64, blank=True)
    last_browser = models.CharField(_("browser last seen"), max_length=64, blank=True)
    status = models.CharField(
        _("status"), max_length=8, choices=Status.choices, default=Status.LEAD
    )
    attributes = models.JSONField(_("custom attributes"), default=dict, blank=True)
    # db_default too: COPY-based writers (seed_demo, imports) may leave it out.
    note = models.TextField(_("note"), blank=True, default="", db_default="")
    # What the platform a shop left reported, for history its orders never brought.
    imported_orders_count = models.PositiveIntegerField(
        _("orders (imported total)"), null=True, blank=True
    )
    imported_total_spent = models.DecimalField(
        _("spent (imported total)"),
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        help_text=_("In the store's currency, as the previous platform reported it."),
    )
    tags = models.ManyToManyField(
        Tag, verbose_name=_("tags"), blank=True, related_name="customers"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    last_seen_at = models.DateTimeField(_("last seen at"), null=True, blank=True)
    # The person's rights (RODO), set by the consents app's services.
    restricted_at = models.DateTimeField(
        _("processing restricted since"),
        null=True,
        blank=True,
        help_text=_("Left out of campaigns, segments, scoring and exports (Art. 18)."),
    )
    marketing_objection_at = models.DateTimeField(
        _("objected to direct marketing on"), null=True, blank=True
    )
    profiling_objection_at = models.DateTimeField(
        _("objected to profiling on"), null=True, blank=True
    )
    erased_at = models.DateTimeField(
        _("erased at"),
        null=True,
        blank=True,
        help_text=_("Anonymised on request (Art. 17); the orders stay for accounting."),
    )
    # A duplicate folded into another record (customers.merging): its orders,
    # history and contacts moved there; what is left is the record of its consent
    # ledger and access log, kept as proof. A merge can be undone for 30 days.
    merged_into = models.ForeignKey(
        "self",
        verbose_name=_("merged into"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="merged_records",
        db_index=False,  # customer_merged_into_idx, partial
    )
    merged_at = models.DateTimeField(_("merged at"), null=True, blank=True)

    objects = CustomerQuerySet.as_manager()

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        ordering = ["-created_at"]
        permissions = [
            ("export_customer", _("Can export customers")),
            ("merge_customer", _("Can merge duplicate customers")),
            # Without it (Support), lists show a phone's last digits and an email's
            # first letter and domain; the customer page (access-logged) shows all.
            ("view_full_contacts", _("Can see full emails and phones in lists")),
        ]
        constraints = [
            # Upper(), not Lower(): Django's iexact/icontains compare UPPER(), so the
            # same expression serves the constraint and every case-insensitive lookup.
            models.UniqueConstraint(Upper("email"), name="customer_email_ci_unique"),
            models.CheckConstraint(
                condition=Q(email__isnull=True) | ~Q(email=""),
                name="customer_email_not_blank",
            ),
            models.CheckConstraint(
                condition=Q(phone="") | Q(phone__regex=r"^\+[1-9][0-9]{6,14}$"),
                name="customer_phone_e164",
            ),
            models.CheckConstraint(
                condition=Q(nip="") | Q(nip__regex=r"^[0-9]{10}$"),
                name="customer_nip_digits",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["lead", "buyer"]), name="customer_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(gender__in=["", "female", "male", "other"]),
                name="customer_gender_valid",
            ),
            models.CheckConstraint(
                condition=Q(merged_into__isnull=True) | ~Q(merged_into=F("pk")),
                name="customer_not_merged_into_itself",
            ),
        ]
        indexes = [
            models.Index(fields=["phone"], name="customer_phone_idx"),
            models.Index(fields=["-created_at"], name="customer_created_idx"),
            models.Index(fields=["updated_at"], name="customer_updated_idx"),
            models.Index(fields=["status", "-created_at"], name="customer_status_idx"),
            GinIndex(
                OpClass(search_document(), name="gin_trgm_ops"),
                name="customer_search_trgm",
            ),
            GinIndex(OpClass("phone", name="gin_trgm_ops"), name="customer_phone_trgm"),
            GinIndex(fields=["attributes"], name="customer_attributes_gin"),
            models.Index(
                fields=["merged_into"],
                condition=Q(merged_into__isnull=False),
                name="customer_merged_into_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.full_name or self.email or self.phone or f"#{self.pk}"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class CustomerIdentity(models.Model):
    """The customer's id in one store's platform: how the shop refers to them."""

    store = models.ForeignKey(
        Store,
        verbose_name=_("store"),
        on_delete=models.PROTECT,
        related_name="identities",
        db_index=False,  # identity_store_external_id_unique leads with it
    )
    external_id = models.CharField(_("external id"), max_length=100)
    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.CASCADE,
        related_name="identities",
        db_index=False,  # identity_customer_idx
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("customer identity")
        verbose_name_plural = _("customer identities")
        constraints = [
            models.UniqueConstraint(
                fields=["store", "external_id"],
                name="identity_store_external_id_unique",
            ),
            models.CheckConstraint(
                condition=~Q(external_id=""), name="identity_external_id_not_blank"
            ),
        ]
        indexes = [models.Index(fields=["customer"], name="identity_customer_idx")]

    def __str__(self) -> str:
        return f"{self.store.code}:{self.external_id}"


def identity_external_id(customer: Any, store: Any) -> Subquery:
    """The customer's id in the store (the first, if several), for ``annotate()``.

    ``customer`` and ``store`` are values or ``OuterRef``s of the outer query.
    """
    return Subquery(
        CustomerIdentity.objects.filter(customer=customer, store=store)
        .order_by("pk")
        .values("external_id")[:1]
    )


class Address(models.Model):
    class Kind(models.TextChoices):
        BILLING = "billing", _("Billing")
        SHIPPING = "shipping", _("Shipping")

    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.CASCADE,
        related_name="addresses",
        db_index=False,  # address_customer_idx starts with it
    )
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    is_default = models.BooleanField(_("default"), default=False)
    first_name = models.CharField(_("first name"), max_length=150, blank=True)
    last_name = models.CharField(_("last name"), max_length=150, blank=True)
    company = models.CharField(_("company"), max_length=200, blank=True)
    street = models.CharField(_("street and number"), max_length=255)
    street2 = models.CharField(_("address line 2"), max_length=255, blank=True)
    postcode = models.CharField(_("postcode"), max_length=16)
    city = models.CharField(_("city"), max_length=100)
    region = models.CharField(_("region"), max_length=100, blank=True)
    country = CountryField(_("country"), default="PL")
    phone = models.CharField(
        _("phone"), max_length=16, blank=True, validators=[validate_phone]
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("address")
        verbose_name_plural = _("addresses")
        ordering = ["kind", "-is_default", "-updated_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "kind"],
                condition=Q(is_default=True),
                name="address_one_default_per_kind",
            ),
            models.CheckConstraint(
                condition=~Q(country="PL") | Q(postcode__regex=r"^[0-9]{2}-[0-9]{3}$"),
                name="address_postcode_pl",
            ),
            models.CheckConstraint(
                # CountryField has no regex lookup; compare the column as plain text.
                condition=Q(Regex(Cast("country", models.CharField()), r"^[A-Z]{2}$")),
                name="address_country_iso",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["billing", "shipping"]), name="address_kind_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "kind"], name="address_customer_idx"),
            # Segments by city compare UPPER(city) (case-insensitively); the index
            # also gives the planner statistics of it: without them it takes a
            # city for 0.5 % of the addresses, and Warszawa is a quarter.
            models.Index(Upper("city"), name="address_city_ci_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.street}, {self.postcode} {self.city}, {self.country.code}"

    def clean(self) -> None:
        if self.postcode and self.country:
            try:
                self.postcode = normalize_postcode(self.postcode, str(self.country))
            except ValidationError as error:
                raise ValidationError({"postcode": error}) from None
