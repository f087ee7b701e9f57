"""Django admin for stores, tags, custom attributes, customers and the support log.

Built for a million customers: no full COUNT(*) (see customers.paginators), search
through ``Customer.objects.search`` (trigram indexes), sorting only by indexed columns,
filters that do not list big tables, autocomplete widgets for foreign keys.

The customers app sits left of orders, so this module never imports orders; the
orders admin adds its read-only order inline to ``CustomerAdmin.inlines`` itself.

The Import and Export buttons (django-import-export, ``StoreImportExportMixin``)
use the resources of ``customers.resources``: the generic columns, the CSV
importer's row rules, the write services and the staff export's access log.
"""

from __future__ import annotations

import datetime
import json
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from import_export.admin import ImportExportMixin
from import_export.forms import ConfirmImportForm, ImportForm

from customers.forms import (
    add_service_dry_run_errors,
    user_label,
)
from customers.importers.reading import CsvFormatError
from customers.interactions import (
    ALLOWED_TRANSITIONS,
    assignable_staff,
    interaction_assign,
    interaction_log,
    interaction_set_status,
)
from customers.merging import customer_merge_undo
from customers.models import (
    Address,
    ApiKey,
    AttributeDefinition,
    Customer,
    CustomerIdentity,
    CustomerMerge,
    Interaction,
    InteractionAttachment,
    InteractionChange,
    Store,
    Tag,
    WebhookDelivery,
    WebhookEndpoint,
)
from customers.paginators import EstimatedCountPaginator
from customers.resources import ADMIN_FORMATS, CustomerResource
from customers.services import (
    api_key_create,
    api_key_revoke,
    customer_attributes_clean,
)
from customers.signals import personal_data_accessed_send
from customers.validators import (
    format_phone,
    normalize_email,
    normalize_nip,
    normalize_phone,
)
from customers.webhooks import (
    TEST_EVENT,
    webhook_delivery_retry,
    webhook_endpoint_create,
    webhook_endpoint_test,
    webhook_endpoint_update,
    webhook_url_validate,
)

ATTRIBUTE_FIELD_PREFIX = "attribute__"


def _verbose(model, name: str) -> str:
    return capfirst(model._meta.get_field(name).verbose_name)


# --- Stores, tags, custom attributes -------------------------------------------------


def colour_swatch_html(color: str) -> str:
    """A colour's square and code, for list columns (static/css/admin.css)."""
    return format_html(
        '<span class="swatch" data-chip-color="{}"></span> {}', color, color
    )


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by services: the admin shows them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = ("name", "code", "domain", "currency", "language", "is_active")
    list_filter = ("is_active", "language", "currency")
    search_fields = ("code", "name", "domain")
    readonly_fields = ("created_at",)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("name", "colour_swatch", "created_at")
    search_fields = ("name",)
    readonly_fields = ("created_at",)

    @admin.display(description=_("colour"))
    def colour_swatch(self, tag: Tag) -> str:
        return colour_swatch_html(tag.color)


class AttributeDefinitionForm(forms.ModelForm):
    class Meta:
        model = AttributeDefinition
        fields = (
            "label",
            "code",
            "kind",
            "choices",
            "multiple",
            "help_text",
            "position",
            "is_active",
        )

    def clean(self) -> dict[str, Any]:
        # The database enforces both rules with check constraints; say it per field.
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if kind == AttributeDefinition.Kind.CHOICE and not cleaned.get("choices"):
            self.add_error(
                "choices", _("A choice attribute needs at least one choice.")
            )
        if cleaned.get("multiple") and kind != AttributeDefinition.Kind.CHOICE:
            self.add_error(
                "multiple", _("Only a choice attribute may hold several values.")
            )
        return cleaned


@admin.register(AttributeDefinition)
class AttributeDefinitionAdmin(admin.ModelAdmin):
    form = AttributeDefinitionForm
    list_display = ("label", "code", "kind", "multiple", "position", "is_active")
    list_filter = ("kind", "is_active")
    search_fields = ("code", "label")
    fields = (
        "label",
        "code",
        "kind",
        "choices",
        "multiple",
        "help_text",
        "position",
        "is_active",
    )

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        # Values are stored under the code: renaming it would orphan every value.
        if obj is not None:
            return ("code",)
        return ()


# --- Customer changelist filters -----------------------------------------------------


class StoreListFilter(admin.SimpleListFilter):
    title = _("store")
    parameter_name = "store"

    def lookups(self, request, model_admin):
        return [
            (str(store.pk), store.name) for store in Store.objects.only("pk", "name")
        ]

    def queryset(self, request, queryset):
        store = Store.objects.filter(pk=self.value()).first() if self.value() else None
        if store is None:
            return queryset
        return queryset.in_store(store)


class MergedListFilter(admin.SimpleListFilter):
    """Merged-away records are hidden unless asked for: they are no one now."""

    title = _("merged into another record")
    parameter_name = "merged"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list:
        return [("yes", _("Yes, merged away"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(merged_into__isnull=False)
        return queryset.filter(merged_into__isnull=True)


class TagListFilter(admin.SimpleListFilter):
    """Tags through ``with_tag``: one tag per customer, so no DISTINCT needed."""

    title = _("tag")
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        return [(str(tag.pk), tag.name) for tag in Tag.objects.only("pk", "name")]

    def queryset(self, request, queryset):
        tag = Tag.objects.filter(pk=self.value()).first() if self.value() else None
        if tag is None:
            return queryset
        return queryset.with_tag(tag)


# --- Customer form -------------------------------------------------------------------


def attribute_field_name(code: str) -> str:
    return f"{ATTRIBUTE_FIELD_PREFIX}{code}"


def _attribute_form_field(definition: AttributeDefinition, current: Any) -> forms.Field:
    """Return the form field that edits one custom attribute."""
    common = {
        "label": definition.label,
        "help_text": definition.help_text,
        "required": False,
    }
    kind = definition.kind
    if kind == AttributeDefinition.Kind.NUMBER:
        # localize: Polish staff type "1,5".
        return forms.DecimalField(
            max_digits=18, decimal_places=6, localize=True, **common
        )
    if kind == AttributeDefinition.Kind.DATE:
        return forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), **common)
    if kind == AttributeDefinition.Kind.BOOLEAN:
        return forms.NullBooleanField(**common)
    if kind == AttributeDefinition.Kind.CHOICE:
        choices = [(choice, choice) for choice in definition.choices]
        # A value the definition no longer offers stays visible (and is kept as long
        # as nobody touches the field) instead of silently showing as empty.
        stale = current if isinstance(current, list) else [current]
        for value in stale:
            if value not in (None, "") and value not in definition.choices:
                choices.append(
                    (value, _("%(value)s (no longer offered)") % {"value": value})
                )
        if definition.multiple:
            return forms.MultipleChoiceField(
                choices=choices, widget=forms.CheckboxSelectMultiple, **common
            )
        return forms.ChoiceField(choices=[("", "---------"), *choices], **common)
    return forms.CharField(max_length=500, **common)


def _attribute_initial(definition: AttributeDefinition, value: Any) -> Any:
    if value is None:
        return None
    if definition.kind == AttributeDefinition.Kind.DATE and isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            return value
    if definition.kind == AttributeDefinition.Kind.NUMBER:
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return value
    if definition.kind == AttributeDefinition.Kind.CHOICE and definition.multiple:
        return value if isinstance(value, list) else [value]
    return value


class CustomerForm(forms.ModelForm):
    """Normalises like the rest of the system and edits attributes as real fields."""

    # Wider than the model columns: people paste "+48 (601) 234-567" or
    # "PL 526-000-12-46"; the clean_* methods store the canonical form.
    phone = forms.CharField(
        label=_verbose(Customer, "phone"), max_length=32, required=False
    )
    nip = forms.CharField(
        label=_verbose(Customer, "nip"), max_length=20, required=False
    )
    preferred_channels = forms.MultipleChoiceField(
        label=_verbose(Customer, "preferred_channels"),
        choices=Customer.Channel.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )

    class Meta:
        model = Customer
        # Not "attributes": its values are edited through generated fields.
        fields = (
            "first_name",
            "last_name",
            "email",
            "phone",
            "birth_date",
            "gender",
            "language",
            "tags",
            "company",
            "nip",
            "preferred_channels",
            "acquisition_source",
            "acquisition_medium",
            "acquisition_campaign",
            "acquisition_keyword",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self.instance.attributes or {}
        self.attribute_definitions = {
            definition.code: definition
            for definition in AttributeDefinition.objects.filter(is_active=True)
        }
        for code, definition in self.attribute_definitions.items():
            value = stored.get(code)
            name = attribute_field_name(code)
            self.fields[name] = _attribute_form_field(definition, value)
            self.initial[name] = _attribute_initial(definition, value)

    def clean_email(self) -> str | None:
        email = self.cleaned_data.get("email")
        if not email:
            return None
        email = normalize_email(email)
        duplicates = Customer.objects.by_email(email)
        if self.instance.pk:
            duplicates = duplicates.exclude(pk=self.instance.pk)
        if duplicates.exists():
            raise ValidationError(
                _("Another customer already has this email address."),
                code="duplicate_email",
            )
        return email

    def clean_phone(self) -> str:
        phone = (self.cleaned_data.get("phone") or "").strip()
        return normalize_phone(phone) if phone else ""

    def clean_nip(self) -> str:
        nip = (self.cleaned_data.get("nip") or "").strip()
        return normalize_nip(nip) if nip else ""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        # Untouched fields keep their stored value verbatim, even one a definition
        # no longer allows: correcting the email must not drop it.
        changed = {
            code: cleaned[attribute_field_name(code)]
            for code in self.attribute_definitions
            if attribute_field_name(code) in self.changed_data
            and attribute_field_name(code) in cleaned
        }
        if not changed:
            return cleaned
        try:
            # The same rules and storage format as the API and imports.
            values = customer_attributes_clean(
                changed, definitions=self.attribute_definitions.values()
            )
        except ValidationError as error:
            self._add_attribute_errors(error)
            return cleaned
        attributes = dict(self.instance.attributes or {})
        for code in changed:
            # An emptied field comes back without its key: the value is removed.
            if code in values:
                attributes[code] = values[code]
            else:
                attributes.pop(code, None)
        self.instance.attributes = attributes
        return cleaned

    def _add_attribute_errors(self, error: ValidationError) -> None:
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        for code, errors in error.error_dict.items():
            name = attribute_field_name(code)
            self.add_error(name if name in self.fields else None, errors)


class AddressForm(forms.ModelForm):
    phone = forms.CharField(
        label=_verbose(Address, "phone"), max_length=32, required=False
    )

    class Meta:
        model = Address
        fields = (
            "kind",
            "is_default",
            "first_name",
            "last_name",
            "company",
            "street",
            "street2",
            "postcode",
            "city",
            "region",
            "country",
            "phone",
        )

    def clean_phone(self) -> str:
        phone = (self.cleaned_data.get("phone") or "").strip()
        return normalize_phone(phone) if phone else ""

    # The postcode is normalised per country by Address.clean (run by full_clean).


# --- Import and export buttons ------------------------------------------------------


class StoreImportForm(ImportForm):
    """django-import-export's import form with the store the file comes from."""

    store = forms.ModelChoiceField(
        label=_("Store"),
        queryset=Store.objects.all(),
        help_text=_("Customer ids in the file are this store's ids."),
    )


class StoreConfirmImportForm(ConfirmImportForm):
    """The confirm step carries the store chosen on the import form."""

    store = forms.ModelChoiceField(
        queryset=Store.objects.all(), widget=forms.HiddenInput
    )


class StoreImportExportMixin(ImportExportMixin):
    """Import and Export buttons with Kartoteka's resources (customers.resources).

    CSV and XLSX only. Importing needs ``import_permissions`` and a store chosen on
    the form; exporting needs ``export_permission``. The resources get the request
    (for the access log) and the store.
    """

    import_form_class = StoreImportForm
    confirm_form_class = StoreConfirmImportForm
    import_formats = ADMIN_FORMATS
    export_formats = ADMIN_FORMATS
    import_permissions: tuple[str, ...] = ()
    export_permission = ""

    def has_import_permission(self, request: HttpRequest) -> bool:
        return bool(self.import_permissions) and request.user.has_perms(
            self.import_permissions
        )

    def has_export_permission(self, request: HttpRequest) -> bool:
        return bool(self.export_permission) and request.user.has_perm(
            self.export_permission
        )

    def get_import_resource_kwargs(self, request: HttpRequest, **kwargs: Any):
        data = getattr(kwargs.get("form"), "cleaned_data", None) or {}
        return {"request": request, "store": data.get("store")}

    def get_export_resource_kwargs(self, request: HttpRequest, **kwargs: Any):
        return {"request": request, "store": self.export_store(request)}

    def export_store(self, request: HttpRequest) -> Store | None:
        """Whose external ids an export writes (None: the resource decides)."""
        return None

    def get_confirm_form_initial(self, request: HttpRequest, import_form):
        initial = super().get_confirm_form_initial(request, import_form)
        if import_form is not None:
            initial["store"] = import_form.cleaned_data["store"].pk
        return initial

    def add_data_read_fail_error_to_form(self, form, e: Exception) -> None:
        # The CSV reader says what is wrong with the file (encoding, empty header).
        if isinstance(e, CsvFormatError):
            form.add_error("import_file", e.message)
            return
        super().add_data_read_fail_error_to_form(form, e)


# --- Customer admin ------------------------------------------------------------------


def admin_object_become(obj: Any, saved: Any) -> None:
    """Make the admin's ``obj`` the row a service saved (log entry, redirect).

    For admin classes whose save_model hands the write to a service: the admin
    goes on with ``obj`` (its history entry, its redirect).
    """
    for field in type(saved)._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state = saved._state


def customer_search_filter(
    queryset: QuerySet, search_term: str
) -> tuple[QuerySet, bool]:
    """``get_search_results`` for rows of a customer: those the search box finds.

    The customers' own search (email, phone, name, order number), as an IN, so
    there are no duplicates to remove.
    """
    term = search_term.strip()
    if not term:
        return queryset, False
    customers = Customer.objects.search(term).order_by().values("pk")
    return queryset.filter(customer_id__in=customers), False


class AccessLoggedChangeViewMixin:
    """The access log (consents) hears of every record of a customer opened here.

    ``access_log_customer`` is the field holding the customer's id: "pk" for the
    customer itself, "customer_id" for what belongs to one.
    """

    access_log_customer = "customer_id"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and response.status_code == 200:
            customer_id = (
                self.model._default_manager.filter(pk=object_id)
                .values_list(self.access_log_customer, flat=True)
                .first()
            )
            if customer_id is not None:
                personal_data_accessed_send(
                    sender=type(self),
                    request=request,
                    customer_ids=[customer_id],
                    action="view",
                    purpose="admin",
                )
        return response


class ReadOnlyTabularInline(admin.TabularInline):
    """Rows shown with their parent, never added, changed or deleted there."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class AddressInline(admin.StackedInline):
    model = Address
    form = AddressForm
    extra = 0
    fields = (
        ("kind", "is_default"),
        ("first_name", "last_name"),
        "company",
        "street",
        "street2",
        ("postcode", "city"),
        ("region", "country"),
        "phone",
    )


class CustomerIdentityInline(admin.TabularInline):
    """The customer's ids in the shops, read-only.

    Identities are written by the shop sync and imports, keyed by (store, external
    id) for idempotency; editing one by hand would make the next sync create a
    duplicate customer. Deleting a wrong one stays with the model permission.
    """

    model = CustomerIdentity
    extra = 0
    fields = ("store", "external_id", "created_at")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # The store column and __str__ show the store: one join, not one query a row.
        return super().get_queryset(request).select_related("store")

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Customer)
class CustomerAdmin(
    AccessLoggedChangeViewMixin, StoreImportExportMixin, admin.ModelAdmin
):
    access_log_customer = "pk"
    form = CustomerForm
    resource_classes = [CustomerResource]
    import_permissions = ("customers.add_customer", "customers.change_customer")
    export_permission = "customers.export_customer"
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    list_display = ("display_name", "email", "phone_display", "status", "created_at")
    list_display_links = ("display_name", "email")
    # Only indexed orderings: sorting a million rows by name takes seconds.
    sortable_by = ("created_at",)
    list_filter = (
        MergedListFilter,
        "status",
        "gender",
        "language",
        "created_at",
        TagListFilter,
        StoreListFilter,
    )
    actions = ["merge_selected"]
    # The search box needs search_fields; the search itself is Customer.objects.search.
    search_fields = ("email", "first_name", "last_name", "company", "phone")
    search_help_text = _(
        "Email, phone in any format, first or last name, company or order number."
    )
    autocomplete_fields = ("tags",)
    readonly_fields = (
        "status",
        "created_at",
        "updated_at",
        "last_seen_at",
        "last_device",
        "last_os",
        "last_browser",
        "merged_into",
        "merged_at",
    )
    inlines = [AddressInline, CustomerIdentityInline]
    base_fieldsets = (
        (
            None,
            {
                "fields": (
                    ("first_name", "last_name"),
                    "email",
                    "phone",
                    ("birth_date", "gender"),
                    "language",
                    "status",
                    "tags",
                )
            },
        ),
        (_("Company"), {"fields": ("company", "nip")}),
        (
            _("Marketing"),
            {
                "fields": (
                    "preferred_channels",
                    ("acquisition_source", "acquisition_medium"),
                    ("acquisition_campaign", "acquisition_keyword"),
                )
            },
        ),
        (
            _("Activity"),
            {
                "classes": ("collapse",),
                "fields": (
                    ("created_at", "updated_at"),
                    "last_seen_at",
                    ("last_device", "last_os", "last_browser"),
                    ("merged_into", "merged_at"),
                ),
            },
        ),
    )

    @admin.display(description=_("name"))
    def display_name(self, customer: Customer) -> str:
        return customer.full_name or customer.company or "—"

    def has_merge_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("customers.merge_customer")

    def get_paginator(self, request: HttpRequest, queryset: QuerySet, *args, **kwargs):
        # No search or filter: every customer but the few merged-away records.
        narrowed = set(request.GET) - {"p", "o"}
        return self.paginator(queryset, *args, whole_table=not narrowed, **kwargs)

    @admin.action(
        description=_("Compare and merge the two selected customers"),
        permissions=("merge",),
    )
    def merge_selected(self, request: HttpRequest, queryset: QuerySet) -> Any:
        ids = sorted(queryset.values_list("pk", flat=True)[:3])
        if len(ids) != 2:
            self.message_user(
                request, _("Select exactly two customers to merge."), messages.ERROR
            )
            return None
        # The older record survives unless staff swap them on the compare page.
        return HttpResponseRedirect(reverse("merges:compare", args=ids))

    def export_store(self, request: HttpRequest) -> Store | None:
        # The changelist's store filter: its customer ids fill external_id.
        value = request.GET.get(StoreListFilter.parameter_name, "")
        return Store.objects.filter(pk=value).first() if value.isdigit() else None

    @admin.display(description=_("phone"))
    def phone_display(self, customer: Customer) -> str:
        return format_phone(customer.phone)

    @admin.display(description=_("custom attributes"))
    def attributes_display(self, customer: Customer) -> str:
        attributes = customer.attributes or {}
        rows = [
            (definition.label, _format_attribute(attributes[definition.code]))
            for definition in AttributeDefinition.objects.all()
            if definition.code in attributes
        ]
        if not rows:
            return "—"
        return format_html(
            "<dl>{}</dl>", format_html_join("", "<dt>{}</dt><dd>{}</dd>", rows)
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        if not search_term.strip():
            return queryset, False
        # search() filters with EXISTS/IN, never joins to many: no duplicates.
        return queryset.search(search_term), False

    def get_fieldsets(self, request: HttpRequest, obj=None):
        fieldsets = list(self.base_fieldsets)
        if obj is not None and not self.has_change_permission(request, obj):
            # The view-only page has no form fields to render: show the values.
            fieldsets.append(
                (_("Custom attributes"), {"fields": ("attributes_display",)})
            )
            return fieldsets
        codes = AttributeDefinition.objects.filter(is_active=True).values_list(
            "code", flat=True
        )
        names = tuple(attribute_field_name(code) for code in codes)
        if names:
            fieldsets.append((_("Custom attributes"), {"fields": names}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return (*self.readonly_fields, "attributes_display")

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        # Attribute fields are added by CustomerForm.__init__, not by the model form
        # factory, which only knows model fields.
        fields = kwargs.get("fields")
        if fields is not None:
            kwargs["fields"] = [
                name for name in fields if not name.startswith(ATTRIBUTE_FIELD_PREFIX)
            ]
        return super().get_form(request, obj, change, **kwargs)


def _format_attribute(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if value is True:
        return str(_("Yes"))
    if value is False:
        return str(_("No"))
    return str(value)


# --- Webhooks ------------------------------------------------------------------------


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(
        label=_verbose(WebhookEndpoint, "url"), max_length=500, assume_scheme="https"
    )
    events = forms.MultipleChoiceField(
        label=_verbose(WebhookEndpoint, "events"),
        choices=WebhookEndpoint.EventType.choices,
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("store", "url", "events", "is_active")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("url"):
            try:
                cleaned["url"] = webhook_url_validate(cleaned["url"])
            except ValidationError as error:
                self.add_error(None, error)  # keyed by "url"
        return cleaned


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Endpoints are written through the webhook services; the secret is generated."""

    form = WebhookEndpointForm
    list_display = ("url", "store", "events_display", "is_active", "created_at")
    list_filter = ("is_active", "store")
    list_select_related = ("store",)
    search_fields = ("url",)
    actions = ["send_test_event"]

    def get_fields(self, request: HttpRequest, obj=None):
        fields = ("store", "url", "events", "is_active")
        if obj is None:
            return fields
        return (*fields, "secret", "created_at", "deliveries_link")

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        if obj is None:
            return ()
        # Moving an endpoint to another store would send it that store's customers.
        return ("store", "secret", "created_at", "deliveries_link")

    @admin.display(description=_("events"))
    def events_display(self, endpoint: WebhookEndpoint) -> str:
        labels = dict(WebhookEndpoint.EventType.choices)
        return ", ".join(str(labels.get(event, event)) for event in endpoint.events)

    @admin.display(description=_("deliveries"))
    def deliveries_link(self, endpoint: WebhookEndpoint) -> str:
        url = reverse("admin:customers_webhookdelivery_changelist")
        return format_html(
            '<a href="{}?endpoint__id__exact={}">{}</a>',
            url,
            endpoint.pk,
            _("Delivery log of this endpoint"),
        )

    def save_model(self, request: HttpRequest, obj, form, change: bool) -> None:
        data = form.cleaned_data
        if change:
            webhook_endpoint_update(
                endpoint=obj,
                url=data["url"],
                events=data["events"],
                is_active=data["is_active"],
                actor=request.user,
            )
            return
        endpoint = webhook_endpoint_create(
            store=data["store"],
            url=data["url"],
            events=data["events"],
            is_active=data["is_active"],
            actor=request.user,
        )
        # The admin goes on with ``obj`` (log entry, redirect): make it the saved row.
        obj.pk = endpoint.pk
        obj.secret = endpoint.secret
        obj.created_at = endpoint.created_at
        obj._state = endpoint._state

    def response_add(
        self, request: HttpRequest, obj, post_url_continue=None
    ) -> HttpResponse:
        # Straight to the endpoint's page: that is where its new secret is shown.
        if "_addanother" not in request.POST and "_popup" not in request.POST:
            request.POST = request.POST.copy()
            request.POST["_continue"] = "1"
        return super().response_add(request, obj, post_url_continue)

    @admin.action(description=_("Send a test event"), permissions=("change",))
    def send_test_event(self, request: HttpRequest, queryset: QuerySet) -> None:
        sent = inactive = 0
        for endpoint in queryset.select_related("store"):
            try:
                webhook_endpoint_test(endpoint=endpoint, actor=request.user)
            except ValidationError:
                inactive += 1
            else:
                sent += 1
        if sent:
            self.message_user(
                request,
                ngettext(
                    "A test event is on its way to %(count)d endpoint; see the "
                    "delivery log for the response.",
                    "A test event is on its way to %(count)d endpoints; see the "
                    "delivery log for the responses.",
                    sent,
                )
                % {"count": sent},
                messages.SUCCESS,
            )
        if inactive:
            self.message_user(
                request,
                ngettext(
                    "%(count)d endpoint is inactive and was skipped.",
                    "%(count)d endpoints are inactive and were skipped.",
                    inactive,
                )
                % {"count": inactive},
                messages.WARNING,
            )


class WebhookEventListFilter(admin.SimpleListFilter):
    """Fixed choices: a plain field filter would SELECT DISTINCT over the whole log."""

    title = _("event")
    parameter_name = "event"

    def lookups(self, request, model_admin):
        return [*WebhookEndpoint.EventType.choices, (TEST_EVENT, _("Test event"))]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(event=self.value())


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The delivery log, read-only; "retry now" needs the change permission."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_display = (
        "created_at",
        "event",
        "endpoint",
        "status",
        "attempts",
        "response_status",
        "delivered_at",
        "next_attempt_at",
    )
    list_filter = ("status", WebhookEventListFilter, "endpoint")
    list_select_related = ("endpoint",)
    sortable_by = ()
    fields = (
        "id",
        "event",
        "endpoint",
        "status",
        ("attempts", "response_status"),
        "last_error",
        ("created_at", "delivered_at", "next_attempt_at"),
        "payload_display",
    )
    readonly_fields = (
        "id",
        "event",
        "endpoint",
        "status",
        "attempts",
        "response_status",
        "last_error",
        "created_at",
        "delivered_at",
        "next_attempt_at",
        "payload_display",
    )
    actions = ["retry_now"]

    @admin.display(description=_("payload"))
    def payload_display(self, delivery: WebhookDelivery) -> str:
        text = json.dumps(
            delivery.payload, indent=2, sort_keys=True, ensure_ascii=False
        )
        return format_html('<pre class="prewrap">{}</pre>', text)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    @admin.action(description=_("Retry now"), permissions=("retry",))
    def retry_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        retried = sum(
            webhook_delivery_retry(delivery=delivery, actor=request.user)
            for delivery in queryset.exclude(status=WebhookDelivery.Status.SUCCEEDED)
        )
        self.message_user(
            request,
            ngettext(
                "%(count)d delivery will be sent again now.",
                "%(count)d deliveries will be sent again now.",
                retried,
            )
            % {"count": retried},
            messages.SUCCESS,
        )


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        label=_("scopes"),
        choices=ApiKey.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[ApiKey.Scope.READ, ApiKey.Scope.WRITE],
    )

    class Meta:
        model = ApiKey
        fields = ("store", "name", "scopes", "expires_at")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created here or with ``create_api_key``; the secret is shown once."""

    form = ApiKeyForm
    list_display = (
        "name",
        "store",
        "prefix_display",
        "scopes",
        "created_at",
        "last_used_at",
        "state",
    )
    list_filter = ("store", ("revoked_at", admin.EmptyFieldListFilter))
    list_select_related = ("store",)
    search_fields = ("name", "prefix")
    actions = ("revoke_keys",)
    readonly_fields = (
        "prefix_display",
        "created_at",
        "created_by",
        "last_used_at",
        "revoked_at",
    )

    def get_fields(self, request: HttpRequest, obj=None):
        if obj is None:
            return ("store", "name", "scopes", "expires_at")
        return ("store", "name", "prefix_display", "scopes", *self.readonly_fields[1:])

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        if obj is None:
            return ()
        # A key's store and scopes are fixed: revoke it and create another.
        return ("store", "scopes", "expires_at", *self.readonly_fields)

    @admin.display(description=_("prefix"))
    def prefix_display(self, api_key: ApiKey) -> str:
        return f"kt_{api_key.prefix}_…"

    @admin.display(description=_("state"))
    def state(self, api_key: ApiKey) -> str:
        if api_key.revoked_at:
            return str(_("Revoked"))
        return str(_("Active")) if api_key.is_active else str(_("Expired"))

    def save_model(self, request: HttpRequest, obj: ApiKey, form, change: bool) -> None:
        if change:
            obj.save(update_fields=["name"])
            return
        api_key, raw_key = api_key_create(
            store=form.cleaned_data["store"],
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            actor=request.user,
        )
        if form.cleaned_data.get("expires_at"):
            api_key.expires_at = form.cleaned_data["expires_at"]
            api_key.save(update_fields=["expires_at"])
        obj.pk = api_key.pk
        messages.warning(
            request,
            format_html(
                "{} <code>{}</code>",
                _("Copy the new key now; it will not be shown again:"),
                raw_key,
            ),
        )

    @admin.action(description=_("Revoke the selected keys"), permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet) -> None:
        revoked = sum(
            api_key_revoke(api_key=api_key, actor=request.user) for api_key in queryset
        )
        self.message_user(
            request,
            ngettext("Revoked %(count)d key.", "Revoked %(count)d keys.", revoked)
            % {"count": revoked},
        )


# --- Support log (interactions) ----------------------------------------------------


def _staff_users(*, keep=None) -> QuerySet:
    """Who may be given a complaint, plus the one it already has."""
    condition = Q(pk__in=assignable_staff().values("pk"))
    if keep is not None:
        condition |= Q(pk=keep)
    return get_user_model().objects.filter(condition).order_by("username")


class InteractionLogForm(forms.ModelForm):
    """Logging an interaction: checked and saved by ``interaction_log``."""

    class Meta:
        model = Interaction
        fields = (
            "customer",
            "store",
            "kind",
            "channel",
            "direction",
            "occurred_at",
            "subject",
            "body",
            "order",
            "rating",
            "rating_scale",
            "assignee",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "assignee" in self.fields:
            self.fields["assignee"].queryset = _staff_users()
            self.fields["assignee"].label_from_instance = user_label
            self.fields["assignee"].help_text = _("Complaints and returns only.")

    def log_arguments(self) -> dict[str, Any]:
        """What ``interaction_log`` is called with, but the actor."""
        data = self.cleaned_data
        return {
            "customer": data["customer"],
            "kind": data["kind"],
            "channel": data["channel"],
            "direction": data["direction"],
            "subject": data.get("subject") or "",
            "body": data.get("body") or "",
            "order": data.get("order"),
            "occurred_at": data.get("occurred_at"),
            "rating": data.get("rating"),
            "rating_scale": data.get("rating_scale") or "",
            "assignee": data.get("assignee"),
            "store": data.get("store"),
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors:
            add_service_dry_run_errors(
                self, lambda: interaction_log(actor=None, **self.log_arguments())
            )
        return cleaned


def _follow_up(
    interaction: Interaction, data: dict[str, Any], changed: list[str], *, actor
) -> None:
    """The follow-up form's changes, each through its service."""
    if "status" in changed:
        interaction_set_status(
            interaction=interaction,
            status=data["status"],
            actor=actor,
            note=data.get("status_note") or "",
        )
    if "assignee" in changed:
        interaction_assign(
            interaction=interaction, assignee=data.get("assignee"), actor=actor
        )


class InteractionFollowUpForm(forms.ModelForm):
    """A complaint's or return's status and assignee, changed by their services."""

    status_note = forms.CharField(
        label=_("Note on the status change"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Kept in the history with the change."),
    )

    class Meta:
        model = Interaction
        fields = ("status", "assignee")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "status" in self.fields:
            # Only the moves ALLOWED_TRANSITIONS permits from where it is now.
            current = self.instance.status
            allowed = {current, *ALLOWED_TRANSITIONS.get(current, ())}
            self.fields["status"].choices = [
                (value, label)
                for value, label in Interaction.Status.choices
                if value in allowed
            ]
            self.fields["status"].required = True
        else:  # a kind without status, or a read-only page
            self.fields.pop("status_note", None)
        if "assignee" in self.fields:
            self.fields["assignee"].queryset = _staff_users(
                keep=self.instance.assignee_id
            )
            self.fields["assignee"].label_from_instance = user_label

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors and self.instance.pk:

            def follow_up() -> None:
                # A fresh copy: the trial run must not touch the form's instance.
                interaction = Interaction.objects.get(pk=self.instance.pk)
                _follow_up(interaction, cleaned, self.changed_data, actor=None)

            add_service_dry_run_errors(self, follow_up)
        return cleaned


class InteractionDueFilter(admin.SimpleListFilter):
    title = _("answer due")
    parameter_name = "due"

    def lookups(self, request, model_admin):
        return [("overdue", _("Overdue")), ("pending", _("Open or waiting"))]

    def queryset(self, request, queryset):
        if self.value() == "overdue":
            return queryset.overdue()
        if self.value() == "pending":
            return queryset.pending()
        return queryset


class InteractionAssigneeFilter(admin.SimpleListFilter):
    """Me, nobody, or one of the staff: not a list of every user ever assigned."""

    title = _("assignee")
    parameter_name = "assignee"

    def lookups(self, request, model_admin):
        return [
            ("me", _("Me")),
            ("nobody", _("Nobody")),
            *((str(user.pk), user_label(user)) for user in _staff_users()),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "me":
            return queryset.filter(assignee=request.user)
        if value == "nobody":
            return queryset.with_status().filter(assignee__isnull=True)
        if value and value.isdigit():
            return queryset.filter(assignee_id=int(value))
        return queryset


class InteractionChangeInline(ReadOnlyTabularInline):
    """Who changed the status or the assignee, and when: read-only history."""

    model = InteractionChange
    fields = ("changed_at", "field", "old_display", "new_display", "note", "actor")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("actor")

    @staticmethod
    def _value(change: InteractionChange, value: str) -> str:
        if change.field == InteractionChange.Field.STATUS and value:
            return str(dict(Interaction.Status.choices).get(value, value))
        return value or "—"

    @admin.display(description=_("from"))
    def old_display(self, change: InteractionChange) -> str:
        return self._value(change, change.old_value)

    @admin.display(description=_("to"))
    def new_display(self, change: InteractionChange) -> str:
        return self._value(change, change.new_value)


class InteractionAttachmentInline(ReadOnlyTabularInline):
    """The files, read-only; downloaded through the permission-checked view."""

    model = InteractionAttachment
    fields = ("download", "content_type", "size_display", "uploaded_by", "created_at")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("uploaded_by")

    @admin.display(description=_("file"))
    def download(self, attachment: InteractionAttachment) -> str:
        try:
            url = reverse("support:attachment", kwargs={"pk": attachment.pk})
        except NoReverseMatch:  # the download view is not installed
            return attachment.name
        return format_html('<a href="{}">{}</a>', url, attachment.name)

    @admin.display(description=_("size"))
    def size_display(self, attachment: InteractionAttachment) -> str:
        return filesizeformat(attachment.size)


@admin.register(Interaction)
class InteractionAdmin(AccessLoggedChangeViewMixin, admin.ModelAdmin):
    """The support log. Writes go through ``customers.interactions`` only.

    Adding calls ``interaction_log``; on a complaint or return the status and the
    assignee change through ``interaction_set_status`` and ``interaction_assign``,
    which keep the history. The rest of a logged interaction is a record, read-only,
    as are the due date and the closing time the services compute.
    """

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    list_display = (
        "__str__",
        "customer",
        "kind",
        "channel",
        "status",
        "due_display",
        "assignee",
        "store",
        "occurred_at",
    )
    list_select_related = ("customer", "assignee", "store")
    list_filter = (
        "kind",
        "status",
        InteractionDueFilter,
        "channel",
        "store",
        InteractionAssigneeFilter,
    )
    sortable_by = ("occurred_at", "due_display")
    # The search box needs search_fields; get_search_results does the search.
    search_fields = ("subject",)
    search_help_text = _(
        "The customer's email, phone, name or order number, or words of the subject."
    )
    autocomplete_fields = ("customer", "order")
    actions = ("mark_resolved", "assign_to_me")
    inlines = [InteractionChangeInline, InteractionAttachmentInline]

    ADD_FIELDS = (
        "customer",
        "store",
        ("kind", "channel", "direction"),
        "occurred_at",
        "subject",
        "body",
        "order",
        ("rating", "rating_scale"),
        "assignee",
    )
    RECORD_FIELDS = (
        "customer",
        "store",
        ("kind", "channel", "direction"),
        "occurred_at",
        "subject",
        "body",
        "order",
        ("rating", "rating_scale"),
    )
    READ_ONLY = (
        "customer",
        "store",
        "kind",
        "channel",
        "direction",
        "occurred_at",
        "subject",
        "body",
        "order",
        "rating",
        "rating_scale",
        "due_display",
        "resolved_at",
        "author",
        "api_key",
        "external_id",
        "created_at",
        "updated_at",
    )

    def get_fieldsets(self, request: HttpRequest, obj=None):
        if obj is None:
            return ((None, {"fields": self.ADD_FIELDS}),)
        fieldsets = [(None, {"fields": self.RECORD_FIELDS})]
        if obj.has_status:
            follow_up = ["status", "assignee", ("due_display", "resolved_at")]
            if self.has_change_permission(request, obj):
                follow_up.insert(1, "status_note")
            fieldsets.append((_("Follow-up"), {"fields": follow_up}))
        fieldsets.append(
            (
                _("Origin of the entry"),
                {
                    "classes": ("collapse",),
                    "fields": (
                        ("author", "api_key"),
                        "external_id",
                        ("created_at", "updated_at"),
                    ),
                },
            )
        )
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        if obj is None:
            return ()
        if obj.has_status:
            return self.READ_ONLY
        return (*self.READ_ONLY, "status", "assignee")

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        kwargs["form"] = InteractionLogForm if obj is None else InteractionFollowUpForm
        return super().get_form(request, obj, change, **kwargs)

    def get_inlines(self, request: HttpRequest, obj=None):
        return self.inlines if obj is not None else []

    @admin.display(description=_("answer due by"), ordering="due_at")
    def due_display(self, interaction: Interaction) -> str:
        if interaction.due_at is None:
            return "—"
        due = date_format(
            timezone.localtime(interaction.due_at), "SHORT_DATETIME_FORMAT"
        )
        if interaction.is_overdue():
            return format_html(
                '<strong class="overdue">{} ({})</strong>',
                due,
                _("overdue"),
            )
        return due

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        # Customers through their own search (trigram index): an IN over their ids,
        # no join, so no duplicates.
        customers = Customer.objects.search(term).order_by().values("pk")
        condition = (
            Q(customer_id__in=customers)
            | Q(subject__icontains=term)
            | Q(external_id=term)
        )
        return queryset.filter(condition), False

    def save_model(self, request: HttpRequest, obj, form, change: bool) -> None:
        if change:
            _follow_up(obj, form.cleaned_data, form.changed_data, actor=request.user)
            return
        interaction = interaction_log(actor=request.user, **form.log_arguments())
        # The admin goes on with ``obj`` (log entry, redirect): make it the saved row.
        for field in Interaction._meta.concrete_fields:
            setattr(obj, field.attname, getattr(interaction, field.attname))
        obj._state = interaction._state

    @admin.action(description=_("Mark as resolved"), permissions=("change",))
    def mark_resolved(self, request: HttpRequest, queryset: QuerySet) -> None:
        resolved = skipped = 0
        for interaction in queryset:
            try:
                changed = interaction_set_status(
                    interaction=interaction,
                    status=Interaction.Status.RESOLVED,
                    actor=request.user,
                )
            except ValidationError:
                changed = False
            if changed:
                resolved += 1
            else:
                skipped += 1
        if resolved:
            self.message_user(
                request,
                ngettext(
                    "%(count)d interaction marked as resolved.",
                    "%(count)d interactions marked as resolved.",
                    resolved,
                )
                % {"count": resolved},
                messages.SUCCESS,
            )
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "%(count)d skipped: only an open or waiting complaint or return "
                    "can be resolved.",
                    "%(count)d skipped: only open or waiting complaints and returns "
                    "can be resolved.",
                    skipped,
                )
                % {"count": skipped},
                messages.WARNING,
            )

    @admin.action(description=_("Assign to me"), permissions=("change",))
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet) -> None:
        assigned = skipped = 0
        for interaction in queryset:
            if not interaction.has_status:
                skipped += 1
                continue
            assigned += interaction_assign(
                interaction=interaction, assignee=request.user, actor=request.user
            )
        self.message_user(
            request,
            ngettext(
                "%(count)d interaction is now yours.",
                "%(count)d interactions are now yours.",
                assigned,
            )
            % {"count": assigned},
            messages.SUCCESS,
        )
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "%(count)d skipped: only complaints and returns are assigned.",
                    "%(count)d skipped: only complaints and returns are assigned.",
                    skipped,
                )
                % {"count": skipped},
                messages.WARNING,
            )


@admin.register(CustomerMerge)
class CustomerMergeAdmin(ReadOnlyAdmin):
    """The merges' audit trail, read-only; the staff page shows the snapshot."""

    list_display = ("merged_at", "merged_link", "survivor", "merged_by", "undone_at")
    list_filter = (("undone_at", admin.EmptyFieldListFilter), "merged_at")
    list_select_related = ("survivor", "merged_by")
    search_fields = ("=survivor__id", "=merged__id")
    date_hierarchy = "merged_at"
    actions = ["undo_selected"]
    fields = (
        "survivor",
        "merged",
        "merged_at",
        "merged_by",
        "undone_at",
        "undone_by",
        "staff_page",
    )
    readonly_fields = fields

    def has_undo_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("customers.undo_customermerge")

    @admin.display(description=_("merged-away record"))
    def merged_link(self, merge: CustomerMerge) -> str:
        return f"#{merge.merged_id}"

    @admin.display(description=_("details"))
    def staff_page(self, merge: CustomerMerge) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("merges:detail", args=[merge.pk]),
            _("Snapshot, what moved, and undo"),
        )

    @admin.action(description=_("Undo the selected merges"), permissions=("undo",))
    def undo_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        undone = 0
        # Newest first: a merge into a record merged away later waits for that one.
        for merge in queryset.order_by("-merged_at", "-pk"):
            try:
                customer_merge_undo(merge=merge, actor=request.user)
            except ValidationError as error:
                self.message_user(
                    request, f"{merge}: {' '.join(error.messages)}", messages.WARNING
                )
            else:
                undone += 1
        if undone:
            self.message_user(
                request,
                ngettext("%(count)d merge undone.", "%(count)d merges undone.", undone)
                % {"count": undone},
                messages.SUCCESS,
            )


# Registering the other admin modules' models (they import this one's helpers).
from customers import admin_imports, admin_quality  # noqa: E402, F401, I001
