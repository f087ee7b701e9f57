"""Forms of the customers app's staff pages: the shape of the input, nothing more.

A form here checks that each value is of the right kind (a known choice, a
number, an existing order); the business rules (what a complaint needs, which
order may be linked, which status may follow which) are the services' own
(``customers.interactions``). A view hands the cleaned values to the service and
turns its ``ValidationError`` into the form's errors with :func:`add_service_errors`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import formats
from django.utils.translation import gettext_lazy as _

from customers.interactions import ALLOWED_TRANSITIONS, BODY_LIMIT, assignable_staff
from customers.models import Customer, Interaction, Store

Kind = Interaction.Kind
Status = Interaction.Status

#: The customer's newest orders the quick log offers to link.
RECENT_ORDERS = 20


def add_service_errors(form: forms.Form, error: ValidationError) -> None:
    """Show a service's ValidationError on the form: by field where it has one."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for name, errors in error.error_dict.items():
        form.add_error(name if name in form.fields else None, errors)


class _DryRun(Exception):  # noqa: N818 - not an error: undoes a trial service call
    pass


def add_service_dry_run_errors(form: forms.BaseForm, call: Callable[[], Any]) -> None:
    """Give ``form`` the errors the service ``call`` raises, writing nothing.

    The service is the only judge of its rules, so the form asks it: ``call`` runs
    in a savepoint that is always rolled back. The caller then makes the same call
    for real (the admin's ``save_model``, in the same request transaction).
    """
    try:
        with transaction.atomic():
            call()
            raise _DryRun
    except _DryRun:
        pass
    except ValidationError as error:
        add_service_errors(form, error)


def order_label(order: Any) -> str:
    """An order as a choice: number, date and total."""
    placed = formats.date_format(order.placed_at, "SHORT_DATE_FORMAT")
    return f"{order.number} · {placed} · {order.total} {order.currency}"


class QuickLogForm(forms.Form):
    """Log a call, an email, a complaint… with one customer, from the keyboard."""

    kind = forms.ChoiceField(
        label=_("Kind"), choices=Kind.choices, initial=Kind.CONVERSATION
    )
    channel = forms.ChoiceField(
        label=_("Channel"),
        choices=Interaction.Channel.choices,
        initial=Interaction.Channel.PHONE,
    )
    direction = forms.ChoiceField(
        label=_("Direction"),
        choices=Interaction.Direction.choices,
        initial=Interaction.Direction.INBOUND,
    )
    subject = forms.CharField(
        label=_("Subject"),
        required=False,
        max_length=Interaction._meta.get_field("subject").max_length,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    body = forms.CharField(
        label=_("What was said"),
        required=False,
        max_length=BODY_LIMIT,
        strip=False,  # the service trims; the text is kept as typed otherwise
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    order = forms.ModelChoiceField(
        label=_("Related order"),
        required=False,
        queryset=Customer.objects.none(),  # orders, set in __init__
        empty_label=_("— none —"),
    )
    rating = forms.IntegerField(
        label=_("Rating"),
        required=False,
        min_value=0,
        max_value=10,
        help_text=_("Reviews and surveys: 1–5 stars or an NPS score 0–10."),
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )
    rating_scale = forms.ChoiceField(
        label=_("Scale"),
        required=False,
        choices=Interaction.RatingScale.choices,
        initial=Interaction.RatingScale.STARS,
    )

    def __init__(
        self,
        *args: Any,
        customer: Customer,
        recent_orders: Iterable[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("auto_id", f"ql{customer.pk}_%s")
        super().__init__(*args, **kwargs)
        self.customer = customer
        order_field = self.fields["order"]
        # Any order may be given (the service says whose it is); the choices are
        # the customer's newest, already loaded by the page when it has them.
        order_field.queryset = apps.get_model("orders", "Order").objects.all()
        if recent_orders is None:
            recent_orders = customer.orders.order_by("-placed_at", "-pk")[
                :RECENT_ORDERS
            ]
        order_field.choices = [
            ("", order_field.empty_label),
            *((order.pk, order_label(order)) for order in recent_orders),
        ]

    def service_kwargs(self) -> dict[str, Any]:
        """The cleaned values as ``interaction_log`` takes them."""
        data = self.cleaned_data
        rating = data.get("rating")
        order = data.get("order")
        return {
            "kind": data["kind"],
            "channel": data["channel"],
            "direction": data["direction"],
            "subject": data.get("subject") or "",
            "body": data.get("body") or "",
            "order": order,
            "rating": rating,
            # A scale means something only with a rating.
            "rating_scale": (data.get("rating_scale") or "")
            if rating is not None
            else "",
            "store": _store_for(self.customer, order),
        }


def _store_for(customer: Customer, order: Any) -> Store | None:
    """The store an interaction is about: its order's, else the customer's only one."""
    if order is not None:
        return order.store
    identities = list(customer.identities.select_related("store")[:2])
    return identities[0].store if len(identities) == 1 else None


# --- The complaints queue and the interaction page ------------------------------


def user_label(user: Any) -> str:
    full_name = user.get_full_name()
    return f"{full_name} ({user.get_username()})" if full_name else user.get_username()


class StaffChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return user_label(obj)


class QueueFilterForm(forms.Form):
    """The complaints queue's filters, from the query string."""

    STATUS_PENDING = "pending"
    STATUS_ALL = "all"
    STATUS_CLOSED = "closed"
    ASSIGNEE_ME = "me"
    ASSIGNEE_NONE = "none"

    status = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[
            (STATUS_PENDING, _("Pending (open or waiting)")),
            (STATUS_CLOSED, _("Closed (resolved or rejected)")),
            (STATUS_ALL, _("All")),
        ],
    )
    kind = forms.ChoiceField(
        label=_("Kind"),
        required=False,
        choices=[
            ("", _("Complaints and returns")),
            (Kind.COMPLAINT, Kind.COMPLAINT.label),
            (Kind.RETURN, Kind.RETURN.label),
        ],
    )
    assignee = forms.ChoiceField(label=_("Assignee"), required=False)
    store = forms.ModelChoiceField(
        label=_("Store"),
        required=False,
        queryset=Store.objects.order_by("name"),
        empty_label=_("All stores"),
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.staff = {str(u.pk): u for u in assignable_staff()}
        self.fields["assignee"].choices = [
            ("", _("Anyone")),
            (self.ASSIGNEE_ME, _("Me")),
            (self.ASSIGNEE_NONE, _("Nobody yet")),
            *((pk, user_label(u)) for pk, u in self.staff.items()),
        ]

    def filter(self, queryset: QuerySet) -> QuerySet:
        """``queryset`` (complaints and returns) narrowed by the valid filters."""
        data = self.cleaned_data if self.is_bound else {}
        status = data.get("status") or self.STATUS_PENDING
        if status == self.STATUS_PENDING:
            queryset = queryset.pending()
        elif status == self.STATUS_CLOSED:
            queryset = queryset.filter(status__in=[Status.RESOLVED, Status.REJECTED])
        if data.get("kind"):
            queryset = queryset.filter(kind=data["kind"])
        assignee = data.get("assignee")
        if assignee == self.ASSIGNEE_ME:
            queryset = queryset.filter(assignee=self.user)
        elif assignee == self.ASSIGNEE_NONE:
            queryset = queryset.filter(assignee__isnull=True)
        elif assignee:
            queryset = queryset.filter(assignee_id=int(assignee))
        if data.get("store"):
            queryset = queryset.filter(store=data["store"])
        return queryset

    @property
    def chosen_status(self) -> str:
        data = self.cleaned_data if self.is_bound else {}
        return data.get("status") or self.STATUS_PENDING

    @property
    def narrowed(self) -> bool:
        data = self.cleaned_data if self.is_bound else {}
        return (
            any(data.get(name) for name in ("kind", "assignee", "store"))
            or self.chosen_status != self.STATUS_PENDING
        )


class StatusChangeForm(forms.Form):
    """Move a complaint or return on: only the statuses its current one allows."""

    status = forms.ChoiceField(label=_("New status"))
    note = forms.CharField(
        label=_("Note"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Optional: why, or what was agreed with the customer."),
    )

    def __init__(self, *args: Any, interaction: Interaction, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", "status")
        super().__init__(*args, **kwargs)
        allowed = ALLOWED_TRANSITIONS.get(interaction.status, frozenset())
        self.fields["status"].choices = [
            (value, label) for value, label in Status.choices if value in allowed
        ]


class AssignForm(forms.Form):
    assignee = StaffChoiceField(
        label=_("Assignee"),
        required=False,
        queryset=get_user_model().objects.none(),
        empty_label=_("— nobody —"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", "assign")
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = assignable_staff()


class AttachmentForm(forms.Form):
    file = forms.FileField(
        label=_("File"),
        widget=forms.FileInput(
            attrs={"accept": ".pdf,.png,.jpg,.jpeg,.gif,.webp,.txt"}
        ),
        help_text=_("A PDF, a photo (JPEG, PNG, GIF, WebP) or a text file."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", "attach")
        super().__init__(*args, **kwargs)
