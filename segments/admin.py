"""Django admin for segments, their members and history, and the RFM set-up.

Every write with rules goes through ``segments.services``: a segment is created
and changed by ``segment_create`` / ``segment_update`` (the form asks the service
first, in a savepoint that is rolled back, so its errors show on the form), a
static segment's list by ``segment_members_add`` / ``segment_members_remove``.
Rebuilds and recomputes are queued as tasks once the request commits.

Figures, scores, thresholds, moves, rebuilds and changes are computed: the admin
lists them, read-only. Lists over big tables never count them in full
(``customers.paginators.EstimatedCountPaginator``) and search customers through
``Customer.objects.search`` (trigram indexes).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import transaction
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import format_lazy, slugify
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from consents.admin import ReadOnlyAdmin
from customers.admin import (
    AccessLoggedChangeViewMixin,
    ReadOnlyTabularInline,
    admin_object_become,
    colour_swatch_html,
    customer_search_filter,
)
from customers.exports import customers_table, export_response
from customers.forms import add_service_dry_run_errors
from customers.models import Customer, Store
from customers.paginators import EstimatedCountPaginator
from segments.models import (
    CurrencyRate,
    CustomerMetrics,
    DailyBrandSales,
    DailyCategorySales,
    DailyCustomers,
    DailySales,
    DashboardRefresh,
    DashboardSnapshot,
    MetricsQueue,
    RfmCell,
    RfmSegment,
    RfmSegmentMove,
    RfmThreshold,
    Segment,
    SegmentChange,
    SegmentMembership,
    SegmentRebuild,
)
from segments.rules import describe_rules
from segments.services import (
    segment_create,
    segment_members_add,
    segment_members_remove,
    segment_update,
)
from segments.tasks import metrics_recompute_task, segment_rebuild_after_commit

Trigger = SegmentRebuild.Trigger


def _recompute_note(request: HttpRequest) -> None:
    """Say once per request that a grid or rate change waits for the recompute."""
    if getattr(request, "_segments_recompute_noted", False):
        return
    request._segments_recompute_noted = True
    messages.info(
        request,
        _(
            "Scores and segments are recomputed every night: this change applies "
            "to customers at the next recompute. A Manager can start one now with "
            "the “Recompute now” action on the RFM grid."
        ),
    )


# --- Segments ------------------------------------------------------------------------


class RulesField(forms.JSONField):
    """The rule tree as indented JSON text, readable and editable in a textarea."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2, cls=self.encoder)


RULES_EXAMPLE = (
    '{"op": "and", "rules": [{"field": "orders_count", "operator": "gte", '
    '"value": 2}, {"field": "city", "operator": "equals", "value": "Warszawa"}]}'
)
SEGMENT_FIELDS = ("name", "description", "kind", "rules", "schedule", "is_active")


def _segment_write(
    segment_id: int | None, data: dict[str, Any], *, actor: Any
) -> tuple[Segment, bool]:
    """Create or change a segment through its services; (segment, rebuild due).

    ``data`` holds the form's cleaned values (a field the page shows read-only,
    such as the kind after creation, is absent).
    """
    values = {name: data[name] for name in SEGMENT_FIELDS if name in data}
    if segment_id is None:
        is_active = values.pop("is_active", True)
        segment = segment_create(actor=actor, **values)
        if not is_active:
            segment_update(segment=segment, actor=actor, is_active=False)
        return segment, segment.is_dynamic
    segment = Segment.objects.get(pk=segment_id)
    values.pop("kind", None)  # fixed once created: a list's members are not a rule's
    return segment, segment_update(segment=segment, actor=actor, **values)


class SegmentAdminForm(forms.ModelForm):
    """A segment's definition, checked by segment_create / segment_update."""

    class Meta:
        model = Segment
        fields = SEGMENT_FIELDS
        field_classes = {"rules": RulesField}
        widgets = {
            "rules": forms.Textarea(
                attrs={"rows": 14, "class": "vLargeTextField", "spellcheck": "false"}
            )
        }
        help_texts = {
            "rules": format_lazy(
                _(
                    "The rule tree of a dynamic segment as JSON, for example: "
                    "{example}. A static segment has no rules."
                ),
                example=RULES_EXAMPLE,
            )
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors:
            segment_id = self.instance.pk
            add_service_dry_run_errors(
                self, lambda: _segment_write(segment_id, cleaned, actor=None)
            )
        return cleaned


class LatestRebuildsFormSet(BaseInlineFormSet):
    """Only the latest rebuilds: an hourly segment has thousands a year."""

    limit = 10

    def get_queryset(self) -> QuerySet:
        if not hasattr(self, "_latest"):
            self._latest = super().get_queryset()[: self.limit]
        return self._latest


class SegmentRebuildInline(ReadOnlyTabularInline):
    model = SegmentRebuild
    formset = LatestRebuildsFormSet
    verbose_name_plural = _("latest rebuilds")
    fields = ("started_at", "trigger", "size", "entered", "left", "requested_by")
    readonly_fields = fields
    ordering = ("-started_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("requested_by")


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    """Segments; their rules checked and saved by the segments services."""

    form = SegmentAdminForm
    list_display = ("name", "kind", "size", "schedule", "is_active", "rebuilt_at")
    list_filter = ("kind", "schedule", "is_active")
    search_fields = ("name",)
    actions = ("rebuild_now", "export_members")
    inlines = [SegmentRebuildInline]
    READ_ONLY = (
        "kind",
        "definition",
        "size",
        "rebuilt_at",
        "members_link",
        "created_by",
        "created_at",
        "updated_at",
    )

    def get_fields(self, request: HttpRequest, obj: Segment | None = None):
        if obj is None:
            return SEGMENT_FIELDS
        rules = ("rules", "definition") if obj.is_dynamic else ()
        return (
            "name",
            "description",
            "kind",
            *rules,
            "schedule",
            "is_active",
            ("size", "rebuilt_at"),
            "members_link",
            ("created_by", "created_at", "updated_at"),
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Segment | None = None):
        return () if obj is None else self.READ_ONLY

    def get_inlines(self, request: HttpRequest, obj: Segment | None = None):
        return self.inlines if obj is not None else []

    @admin.display(description=_("definition"))
    def definition(self, segment: Segment) -> str:
        try:
            return describe_rules(segment.rules)
        except ValidationError:  # e.g. a tag or category it names was deleted
            return str(_("These rules are no longer valid: correct them and save."))

    @admin.display(description=_("members"))
    def members_link(self, segment: Segment) -> str:
        url = reverse("admin:segments_segmentmembership_changelist")
        return format_html(
            '<a href="{}?segment__id__exact={}">{}</a>',
            url,
            segment.pk,
            _("The segment's members"),
        )

    def save_model(self, request: HttpRequest, obj: Segment, form, change: bool):
        segment, rebuild = _segment_write(
            obj.pk if change else None, form.cleaned_data, actor=request.user
        )
        admin_object_become(obj, segment)
        if rebuild and segment.is_active:
            segment_rebuild_after_commit(
                [segment], trigger=Trigger.EDIT, user=request.user
            )
            self.message_user(
                request,
                _("The members are being selected by the new rules."),
                messages.INFO,
            )

    def get_deleted_objects(self, objs, request: HttpRequest):
        # Members, rebuilds and changes go with their segment (the models cascade):
        # listing each one would load a big segment's every member into the page.
        objs = list(objs)
        to_delete = [
            format_html(
                '{}: <a href="{}">{}</a>',
                Segment._meta.verbose_name,
                reverse("admin:segments_segment_change", args=[obj.pk]),
                obj,
            )
            for obj in objs
        ]
        model_count = {
            Segment._meta.verbose_name_plural: len(objs),
            SegmentMembership._meta.verbose_name_plural: (
                SegmentMembership.objects.filter(segment__in=objs).count()
            ),
            SegmentRebuild._meta.verbose_name_plural: (
                SegmentRebuild.objects.filter(segment__in=objs).count()
            ),
        }
        return to_delete, model_count, set(), []

    @admin.action(description=_("Rebuild now"), permissions=("change",))
    def rebuild_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        queued = segment_rebuild_after_commit(
            queryset.only("pk"), trigger=Trigger.MANUAL, user=request.user
        )
        self.message_user(
            request,
            ngettext(
                "%(count)d segment will be rebuilt in a moment.",
                "%(count)d segments will be rebuilt in a moment.",
                queued,
            )
            % {"count": queued},
            messages.SUCCESS,
        )

    def has_export_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("segments.export_segment")

    @admin.action(description=_("Export members as CSV"), permissions=("export",))
    def export_members(
        self, request: HttpRequest, queryset: QuerySet
    ) -> HttpResponseBase:
        """The members as of the last rebuild, in the customers export's columns."""
        segments = list(queryset.order_by("name").only("pk", "name"))
        members = Customer.objects.filter(
            pk__in=SegmentMembership.objects.filter(segment__in=segments).values(
                "customer_id"
            )
        ).order_by("pk")
        if len(segments) == 1:
            name = f"segment-{segments[0].pk}-{slugify(segments[0].name)}".rstrip("-")
        else:
            name = "segments"
        table = dataclasses.replace(customers_table(members), name=name)
        return export_response(
            table,
            file_format="csv",
            request=request,
            sender=type(self),
            purpose="segment export: " + ", ".join(s.name for s in segments),
        )


# --- Segment members -----------------------------------------------------------------


def _member_add(data: dict[str, Any], *, actor: Any) -> None:
    added = segment_members_add(
        segment=data["segment"], customers=[data["customer"]], actor=actor
    )
    if not added:
        raise ValidationError(
            {
                "customer": ValidationError(
                    _("This customer is already on the list, or was erased."),
                    code="not_added",
                )
            }
        )


class SegmentMemberAddForm(forms.ModelForm):
    """A customer put on a static segment's list by segment_members_add."""

    class Meta:
        model = SegmentMembership
        fields = ("segment", "customer")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "segment" in self.fields:
            self.fields["segment"].queryset = Segment.objects.filter(
                kind=Segment.Kind.STATIC
            )
            self.fields["segment"].help_text = _(
                "Only static segments: a dynamic segment's members come from its rules."
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors:
            add_service_dry_run_errors(self, lambda: _member_add(cleaned, actor=None))
        return cleaned


@admin.register(SegmentMembership)
class SegmentMembershipAdmin(admin.ModelAdmin):
    """Members of every segment; static lists are edited through the services.

    A dynamic segment's members are whoever its rules select: read-only here.
    """

    form = SegmentMemberAddForm
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_display = ("customer", "segment", "entered_at", "added_by")
    list_filter = ("segment",)
    list_select_related = ("customer", "segment", "added_by")
    sortable_by = ()
    # The search box needs search_fields; get_search_results does the search.
    search_fields = ("customer__email",)
    search_help_text = _("The customer's email, phone or name.")
    autocomplete_fields = ("customer",)
    actions = ("remove_from_list",)

    def get_fields(self, request: HttpRequest, obj: SegmentMembership | None = None):
        if obj is None:
            return ("segment", "customer")
        return ("segment", "customer", "entered_at", "added_by")

    def get_search_results(self, request, queryset, search_term):
        return customer_search_filter(queryset, search_term)

    def get_actions(self, request: HttpRequest):
        actions = super().get_actions(request)
        # Removing goes through the service (and skips dynamic segments' members).
        actions.pop("delete_selected", None)
        return actions

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # a membership has nothing to change: add or remove it

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        if obj is not None and obj.segment.is_dynamic:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj: SegmentMembership, form, change: bool):
        data = form.cleaned_data
        _member_add(data, actor=request.user)
        admin_object_become(
            obj,
            SegmentMembership.objects.get(
                segment=data["segment"], customer=data["customer"]
            ),
        )

    def delete_model(self, request: HttpRequest, obj: SegmentMembership) -> None:
        segment_members_remove(
            segment=obj.segment, customers=[obj.customer_id], actor=request.user
        )

    @admin.action(
        description=_("Remove from the segment's list"), permissions=("delete",)
    )
    def remove_from_list(self, request: HttpRequest, queryset: QuerySet) -> None:
        by_segment: dict[int, list[int]] = {}
        skipped = 0
        for segment_id, customer_id, kind in queryset.values_list(
            "segment_id", "customer_id", "segment__kind"
        ):
            if kind == Segment.Kind.DYNAMIC:
                skipped += 1
            else:
                by_segment.setdefault(segment_id, []).append(customer_id)
        removed = 0
        for segment in Segment.objects.filter(pk__in=by_segment):
            removed += segment_members_remove(
                segment=segment, customers=by_segment[segment.pk], actor=request.user
            )
        self.message_user(
            request,
            ngettext(
                "%(count)d customer taken off the list.",
                "%(count)d customers taken off the list.",
                removed,
            )
            % {"count": removed},
            messages.SUCCESS,
        )
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "%(count)d skipped: a dynamic segment's members come from its "
                    "rules.",
                    "%(count)d skipped: dynamic segments' members come from their "
                    "rules.",
                    skipped,
                )
                % {"count": skipped},
                messages.WARNING,
            )


@admin.register(SegmentRebuild)
class SegmentRebuildAdmin(ReadOnlyAdmin):
    list_display = (
        "segment",
        "trigger",
        "started_at",
        "finished_at",
        "size",
        "entered",
        "left",
        "requested_by",
    )
    list_filter = ("trigger", "segment")
    list_select_related = ("segment", "requested_by")
    paginator = EstimatedCountPaginator
    show_full_result_count = False


@admin.register(SegmentChange)
class SegmentChangeAdmin(ReadOnlyAdmin):
    list_display = ("at", "segment", "customer", "kind", "rebuild")
    list_filter = ("kind", "segment")
    # Newest first by id (rows are written as they happen): "at" has no index of
    # its own, and sorting every change ever made would take seconds.
    ordering = ("-pk",)
    list_select_related = ("segment", "customer", "rebuild")
    search_fields = ("customer__email",)
    search_help_text = _("The customer's email, phone or name.")
    sortable_by = ()
    paginator = EstimatedCountPaginator
    show_full_result_count = False

    def get_search_results(self, request, queryset, search_term):
        return customer_search_filter(queryset, search_term)


# --- Metrics and RFM -----------------------------------------------------------------


class MetricsStoreFilter(admin.SimpleListFilter):
    """One store's figures, or the figures over all stores together."""

    title = _("store")
    parameter_name = "store"
    OVERALL = "all"

    def lookups(self, request, model_admin):
        return [
            (self.OVERALL, _("All stores together")),
            *((str(store.pk), store.name) for store in Store.objects.order_by("name")),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == self.OVERALL:
            return queryset.overall()
        if value and value.isdigit():
            return queryset.filter(store_id=int(value))
        return queryset


@admin.register(CustomerMetrics)
class CustomerMetricsAdmin(AccessLoggedChangeViewMixin, ReadOnlyAdmin):
    """Computed by segments.metrics: shown, never edited."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    list_display = (
        "customer",
        "store_display",
        "orders_count",
        "revenue",
        "recency_score",
        "frequency_score",
        "monetary_score",
        "rfm_segment",
    )
    list_select_related = ("customer", "store")
    list_filter = (MetricsStoreFilter, "rfm_segment")
    # Sorting a million rows by an unindexed figure takes seconds on every page.
    sortable_by = ()
    search_fields = ("customer__email",)
    search_help_text = _("The customer's email, phone or name.")

    @admin.display(description=_("store"))
    def store_display(self, metrics: CustomerMetrics) -> str:
        return metrics.store.name if metrics.store else str(_("All stores together"))

    def get_search_results(self, request, queryset, search_term):
        return customer_search_filter(queryset, search_term)


class RfmSegmentForm(forms.ModelForm):
    color = forms.CharField(
        label=_("colour"),
        max_length=7,
        widget=forms.TextInput(attrs={"type": "color"}),
        validators=[
            RegexValidator(
                r"^#[0-9a-fA-F]{6}$",
                _("Give the colour as #rrggbb, e.g. #15803d."),
                code="invalid_color",
            )
        ],
    )

    class Meta:
        model = RfmSegment
        fields = ("name", "description", "color", "position")


def _rfm_name(segment: RfmSegment) -> str:
    """The segment's name as the staff set it, else the standard one."""
    return segment.name or str(RfmSegment.Code(segment.code).label)


@admin.register(RfmSegment)
class RfmSegmentAdmin(admin.ModelAdmin):
    """The eleven named RFM segments: names, descriptions, colours and order."""

    form = RfmSegmentForm
    list_display = ("display_name", "code", "description", "colour_swatch", "position")
    fields = ("code", "name", "description", "color", "position")
    readonly_fields = ("code",)

    @admin.display(description=_("name"), ordering="position")
    def display_name(self, segment: RfmSegment) -> str:
        return _rfm_name(segment)

    @admin.display(description=_("colour"))
    def colour_swatch(self, segment: RfmSegment) -> str:
        return colour_swatch_html(segment.color)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the eleven are the grid's vocabulary

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(RfmCell)
class RfmCellAdmin(admin.ModelAdmin):
    """The recency-by-frequency grid: which named segment each cell belongs to."""

    list_display = ("__str__", "recency", "frequency", "segment")
    list_editable = ("segment",)
    list_select_related = ("segment",)
    fields = ("recency", "frequency", "segment")
    readonly_fields = ("recency", "frequency")
    actions = ("recompute_now",)

    def get_list_display(self, request: HttpRequest):
        if self.has_change_permission(request):
            return self.list_display  # "segment" is a select there
        return ("__str__", "recency", "frequency", "segment_name")

    @admin.display(description=_("RFM segment"))
    def segment_name(self, cell: RfmCell) -> str:
        return _rfm_name(cell.segment)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "segment":
            field.label_from_instance = _rfm_name
            # Read once for the grid's 25 selects, not once per row.
            field.choices = list(field.choices)
        return field

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the 25 cells of the 5x5 grid exist from the start

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: RfmCell, form, change: bool):
        obj.save(update_fields=["segment"])
        _recompute_note(request)

    @admin.action(description=_("Recompute now"), permissions=("change",))
    def recompute_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        # The full recompute (then the nightly segments) runs in the worker: on a
        # million buyers it outlasts a web request.
        transaction.on_commit(metrics_recompute_task.delay, robust=True)
        self.message_user(
            request,
            _(
                "The scores are being recomputed with the current grid and rates; "
                "with many customers it takes a few minutes."
            ),
            messages.SUCCESS,
        )


@admin.register(CurrencyRate)
class CurrencyRateAdmin(admin.ModelAdmin):
    list_display = ("currency", "rate", "updated_at")
    search_fields = ("currency",)
    readonly_fields = ("updated_at",)

    def save_model(self, request, obj: CurrencyRate, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        _recompute_note(request)

    def delete_model(self, request, obj: CurrencyRate) -> None:
        super().delete_model(request, obj)
        _recompute_note(request)

    def delete_queryset(self, request, queryset: QuerySet) -> None:
        super().delete_queryset(request, queryset)
        _recompute_note(request)


@admin.register(RfmThreshold)
class RfmThresholdAdmin(ReadOnlyAdmin):
    list_display = (
        "__str__",
        "buyers",
        "computed_at",
        "recency",
        "frequency",
        "monetary",
    )
    list_select_related = ("store",)


@admin.register(RfmSegmentMove)
class RfmSegmentMoveAdmin(ReadOnlyAdmin):
    list_display = ("moved_at", "customer", "from_segment", "to_segment")
    list_filter = ("from_segment", "to_segment")
    list_select_related = ("customer",)
    search_fields = ("customer__email",)
    search_help_text = _("The customer's email, phone or name.")
    sortable_by = ()
    paginator = EstimatedCountPaginator
    show_full_result_count = False

    def get_search_results(self, request, queryset, search_term):
        return customer_search_filter(queryset, search_term)


@admin.register(MetricsQueue)
class MetricsQueueAdmin(ReadOnlyAdmin):
    list_display = ("customer", "queued_at")
    list_select_related = ("customer",)
    paginator = EstimatedCountPaginator
    show_full_result_count = False


# --- The dashboard's pre-aggregated figures -------------------------------------------


class DashboardStoreFilter(MetricsStoreFilter):
    """A store's rows, or the rows over all stores together (where there are any)."""

    def queryset(self, request, queryset):
        value = self.value()
        if value == self.OVERALL:
            return queryset.filter(store__isnull=True)
        if value and value.isdigit():
            return queryset.filter(store_id=int(value))
        return queryset


class RollupAdmin(ReadOnlyAdmin):
    """Rows rebuilt by segments.rollups (manage.py refresh_dashboard): read only."""

    date_hierarchy = "day"
    list_select_related = ("store",)
    list_per_page = 100
    show_full_result_count = False


@admin.register(DailySales)
class DailySalesAdmin(RollupAdmin):
    list_display = ("day", "store", "currency", "orders", "revenue")
    list_filter = ("store", "currency")


@admin.register(DailyCustomers)
class DailyCustomersAdmin(RollupAdmin):
    list_display = ("day", "store_display", "customers", "new_customers")
    list_filter = (DashboardStoreFilter,)

    @admin.display(description=_("store"))
    def store_display(self, row: DailyCustomers) -> str:
        return row.store.name if row.store else str(_("All stores together"))


@admin.register(DailyCategorySales)
class DailyCategorySalesAdmin(RollupAdmin):
    list_display = ("day", "store", "category", "currency", "lines", "revenue")
    list_filter = ("store", "currency")
    list_select_related = ("store", "category")


@admin.register(DailyBrandSales)
class DailyBrandSalesAdmin(RollupAdmin):
    list_display = ("day", "store", "brand", "currency", "lines", "revenue")
    list_filter = ("store", "currency")
    search_fields = ("brand",)


@admin.register(DashboardSnapshot)
class DashboardSnapshotAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "computed_at")
    list_select_related = ("store",)


@admin.register(DashboardRefresh)
class DashboardRefreshAdmin(ReadOnlyAdmin):
    list_display = ("kind", "first_day", "started_at", "finished_at", "rows")
    list_filter = ("kind",)
