"""The data protection officer's pages: the access log and the register of processing.

Read-only. The access log per customer and per staff member, newest first, paged
without counting; the register of processing activities (Art. 30) generated from
the consent purposes.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.generic import TemplateView

from consents.models import AccessLog, ConsentPurpose
from customers.models import Customer, Store
from customers.views import StaffPageMixin, paginate_without_count


class AccessLogPageMixin(StaffPageMixin):
    """One page of access log rows matching ``log_filter()``, newest first."""

    permission_required = "consents.view_accesslog"
    per_page = 50

    def log_filter(self) -> dict:
        raise NotImplementedError

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        rows = (
            AccessLog.objects.filter(**self.log_filter())
            .select_related("user", "api_key", "customer")
            .order_by("-at", "-id")
        )
        page = paginate_without_count(rows, self.request.GET.get("page"), self.per_page)
        context.update(
            page=page, entries=page.object_list, known_total=page.known_total
        )
        return context


class AccessLogCustomerView(AccessLogPageMixin, TemplateView):
    """Who saw or took this customer's data (Art. 15(1)(c): the recipients)."""

    template_name = "consents/dpo/access_log_customer.html"

    def log_filter(self) -> dict:
        self.customer = get_object_or_404(Customer, pk=self.kwargs["pk"])
        return {"customer": self.customer}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["customer"] = self.customer
        return context


class AccessLogUserView(AccessLogPageMixin, TemplateView):
    """Whose data this staff member saw or took."""

    template_name = "consents/dpo/access_log_user.html"

    def log_filter(self) -> dict:
        self.staff_member = get_object_or_404(get_user_model(), pk=self.kwargs["pk"])
        return {"user": self.staff_member}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["staff_member"] = self.staff_member
        return context


class ProcessingRegisterView(StaffPageMixin, TemplateView):
    """The register of processing activities (Art. 30(1)), printable."""

    permission_required = "consents.view_consentpurpose"
    template_name = "consents/dpo/register.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            controllers=list(
                Store.objects.filter(is_active=True)
                .order_by("pk")
                .values_list("name", flat=True)
            ),
            purposes=ConsentPurpose.objects.filter(is_active=True),
            generated_at=timezone.now(),
        )
        return context
