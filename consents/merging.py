"""What a merge of duplicate customers does with consents.

The ledgers cannot move (they are append-only, enforced in the database) and both
stay as proof. The survivor's ledger gets, per purpose, the merged-away record's
newest entry when it is newer than the survivor's own: so a withdrawal on either
side wins over an older grant, a grant is carried over only when no later
withdrawal exists on either side, and at the same moment a withdrawal wins. Each
carried entry is a new ``merge`` entry pointing at the original (its evidence),
with the original's text and time. A marketing grant for a suppressed address is
not carried (only the person may consent again).

The undo puts the survivor's state back where the merge changed it and the person
has not spoken since: a ``merge_undo`` entry restating the entry it had before (a
withdrawal where it had none). Pending double opt-ins and data subject requests
move; the access log stays.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from consents.models import (
    AccessLog,
    ConsentEvent,
    ConsentState,
    DataSubjectRequest,
    DoubleOptIn,
)
from consents.services import consent_record
from customers.merging import (
    Relation,
    customers_merge_undone,
    customers_merged,
    merge_relations_register,
)

Action = ConsentEvent.Action
Source = ConsentEvent.Source

merge_relations_register(
    Relation(ConsentEvent, action="keep"),
    Relation(ConsentState, action="keep"),
    Relation(AccessLog, action="keep"),
    Relation(DoubleOptIn),
    Relation(DataSubjectRequest),
)


def supersedes(entry: ConsentEvent, other: ConsentEvent) -> bool:
    """Whether ``entry`` wins over ``other``: later, or a withdrawal at once."""
    if entry.occurred_at != other.occurred_at:
        return entry.occurred_at > other.occurred_at
    return entry.action == Action.WITHDRAW and other.action == Action.GRANT


def ledgers_merge(*, merge: Any, **kwargs: Any) -> None:
    """customers_merged: carry the merged-away record's newer entries over."""
    survivor, merged = merge.survivor, merge.merged
    own = {
        state.purpose_id: state.event
        for state in ConsentState.objects.filter(customer=survivor).select_related(
            "event"
        )
    }
    added = []
    theirs = (
        ConsentState.objects.filter(customer=merged)
        .select_related("event__text", "event__store", "purpose")
        .order_by("purpose_id")
    )
    for state in theirs:
        entry, mine = state.event, own.get(state.purpose_id)
        if mine is not None and not supersedes(entry, mine):
            continue
        try:
            event, _created = consent_record(
                customer=survivor,
                purpose=state.purpose,
                action=entry.action,
                source=Source.MERGE,
                text=entry.text,
                occurred_at=entry.occurred_at,
                store=entry.store,
                evidence={
                    "merge": merge.pk,
                    "merged_customer": merged.pk,
                    "entry": entry.pk,
                },
            )
        except ValidationError:
            continue  # a grant for a suppressed address: not carried
        added.append(
            {
                "event": event.pk,
                "purpose": state.purpose_id,
                "previous": mine.pk if mine is not None else None,
            }
        )
    merge.consent_events = added
    merge.save(update_fields=["consent_events"])


def ledgers_unmerge(*, merge: Any, **kwargs: Any) -> None:
    """customers_merge_undone: the survivor's consent state back as it was."""
    now = timezone.now()
    for added in merge.consent_events:
        state = (
            ConsentState.objects.filter(
                customer=merge.survivor, purpose_id=added["purpose"]
            )
            .select_related("purpose")
            .first()
        )
        if state is None or state.event_id != added["event"]:
            continue  # the person spoke since: their word stands
        previous = (
            ConsentEvent.objects.select_related("text", "store")
            .filter(pk=added["previous"])
            .first()
        )
        if previous is None and state.granted is False:
            continue  # not granted before, not granted now
        try:
            consent_record(
                customer=merge.survivor,
                purpose=state.purpose,
                action=previous.action if previous else Action.WITHDRAW,
                source=Source.MERGE_UNDO,
                text=previous.text if previous else None,
                occurred_at=now,
                store=previous.store if previous else None,
                evidence={
                    "merge": merge.pk,
                    "undoes": added["event"],
                    "restates": added["previous"],
                },
            )
        except ValidationError:
            continue  # a grant for a suppressed address: left withdrawn


customers_merged.connect(ledgers_merge, dispatch_uid="consents_ledgers_merge")
customers_merge_undone.connect(ledgers_unmerge, dispatch_uid="consents_ledgers_unmerge")
