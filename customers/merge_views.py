"""The merge pages under /merges/: compare and merge, batches, the audit trail.

Compare two records and merge them, merge exact duplicates in a batch, and the
merges' audit trail with its undo.

The work is ``customers.merging``'s; these views are forms over it. Every page
that shows a person's data (both records side by side, a merged record's
snapshot) is recorded in the access log.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.core.validators import validate_email
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.timezone import localtime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.generic import TemplateView, View

from customers.merging import (
    CHOSEN_FIELDS,
    customer_merge_undo,
    customers_merge,
    customers_merge_batch,
    exact_duplicate_groups,
    merge_error,
    merge_plan,
    merge_relations,
    merge_undo_error,
)
from customers.models import Customer, CustomerMerge, DuplicateCandidate
from customers.signals import personal_data_accessed_send
from customers.views import StaffPageMixin

# Groups a batch shows and merges at once: a page a person can check.
BATCH_SIZE = 100
MERGES_PER_PAGE = 50


def _undo_link(merge: CustomerMerge) -> str:
    return format_html(
        '<a href="{}">{}</a>',
        reverse("merges:detail", args=[merge.pk]),
        _("Undo is possible until %(date)s.")
        % {"date": date_format(localtime(merge.undo_until), "DATETIME_FORMAT")},
    )


class MergeForm(forms.Form):
    """Which value survives, for each field where the two records differ."""

    def __init__(self, *args: Any, plan: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plan = plan
        for choice in plan.fields:
            if not choice.differs:
                continue
            self.fields[choice.name] = forms.ChoiceField(
                label=choice.label,
                choices=[
                    ("survivor", _display(choice.survivor_value)),
                    ("merged", _display(choice.merged_value)),
                ],
                widget=forms.RadioSelect,
                initial="merged" if choice.take_merged else "survivor",
                # Not sent (a client without the radios): the default choice.
                required=False,
            )

    def taken(self) -> set[str]:
        return {
            name
            for name, value in self.cleaned_data.items()
            if name in CHOSEN_FIELDS
            and (value or self.fields[name].initial) == "merged"
        }

    def rows(self) -> list[tuple[Any, Any]]:
        """(field choice, bound field or None) in the page's order."""
        return [
            (choice, self[choice.name] if choice.name in self.fields else None)
            for choice in self.plan.fields
        ]


def _display(value: Any) -> str:
    if value in (None, "", [], {}):
        return "—"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


class MergeStartView(StaffPageMixin, View):
    """``?a=<id>&b=<id or email>``: the compare page of the two, or back with why."""

    permission_required = "customers.merge_customer"

    def get(self, request: HttpRequest) -> HttpResponse:
        first = get_object_or_404(Customer, pk=_int(request.GET.get("a")))
        wanted = (request.GET.get("b") or "").strip().lstrip("#")
        other = None
        if wanted.isdigit():
            other = Customer.objects.filter(pk=int(wanted)).first()
        elif wanted:
            try:
                validate_email(wanted)
            except ValidationError:
                pass
            else:
                other = Customer.objects.by_email(wanted).first()
        if other is None or other.pk == first.pk:
            messages.error(
                request,
                _("No other record %(wanted)s: give its number or email.")
                % {"wanted": wanted or "—"},
            )
            return HttpResponseRedirect(
                reverse("customers:detail", args=[first.pk]) + "#merges"
            )
        return HttpResponseRedirect(
            reverse("merges:compare", args=[first.pk, other.pk])
        )


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


class MergeCompareView(StaffPageMixin, View):
    """Both records side by side: choose the values that survive, then merge.

    ``/merges/compare/<survivor>/<merged>/``: the first record survives; the page
    links to the same page the other way round.
    """

    permission_required = "customers.merge_customer"
    template_name = "customers/merges/compare.html"

    def records(self, survivor_id: int, merged_id: int) -> tuple[Customer, Customer]:
        survivor = get_object_or_404(Customer, pk=survivor_id)
        merged = get_object_or_404(Customer, pk=merged_id)
        return survivor, merged

    def get(self, request: HttpRequest, survivor: int, merged: int) -> HttpResponse:
        first, second = self.records(survivor, merged)
        problem = merge_error(first, second)
        plan = merge_plan(survivor=first, merged=second)
        return self.render(request, MergeForm(plan=plan), plan, problem)

    def post(self, request: HttpRequest, survivor: int, merged: int) -> HttpResponse:
        first, second = self.records(survivor, merged)
        plan = merge_plan(survivor=first, merged=second)
        form = MergeForm(request.POST, plan=plan)
        if form.is_valid():
            try:
                merge = customers_merge(
                    survivor=first,
                    merged=second,
                    take=form.taken(),
                    actor=request.user,
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(
                    request,
                    format_html(
                        "{} {}",
                        _("Record #%(merged)s was merged into this one.")
                        % {"merged": merge.merged_id},
                        _undo_link(merge),
                    ),
                )
                return HttpResponseRedirect(
                    reverse("customers:detail", args=[first.pk])
                )
        return self.render(request, form, plan, merge_error(first, second), status=400)

    def render(
        self,
        request: HttpRequest,
        form: MergeForm,
        plan: Any,
        problem: str | None,
        status: int = 200,
    ) -> HttpResponse:
        survivor, merged = plan.survivor, plan.merged
        personal_data_accessed_send(
            sender=type(self),
            request=request,
            customer_ids=[survivor.pk, merged.pk],
            action="view",
            purpose=_("merge of duplicates"),
        )
        reasons = [
            pair.get_reason_display()
            for pair in DuplicateCandidate.objects.filter(
                customer_id=min(survivor.pk, merged.pk),
                other_id=max(survivor.pk, merged.pk),
            )
        ]
        return render(
            request,
            self.template_name,
            {
                "form": form,
                "plan": plan,
                "survivor": survivor,
                "merged": merged,
                "problem": problem,
                "reasons": reasons,
                "orders": {
                    "survivor": survivor.orders.count(),
                    "merged": merged.orders.count(),
                },
                "undo_days": CustomerMerge.UNDO_DAYS,
            },
            status=status,
        )


class MergeBatchView(StaffPageMixin, TemplateView):
    """Exact duplicates (same email or phone), merged group by group after a preview.

    Each group's survivor is the record with the most orders, then the oldest;
    fields empty on it are filled from the others. Staff untick the groups they
    doubt; at most ``BATCH_SIZE`` groups a time.
    """

    permission_required = "customers.merge_customer"
    template_name = "customers/merges/batch.html"
    REASONS = {
        "email": gettext_lazy("Same email"),
        "phone": gettext_lazy("Same phone"),
    }

    def reason(self) -> str:
        reason = self.request.GET.get("reason") or self.request.POST.get("reason")
        return reason if reason in self.REASONS else "email"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        reason = self.reason()
        groups, total = exact_duplicate_groups(reason=reason, limit=BATCH_SIZE)
        personal_data_accessed_send(
            sender=type(self),
            request=self.request,
            customer_ids=[
                c.pk for group in groups for c in (group.survivor, *group.others)
            ],
            action="view",
            purpose=_("merge of duplicates"),
        )
        context.update(
            groups=groups,
            total=total,
            reason=reason,
            reasons=self.REASONS,
            batch_size=BATCH_SIZE,
            undo_days=CustomerMerge.UNDO_DAYS,
        )
        return context

    def post(self, request: HttpRequest) -> HttpResponse:
        chosen = []
        for value in request.POST.getlist("group")[:BATCH_SIZE]:
            ids = [int(part) for part in value.split("-") if part.isdigit()]
            if len(ids) >= 2:
                chosen.append((ids[0], ids[1:]))
        if not chosen:
            messages.error(request, _("Choose at least one group to merge."))
        else:
            result = customers_merge_batch(groups=chosen, actor=request.user)
            messages.success(
                request,
                ngettext(
                    "%(count)d record merged, in %(groups)d groups.",
                    "%(count)d records merged, in %(groups)d groups.",
                    result.merged,
                )
                % {"count": result.merged, "groups": result.groups},
            )
            for error in result.errors[:20]:
                messages.warning(request, error)
        return HttpResponseRedirect(f"{reverse('merges:batch')}?reason={self.reason()}")


class MergeListView(StaffPageMixin, TemplateView):
    """Every merge, newest first: the audit trail, with the way to undo."""

    permission_required = "customers.view_customermerge"
    template_name = "customers/merges/list.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        merges = CustomerMerge.objects.select_related(
            "survivor", "merged_by", "undone_by"
        ).order_by("-merged_at", "-pk")
        page = Paginator(merges, MERGES_PER_PAGE).get_page(self.request.GET.get("page"))
        context.update(page=page, merges=page.object_list)
        return context


class MergeDetailView(StaffPageMixin, TemplateView):
    """One merge: what the merged-away record was, what changed and moved; undo."""

    permission_required = "customers.view_customermerge"
    template_name = "customers/merges/detail.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        merge = get_object_or_404(
            CustomerMerge.objects.select_related(
                "survivor", "merged", "merged_by", "undone_by"
            ),
            pk=kwargs["pk"],
        )
        personal_data_accessed_send(
            sender=type(self),
            request=self.request,
            customer_ids=[merge.survivor_id, merge.merged_id],
            action="view",
            purpose=_("merge record"),
        )
        context.update(
            merge=merge,
            snapshot=_snapshot_rows(merge.merged_before),
            changed=[
                (
                    str(Customer._meta.get_field(name).verbose_name),
                    _display(change["before"]),
                    _display(change["after"]),
                )
                for name, change in merge.changed.items()
            ],
            moved=_moved_rows(merge.moved),
            removed=sum(len(rows) for rows in merge.removed.values()),
            consent_entries=len(merge.consent_events),
            undo_error=merge_undo_error(merge),
            can_undo=self.request.user.has_perm("customers.undo_customermerge"),
        )
        return context


def _snapshot_rows(snapshot: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for name in (*CHOSEN_FIELDS, "note", "status", "created_at"):
        if name in snapshot:
            label = str(Customer._meta.get_field(name).verbose_name)
            rows.append((label, _display(snapshot[name])))
    if snapshot.get("tags"):
        rows.append((_("tags"), ", ".join(snapshot["tags"])))
    return rows


def _moved_rows(moved: dict[str, list[int]]) -> list[tuple[str, int]]:
    labels = {relation.key: relation.label for relation in merge_relations()}
    return [
        (labels[key], len(ids)) for key, ids in moved.items() if key in labels and ids
    ]


class MergeUndoView(StaffPageMixin, View):
    """POST: undo the merge, or back to it with why not."""

    permission_required = "customers.undo_customermerge"

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        merge = get_object_or_404(CustomerMerge, pk=pk)
        try:
            result = customer_merge_undo(merge=merge, actor=request.user)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            return HttpResponseRedirect(reverse("merges:detail", args=[pk]))
        messages.success(
            request,
            _("The merge was undone: records #%(survivor)s and #%(merged)s are back.")
            % {"survivor": merge.survivor_id, "merged": merge.merged_id},
        )
        if result.kept_fields:
            labels = [
                str(Customer._meta.get_field(name).verbose_name)
                for name in result.kept_fields
            ]
            messages.warning(
                request,
                _("Changed since the merge, so kept as they are now: %(fields)s.")
                % {"fields": ", ".join(labels)},
            )
        if result.rows_not_back:
            messages.warning(
                request,
                ngettext(
                    "%(count)d row had moved on since the merge and stayed where "
                    "it is.",
                    "%(count)d rows had moved on since the merge and stayed where "
                    "they are.",
                    result.rows_not_back,
                )
                % {"count": result.rows_not_back},
            )
        return HttpResponseRedirect(reverse("merges:detail", args=[pk]))
