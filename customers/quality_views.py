"""The data quality pages under /quality/ (namespace "quality").

* ``index`` -- a card per check (``customers.quality.quality_checks``) with what
  the last scan counted, when it ran, and "Scan now" (``scan``, a POST that
  queues ``customers.tasks.duplicates_scan_task``).
* ``list`` -- one check's list, paged without counting, each row linking to its
  customer or order; rows fixed since the scan are marked. The likely duplicates
  have their own layout: the pairs side by side, by reason, with the link to
  compare and merge them (and to batch-merge the exact ones).
* ``export`` -- a check's list as CSV.

Everything needs ``customers.view_duplicatecandidate`` (the Manager, the data
protection officer) and each check's own permissions; pages and files with
personal data report whose to the access log (``personal_data_accessed_send``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from django.apps import apps
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import content_disposition_header, urlencode
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import TemplateView

from customers.exports import CHUNK_SIZE, csv_lines, export_cell
from customers.models import Address, Customer, DuplicateCandidate
from customers.models.quality import QualityScan
from customers.quality import (
    VIEW_PERMISSION,
    QualityCheck,
    quality_check,
    quality_checks,
)
from customers.signals import personal_data_accessed_send
from customers.views import StaffPageMixin, paginate_without_count

#: A scan started this long ago and not finished has died (a worker lost).
SCAN_RUNNING_HOURS = 3


def scan_queue() -> None:
    """Queue the data quality scan once the request's transaction commits.

    A queue that is down must not turn the page into an error: the nightly scan
    catches up.
    """
    from customers.tasks import duplicates_scan_task  # tasks import the services

    def send() -> None:
        duplicates_scan_task.delay()

    transaction.on_commit(send, robust=True)


def _url(name: str, *args: Any, query: dict | None = None) -> str | None:
    """The URL of a page another part of the app provides, None while it has none."""
    try:
        url = reverse(name, args=args)
    except NoReverseMatch:
        return None
    return f"{url}?{urlencode(query)}" if query else url


class QualityIndexView(StaffPageMixin, TemplateView):
    """A card per check with the last scan's count; when it ran; "Scan now"."""

    permission_required = VIEW_PERMISSION
    template_name = "customers/quality.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        last = QualityScan.objects.finished().first()
        since = timezone.now() - dt.timedelta(hours=SCAN_RUNNING_HOURS)
        running = QualityScan.objects.running(since=since).first()
        if running and last and running.started_at < last.started_at:
            running = None  # an older scan that died; a newer one finished
        counts = last.counts if last else {}
        context.update(
            cards=[
                {"check": check, "count": counts.get(check.code)}
                for check in quality_checks(self.request.user)
            ],
            last_scan=last,
            running_scan=running,
            duplicate_reasons=[
                {"code": code, "label": label, "count": last.duplicates.get(code, 0)}
                for code, label in DuplicateCandidate.Reason.choices
            ]
            if last
            else [],
        )
        return context


class QualityScanView(StaffPageMixin, View):
    """POST: queue the scan; back to the overview, which says it is queued."""

    permission_required = VIEW_PERMISSION

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        scan_queue()
        messages.success(
            request,
            _(
                "The scan is queued. It takes a minute or so; the figures here are "
                "updated when it has finished."
            ),
        )
        return redirect("quality:index")


class QualityCheckMixin(StaffPageMixin):
    """The check named by the URL: 404 if unknown, 403 without its permissions."""

    permission_required = VIEW_PERMISSION
    request: HttpRequest
    kwargs: dict[str, Any]

    def get_check(self) -> QualityCheck:
        check = quality_check(self.kwargs["code"])
        if check is None:
            raise Http404
        if not check.visible_to(self.request.user):
            raise PermissionDenied
        return check


class QualityListView(QualityCheckMixin, TemplateView):
    """One check's list, a page at a time; the likely duplicates as pairs."""

    per_page = 50
    customer_ids: list[int] = []  # whose personal data the page shows

    def get_template_names(self) -> list[str]:
        return [self.check.template]

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.check = self.get_check()
        response = super().get(request, *args, **kwargs)
        customer_ids = self.customer_ids
        if customer_ids:
            personal_data_accessed_send(
                sender=type(self),
                request=request,
                customer_ids=customer_ids,
                action="view",
            )
        return response

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        check = self.check
        context.update(
            check=check,
            last_scan=QualityScan.objects.finished().first(),
            can_export=check.exportable_by(self.request.user),
        )
        if check.code == "duplicates":
            context.update(self.duplicates_context())
        else:
            context.update(self.rows_context())
        return context

    def rows_context(self) -> dict[str, Any]:
        check = self.check
        page = paginate_without_count(
            check.found(), self.request.GET.get("page"), self.per_page
        )
        still = check.still_failing([row.pk for row in page])
        self.customer_ids = list(
            dict.fromkeys(pk for row in page for pk in check.customer_ids(row))
        )
        rows = [
            {
                "object": row,
                "url": check.url(row),
                "cells": [column.shown(row) for column in check.columns[1:]],
                "first": check.columns[0].shown(row),
                "fixed": row.pk not in still,
            }
            for row in page
        ]
        return {
            "page": page,
            "rows": rows,
            "known_total": page.known_total,
            "headers": [column.label for column in check.columns],
        }

    def duplicates_context(self) -> dict[str, Any]:
        reasons = dict(DuplicateCandidate.Reason.choices)
        reason = self.request.GET.get("reason", "")
        pairs = self.check.found().select_related("customer", "other")
        if reason in reasons:
            pairs = pairs.filter(reason=reason)
        else:
            reason = ""
        page = paginate_without_count(
            pairs, self.request.GET.get("page"), self.per_page
        )
        ids = list(
            dict.fromkeys(
                pk for pair in page for pk in (pair.customer_id, pair.other_id)
            )
        )
        self.customer_ids = ids
        cities = _default_cities(ids)
        orders = _order_counts(ids)
        # Counted from the pairs alone (an index-only count): a pair whose
        # record was merged or erased since the scan still counts until the next.
        per_reason = dict(
            DuplicateCandidate.objects.order_by()
            .values_list("reason")
            .annotate(count=Count("pk"))
        )
        exact = {str(value) for value in DuplicateCandidate.EXACT_REASONS}
        return {
            "page": page,
            "known_total": page.known_total,
            "reason": reason,
            "tabs": [
                {"code": code, "label": reasons[code], "count": per_reason.get(code, 0)}
                for code in sorted(reasons)  # the order of the list
            ],
            "total": sum(per_reason.values()),
            "pairs": [
                {
                    "pair": pair,
                    "sides": [
                        _side(pair.customer, cities, orders),
                        _side(pair.other, cities, orders),
                    ],
                    "compare_url": _url(
                        "merges:compare", pair.customer_id, pair.other_id
                    ),
                }
                for pair in page
            ],
            "batch_urls": {
                code: _url("merges:batch", query={"reason": code})
                for code in reasons
                if code in exact
            },
        }


def _default_cities(customer_ids: list[int]) -> dict[int, str]:
    """Customer id -> town of their default shipping (else billing) address."""
    cities: dict[int, dict[str, str]] = {}
    for customer_id, kind, city in Address.objects.filter(
        customer_id__in=customer_ids, is_default=True
    ).values_list("customer_id", "kind", "city"):
        cities.setdefault(customer_id, {})[kind] = city
    return {
        pk: kinds.get(Address.Kind.SHIPPING) or kinds.get(Address.Kind.BILLING, "")
        for pk, kinds in cities.items()
    }


def _order_counts(customer_ids: list[int]) -> dict[int, int]:
    """Customer id -> orders (orders sit right of customers: reached by label)."""
    order_model = apps.get_model("orders", "Order")
    return dict(
        order_model.objects.filter(customer_id__in=customer_ids)
        .order_by()
        .values_list("customer_id")
        .annotate(count=Count("pk"))
    )


def _side(
    customer: Customer, cities: dict[int, str], orders: dict[int, int]
) -> dict[str, Any]:
    return {
        "customer": customer,
        "city": cities.get(customer.pk, ""),
        "orders": orders.get(customer.pk, 0),
    }


class QualityExportView(QualityCheckMixin, View):
    """A check's whole list as CSV, logged to the access log a chunk at a time."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        check = self.get_check()
        if not check.exportable_by(request.user):
            raise PermissionDenied
        queryset = check.found()
        if check.code == "duplicates":
            queryset = queryset.select_related("customer", "other")
        filename = f"{check.code}-{timezone.localdate():%Y-%m-%d}.csv"
        response = StreamingHttpResponse(
            csv_lines(
                [column.name for column in check.columns],
                _export_cells(check, queryset, request=request),
            ),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = content_disposition_header(True, filename)
        # Personal data: no copy in a browser's or a proxy's cache.
        response["Cache-Control"] = "no-store"
        return response


def _export_cells(
    check: QualityCheck, queryset: Any, *, request: HttpRequest
) -> Iterator[list[str]]:
    """The rows' cells; each chunk's customers are logged before it leaves."""
    chunk: list[Any] = []

    def flush() -> Iterator[list[str]]:
        personal_data_accessed_send(
            sender=QualityExportView,
            request=request,
            customer_ids=dict.fromkeys(
                pk for row in chunk for pk in check.customer_ids(row)
            ),
            action="export",
        )
        for row in chunk:
            yield [export_cell(column.value(row)) for column in check.columns]

    for row in queryset.iterator(chunk_size=CHUNK_SIZE):
        chunk.append(row)
        if len(chunk) == CHUNK_SIZE:
            yield from flush()
            chunk = []
    if chunk:
        yield from flush()
