"""Forms of the segments staff pages: the shape of the input, nothing more.

The rules of a segment (what makes a valid tree, a valid name, which kind may
change) are ``segments.services``' and ``segments.rules``'; a view hands the
cleaned values to the service and shows its ``ValidationError`` on the form with
``customers.forms.add_service_errors``.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from customers.models import Store
from segments.models import Segment


def rules_from_text(text: str | None) -> Any:
    """The rule tree posted by the builder (JSON text); raises ValidationError."""
    text = (text or "").strip()
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        raise forms.ValidationError(
            _("The rules could not be read (not valid JSON)."), code="invalid"
        ) from None


class SegmentForm(forms.Form):
    """A segment's definition; the kind is chosen once, when it is created."""

    name = forms.CharField(
        label=_("Name"),
        max_length=Segment._meta.get_field("name").max_length,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    description = forms.CharField(
        label=_("Description"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    kind = forms.ChoiceField(
        label=_("Kind"),
        choices=Segment.Kind.choices,
        initial=Segment.Kind.DYNAMIC,
        widget=forms.RadioSelect,
        help_text=_("Fixed once the segment is created."),
    )
    schedule = forms.ChoiceField(
        label=pgettext_lazy("segment schedule", "Rebuilt"),
        choices=Segment.Schedule.choices,
        initial=Segment.Schedule.DAILY,
        help_text=_("How often a dynamic segment's members are selected again."),
    )
    is_active = forms.BooleanField(
        label=_("Active"),
        required=False,
        initial=True,
        help_text=_("An inactive segment is not rebuilt on schedule."),
    )
    # The rule tree as JSON, kept in sync by static/js/segment_builder.js.
    rules = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, segment: Segment | None = None, **kwargs: Any):
        if segment is not None:
            kwargs.setdefault(
                "initial",
                {
                    "name": segment.name,
                    "description": segment.description,
                    "kind": segment.kind,
                    "schedule": segment.schedule,
                    "is_active": segment.is_active,
                    "rules": json.dumps(segment.rules or {}),
                },
            )
        super().__init__(*args, **kwargs)
        self.segment = segment
        if segment is not None:
            self.fields["kind"].disabled = True
        else:
            del self.fields["is_active"]

    def clean_rules(self) -> Any:
        return rules_from_text(self.cleaned_data.get("rules"))

    @property
    def chosen_kind(self) -> str:
        """The kind the form is for: the segment's, else the posted or initial one."""
        if self.segment is not None:
            return self.segment.kind
        value = self["kind"].value()
        return value if value in Segment.Kind.values else Segment.Kind.DYNAMIC

    @property
    def rules_json(self) -> str:
        """The rule tree for the builder to start from (what was posted, if any)."""
        value = self["rules"].value()
        if isinstance(value, str):
            return value
        return json.dumps(value or {})

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        values = {
            "name": data["name"],
            "description": data["description"],
            "schedule": data["schedule"],
            "rules": data["rules"],
        }
        if self.segment is None:
            values["kind"] = data["kind"]
        else:
            values["is_active"] = data["is_active"]
        return values


class MembersPasteForm(forms.Form):
    text = forms.CharField(
        label=_("Emails or phone numbers"),
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text=_("One per line, or separated by commas, semicolons or spaces."),
    )


class RfmStoreForm(forms.Form):
    """The RFM page's store: all stores together unless one is chosen."""

    store = forms.ModelChoiceField(
        label=_("Store"),
        queryset=Store.objects.order_by("name"),
        required=False,
        empty_label=_("All stores"),
    )

    @property
    def chosen_store(self) -> Store | None:
        if self.is_bound and self.is_valid():
            return self.cleaned_data["store"]
        return None
