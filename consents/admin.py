"""Django admin for the consents app.

The ledger, texts and access log are append-only in the database, so the admin
offers no change or delete for them: a new text version is published, a staff
member records a consent through the add form (the service does the writing).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from config.clients import client_evidence
from consents.models import (
    AccessLog,
    ConsentEvent,
    ConsentPurpose,
    ConsentState,
    ConsentText,
    DataSubjectRequest,
    DoubleOptIn,
    Suppression,
)
from consents.services import consent_record, consent_text_current, consent_text_publish
from customers.admin import ReadOnlyAdmin
from customers.models import Customer
from customers.paginators import EstimatedCountPaginator


@admin.register(ConsentPurpose)
class ConsentPurposeAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "channel",
        "legal_basis",
        "is_marketing",
        "requires_double_opt_in",
        "is_active",
    )
    readonly_fields = ("code",)
    fields = (
        "code",
        "channel",
        "is_marketing",
        "legal_basis",
        "description",
        "data_categories",
        "recipients",
        "retention",
        "requires_double_opt_in",
        "position",
        "is_active",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the six purposes are the ledger's vocabulary

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ConsentTextForm(forms.ModelForm):
    class Meta:
        model = ConsentText
        fields = ("purpose", "language", "text")


@admin.register(ConsentText)
class ConsentTextAdmin(admin.ModelAdmin):
    """Texts are immutable: "add" publishes the next version."""

    form = ConsentTextForm
    list_display = ("purpose", "language", "version", "published_at", "content_hash")
    list_filter = ("purpose", "language")
    readonly_fields = ("version", "content_hash", "published_at", "created_by")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        published = consent_text_publish(
            purpose=form.cleaned_data["purpose"],
            language=form.cleaned_data["language"],
            text=form.cleaned_data["text"],
            actor=request.user,
        )
        obj.pk = published.pk


class StaffConsentForm(forms.Form):
    """A consent a staff member takes down (on the phone, in the shop)."""

    customer = forms.ModelChoiceField(
        Customer.objects.not_erased(), widget=forms.NumberInput, label=_("Customer id")
    )
    purpose = forms.ModelChoiceField(
        ConsentPurpose.objects.filter(is_active=True), label=_("Purpose")
    )
    action = forms.ChoiceField(choices=ConsentEvent.Action.choices, label=_("Action"))
    note = forms.CharField(
        label=_("How it was given"),
        help_text=_("E.g. a phone call on 12 March, the call reference."),
        max_length=500,
    )


@admin.register(ConsentEvent)
class ConsentEventAdmin(ReadOnlyAdmin):
    list_display = (
        "occurred_at",
        "customer",
        "purpose",
        "action",
        "source",
        "text",
        "store",
    )
    list_filter = ("purpose", "action", "source")
    list_select_related = ("customer", "purpose", "text", "store")
    raw_id_fields = ("customer",)
    search_fields = ("=customer__id",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    date_hierarchy = "occurred_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("consents.add_consentevent")

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        """A staff member records a grant or withdrawal through consent_record."""
        if not self.has_add_permission(request):
            return self.changeform_view(request, None, form_url, extra_context)
        form = StaffConsentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            customer = data["customer"]
            try:
                consent_record(
                    customer=customer,
                    purpose=data["purpose"],
                    action=data["action"],
                    source=ConsentEvent.Source.STAFF,
                    staff_user=request.user,
                    text=consent_text_current(
                        purpose=data["purpose"], language=customer.language
                    )
                    if data["action"] == ConsentEvent.Action.GRANT
                    else None,
                    evidence={"note": data["note"]},
                    **client_evidence(request),
                )
            except ValidationError as error:
                for message in error.messages:
                    form.add_error(None, message)
            else:
                self.message_user(request, _("Recorded."), messages.SUCCESS)
                return HttpResponseRedirect(
                    reverse("admin:consents_consentevent_changelist")
                )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Record a consent taken down by staff"),
            "form": form,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/consents/staff_consent.html", context)


@admin.register(ConsentState)
class ConsentStateAdmin(ReadOnlyAdmin):
    list_display = ("customer", "purpose", "granted", "changed_at")
    list_filter = ("purpose", "granted")
    list_select_related = ("customer", "purpose")
    search_fields = ("=customer__id",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator


@admin.register(DoubleOptIn)
class DoubleOptInAdmin(ReadOnlyAdmin):
    list_display = ("customer", "purpose", "requested_at", "confirmed_at")
    list_filter = ("purpose", ("confirmed_at", admin.EmptyFieldListFilter))
    list_select_related = ("customer", "purpose")
    show_full_result_count = False


@admin.register(Suppression)
class SuppressionAdmin(ReadOnlyAdmin):
    list_display = ("kind", "value_hash", "reason", "created_at")
    list_filter = ("kind", "reason")


@admin.register(DataSubjectRequest)
class DataSubjectRequestAdmin(ReadOnlyAdmin):
    """The requests are handled on the DPO's staff pages; the admin lists them."""

    list_display = ("__str__", "customer", "status", "received_at", "due_on")
    list_filter = ("kind", "status")
    raw_id_fields = ("customer",)


@admin.register(AccessLog)
class AccessLogAdmin(ReadOnlyAdmin):
    list_display = ("at", "customer", "action", "user", "api_key", "ip_address")
    list_filter = ("action",)
    list_select_related = ("customer", "user", "api_key")
    search_fields = ("=customer__id", "user__username")
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    date_hierarchy = "at"
