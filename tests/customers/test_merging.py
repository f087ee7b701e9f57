"""Merging duplicate customers: everything moves, consent is merged restrictively,
and the undo restores both records as they were."""

import datetime as dt

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.utils import timezone

from campaigns.models import Delivery
from consents.erasure import customer_erase
from consents.models import AccessLog, ConsentEvent, ConsentState, DataSubjectRequest
from consents.services import consent_record, consent_text_current
from customers.merging import (
    CHOSEN_FIELDS,
    customer_merge_undo,
    customers_merge,
    customers_merge_batch,
    exact_duplicate_groups,
    merge_plan,
    merge_relations,
    merge_undo_error,
)
from customers.models import (
    Address,
    Customer,
    CustomerMerge,
    DuplicateCandidate,
    Event,
    Interaction,
)
from segments.models import CustomerMetrics, Segment, SegmentMembership
from segments.services import segment_create, segment_members_add
from tests.factories.campaigns import CampaignFactory, DeliveryFactory
from tests.factories.consents import DataSubjectRequestFactory
from tests.factories.customers import (
    AddressFactory,
    CustomerFactory,
    CustomerIdentityFactory,
    InteractionFactory,
    StoreFactory,
    TagFactory,
)
from tests.factories.orders import OrderFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def days_ago(days: int) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


def record(customer, purpose, action, when, texts):
    event, _ = consent_record(
        customer=customer,
        purpose=purpose,
        action=action,
        text=texts[purpose] if action == "grant" else None,
        source=ConsentEvent.Source.NEWSLETTER_FORM,
        occurred_at=when,
    )
    return event


@pytest.fixture
def texts(purposes):
    return {
        code: consent_text_current(purpose=purpose, language="pl")
        for code, purpose in purposes.items()
    }


def states(customer) -> dict[str, bool]:
    return dict(
        ConsentState.objects.filter(customer=customer).values_list(
            "purpose__code", "granted"
        )
    )


def granted(customer) -> set[str]:
    """The purposes the customer consents to now (what a campaign reads)."""
    return {code for code, yes in states(customer).items() if yes}


def ledger(customer) -> list[int]:
    return sorted(
        ConsentEvent.objects.filter(customer=customer).values_list("pk", flat=True)
    )


@pytest.fixture
def pair(texts, make_staff):
    """Two records of one person, each with a history of its own."""
    store = StoreFactory(code="main")
    survivor = CustomerFactory(
        first_name="Anna",
        last_name="Nowak",
        email="anna.nowak@example.pl",
        phone="",
        company="",
        note="VIP",
    )
    merged = CustomerFactory(
        first_name="Ania",
        last_name="Nowak",
        email="a.nowak@gmail.com",
        phone="+48601234567",
        company="Nowak sp. z o.o.",
        note="Prefers SMS",
        marketing_objection_at=days_ago(3),
    )
    shared, own = TagFactory(name="stała"), TagFactory(name="hurt")
    survivor.tags.add(shared)
    merged.tags.add(shared, own)
    AddressFactory(customer=survivor, postcode="00-001", city="Warszawa")
    AddressFactory(customer=merged, postcode="00-002", city="Warszawa")
    CustomerIdentityFactory(customer=survivor, store=store, external_id="S-1")
    CustomerIdentityFactory(customer=merged, store=store, external_id="M-1")
    for days in (40, 10):
        OrderFactory(customer=survivor, store=store, placed_at=days_ago(days))
    for days in (300, 100, 5):
        OrderFactory(customer=merged, store=store, placed_at=days_ago(days))
    InteractionFactory(customer=merged)
    Event.objects.create(
        store=store,
        customer=merged,
        kind="page_view",
        occurred_at=days_ago(1),
        received_at=NOW,
    )
    DataSubjectRequestFactory(
        customer=merged, due_on=(NOW + dt.timedelta(days=30)).date()
    )
    # Marketing: the survivor granted long ago, the other record withdrew since.
    record(survivor, "email_marketing", "grant", days_ago(200), texts)
    record(merged, "email_marketing", "grant", days_ago(300), texts)
    record(merged, "email_marketing", "withdraw", days_ago(20), texts)
    # SMS: the other record granted lately; the survivor never said anything.
    record(merged, "sms_marketing", "grant", days_ago(15), texts)
    # Profiling: the survivor withdrew lately; the other record's grant is older.
    record(merged, "profiling", "grant", days_ago(60), texts)
    record(survivor, "profiling", "grant", days_ago(90), texts)
    record(survivor, "profiling", "withdraw", days_ago(30), texts)
    AccessLog.objects.create(customer=merged, action=AccessLog.Action.VIEW)
    return survivor, merged, make_staff("Manager")


def counts(customer) -> dict[str, int]:
    return {
        "orders": customer.orders.count(),
        "interactions": Interaction.objects.filter(customer=customer).count(),
        "events": Event.objects.filter(customer=customer).count(),
        "identities": customer.identities.count(),
        "addresses": customer.addresses.count(),
        "requests": DataSubjectRequest.objects.filter(customer=customer).count(),
        "ledger": ConsentEvent.objects.filter(customer=customer).count(),
    }


def profile(customer) -> dict:
    customer.refresh_from_db()
    return {
        name: getattr(customer, name)
        for name in (*CHOSEN_FIELDS, "note", "status", "marketing_objection_at")
    } | {"tags": sorted(customer.tags.values_list("name", flat=True))}


def test_merge_moves_everything_and_keeps_both_ledgers(pair):
    survivor, merged, manager = pair
    before = {"survivor": counts(survivor), "merged": counts(merged)}
    merged_ledger = ledger(merged)

    merge = customers_merge(
        survivor=survivor, merged=merged, take={"phone", "company"}, actor=manager
    )

    after = counts(survivor)
    for kind in ("orders", "interactions", "events", "identities", "addresses"):
        assert after[kind] == before["survivor"][kind] + before["merged"][kind]
    assert after["requests"] == 1
    # The other record's ledger stays whole, as proof; nothing else is left on it.
    assert ledger(merged) == merged_ledger
    assert counts(merged) | {"ledger": 0} == dict.fromkeys(after, 0)
    survivor.refresh_from_db()
    merged.refresh_from_db()
    assert survivor.first_name == "Anna"  # not chosen: the survivor's stays
    assert survivor.phone == "+48601234567"
    assert survivor.company == "Nowak sp. z o.o."
    assert survivor.note == "VIP\n\nPrefers SMS"
    assert survivor.marketing_objection_at == merged.marketing_objection_at
    assert sorted(survivor.tags.values_list("name", flat=True)) == ["hurt", "stała"]
    # One default address per kind: the moved one became a plain address.
    assert survivor.addresses.filter(is_default=True).count() == 1
    assert merged.merged_into == survivor
    assert (merged.email, merged.phone, merged.first_name) == (None, "", "")
    assert merge.merged_before["email"] == "a.nowak@gmail.com"
    assert merge.merged_before["tags"] == ["hurt", "stała"]
    assert AccessLog.objects.filter(customer=merged).count() == 1


def test_merge_recomputes_the_survivors_metrics(pair):
    survivor, merged, manager = pair
    from segments.metrics import metrics_recompute

    metrics_recompute()
    assert CustomerMetrics.objects.get(customer=survivor, store=None).orders_count == 2

    customers_merge(survivor=survivor, merged=merged, actor=manager)

    overall = CustomerMetrics.objects.get(customer=survivor, store=None)
    assert overall.orders_count == 5
    assert overall.first_order_at == min(o.placed_at for o in survivor.orders.all())
    assert not CustomerMetrics.objects.filter(customer=merged).exists()


def test_a_withdrawal_on_the_merged_record_beats_an_older_grant(pair):
    survivor, merged, manager = pair
    assert states(survivor)["email_marketing"] is True

    merge = customers_merge(survivor=survivor, merged=merged, actor=manager)

    merged_states = states(survivor)
    # Withdrawn 20 days ago on the other record, granted 200 days ago here.
    assert merged_states["email_marketing"] is False
    # The survivor's own later withdrawal is not undone by an older grant.
    assert merged_states["profiling"] is False
    # A grant nobody withdrew since is carried over, pointing at its proof.
    assert merged_states["sms_marketing"] is True
    carried = ConsentEvent.objects.get(customer=survivor, purpose__code="sms_marketing")
    assert carried.source == ConsentEvent.Source.MERGE
    original = ConsentEvent.objects.get(customer=merged, purpose__code="sms_marketing")
    assert carried.evidence["entry"] == original.pk
    assert carried.occurred_at == original.occurred_at
    assert carried.text_id == original.text_id
    assert len(merge.consent_events) == 2


def test_a_withdrawal_on_the_survivor_beats_an_older_grant_on_the_merged(texts):
    survivor, merged = CustomerFactory(), CustomerFactory()
    record(merged, "email_marketing", "grant", days_ago(10), texts)
    record(survivor, "email_marketing", "withdraw", days_ago(5), texts)

    customers_merge(survivor=survivor, merged=merged)

    assert states(survivor) == {"email_marketing": False}


def test_undo_restores_both_records_as_they_were(pair):
    survivor, merged, manager = pair
    segment = segment_create(name="Lista", kind=Segment.Kind.STATIC)
    segment_members_add(segment=segment, customers=[survivor, merged])
    other_segment = segment_create(name="Tylko druga", kind=Segment.Kind.STATIC)
    segment_members_add(segment=other_segment, customers=[merged])
    before = {
        "survivor": (counts(survivor), profile(survivor), granted(survivor)),
        "merged": (counts(merged), profile(merged), states(merged)),
    }
    defaults = sorted(
        Address.objects.filter(is_default=True).values_list("pk", "customer_id")
    )
    memberships = sorted(
        SegmentMembership.objects.values_list("segment_id", "customer_id")
    )
    merge = customers_merge(
        survivor=survivor, merged=merged, take={"phone", "email"}, actor=manager
    )
    assert SegmentMembership.objects.filter(customer=merged).count() == 0

    result = customer_merge_undo(merge=merge, actor=manager)

    assert result.kept_fields == []
    assert result.rows_not_back == 0
    for name, customer in (("survivor", survivor), ("merged", merged)):
        was_counts, was_profile, _consents = before[name]
        now_counts = counts(customer)
        # The ledgers only grow: the undo restates what the merge changed.
        assert now_counts.pop("ledger") >= was_counts.pop("ledger")
        assert now_counts == was_counts
        assert profile(customer) == was_profile
    # The merged record's ledger was never touched; the survivor's consents are
    # back (a purpose it had never answered is now withdrawn: "no" either way).
    assert states(merged) == before["merged"][2]
    assert granted(survivor) == before["survivor"][2]
    assert states(survivor)["sms_marketing"] is False
    merged.refresh_from_db()
    assert merged.merged_into is None
    assert (
        sorted(Address.objects.filter(is_default=True).values_list("pk", "customer_id"))
        == defaults
    )
    assert (
        sorted(SegmentMembership.objects.values_list("segment_id", "customer_id"))
        == memberships
    )
    merge.refresh_from_db()
    assert merge.undone_at is not None
    assert merge.undone_by == manager
    assert merge_undo_error(merge) is not None


def test_undo_keeps_what_the_person_said_since(pair, texts):
    survivor, merged, manager = pair
    merge = customers_merge(survivor=survivor, merged=merged, actor=manager)
    assert states(survivor)["sms_marketing"] is True
    record(survivor, "sms_marketing", "withdraw", NOW, texts)

    customer_merge_undo(merge=merge, actor=manager)

    # Withdrawn after the merge: the undo does not grant it back.
    assert states(survivor)["sms_marketing"] is False
    # Changed by the merge and not since: back as it was.
    assert states(survivor)["email_marketing"] is True


def test_undo_keeps_a_field_edited_since_the_merge(pair):
    survivor, merged, manager = pair
    merge = customers_merge(
        survivor=survivor, merged=merged, take={"company"}, actor=manager
    )
    Customer.objects.filter(pk=survivor.pk).update(company="Nowak i Syn")

    result = customer_merge_undo(merge=merge, actor=manager)

    assert result.kept_fields == ["company"]
    survivor.refresh_from_db()
    assert survivor.company == "Nowak i Syn"


def test_undo_is_refused_after_thirty_days_and_twice(pair):
    survivor, merged, manager = pair
    merge = customers_merge(survivor=survivor, merged=merged, actor=manager)
    CustomerMerge.objects.filter(pk=merge.pk).update(merged_at=days_ago(31))
    merge.refresh_from_db()
    with pytest.raises(ValidationError, match="30"):
        customer_merge_undo(merge=merge, actor=manager)

    CustomerMerge.objects.filter(pk=merge.pk).update(merged_at=days_ago(29))
    merge.refresh_from_db()
    customer_merge_undo(merge=merge, actor=manager)
    with pytest.raises(ValidationError):
        customer_merge_undo(merge=merge, actor=manager)


def test_undo_of_a_survivor_merged_again_waits_for_the_later_merge():
    first, second, third = CustomerFactory(), CustomerFactory(), CustomerFactory()
    earlier = customers_merge(survivor=second, merged=first)
    later = customers_merge(survivor=third, merged=second)

    with pytest.raises(ValidationError, match=rf"\b{third.pk}\b"):
        customer_merge_undo(merge=earlier)

    customer_merge_undo(merge=later)
    customer_merge_undo(merge=earlier)
    assert not Customer.objects.filter(merged_into__isnull=False).exists()


@pytest.mark.parametrize("problem", ["same", "erased", "merged"])
def test_merge_refuses_what_cannot_be_merged(problem):
    survivor, other = CustomerFactory(), CustomerFactory()
    if problem == "same":
        other = survivor
    elif problem == "erased":
        customer_erase(customer=other, actor=None)
    else:
        customers_merge(survivor=CustomerFactory(), merged=other)
    with pytest.raises(ValidationError):
        customers_merge(survivor=survivor, merged=other)


def test_merge_refuses_unknown_fields():
    with pytest.raises(ValidationError, match="erased_at"):
        customers_merge(
            survivor=CustomerFactory(), merged=CustomerFactory(), take={"erased_at"}
        )


def test_a_message_both_records_were_sent_stays_with_the_merged_record(purposes):
    survivor, merged = CustomerFactory(), CustomerFactory()
    segment = segment_create(name="Wszyscy", kind=Segment.Kind.STATIC)
    campaign = CampaignFactory(segment=segment)
    other_campaign = CampaignFactory(segment=segment)
    DeliveryFactory(campaign=campaign, customer=survivor)
    twin = DeliveryFactory(campaign=campaign, customer=merged)
    moved = DeliveryFactory(campaign=other_campaign, customer=merged)

    plan = merge_plan(survivor=survivor, merged=merged)
    customers_merge(survivor=survivor, merged=merged)

    assert Delivery.objects.get(pk=moved.pk).customer == survivor
    assert Delivery.objects.get(pk=twin.pk).customer == merged
    label = str(Delivery._meta.verbose_name_plural)
    assert (label, 1) in plan.moving
    assert (label, 1) in plan.staying


def test_erasing_the_survivor_erases_the_merged_record_and_the_snapshots(pair):
    survivor, merged, manager = pair
    merge = customers_merge(survivor=survivor, merged=merged, actor=manager)

    customer_erase(customer=survivor, actor=manager)

    merged.refresh_from_db()
    assert merged.erased_at is not None
    merge.refresh_from_db()
    assert "email" not in merge.merged_before
    assert "first_name" not in merge.survivor_before
    assert merge_undo_error(merge)


def test_every_foreign_key_to_a_customer_is_declared():
    declared = {relation.key for relation in merge_relations()}
    for model in apps.get_models(include_auto_created=True):
        for field in model._meta.get_fields():
            if field.is_relation and field.concrete and field.related_model is Customer:
                key = f"{model._meta.label_lower}.{field.name}"
                assert key in declared, f"customers.merging has no rule for {key}"


def test_exact_duplicates_merge_in_a_batch():
    older = CustomerFactory(email="jan.kowalski@gmail.com")
    newer = CustomerFactory(email="jankowalski+sklep@gmail.com", phone="")
    third = CustomerFactory(email="jan.kowalski@googlemail.com")
    OrderFactory(customer=newer)
    for first, second in ((older, newer), (newer, third)):
        DuplicateCandidate.objects.create(
            customer=first, other=second, reason="email", key="jankowalski@gmail.com"
        )

    groups, total = exact_duplicate_groups(reason="email")

    assert total == 1
    (group,) = groups
    # The record with orders survives; the others fold into it.
    assert group.survivor == newer
    assert {c.pk for c in group.others} == {older.pk, third.pk}

    result = customers_merge_batch(
        groups=[(group.survivor.pk, [c.pk for c in group.others])]
    )

    assert (result.merged, result.groups, result.errors) == (2, 1, [])
    newer.refresh_from_db()
    assert newer.phone == older.phone  # filled from a merged record
    assert exact_duplicate_groups(reason="email") == ([], 0)
    again = customers_merge_batch(groups=[(newer.pk, [older.pk])])
    assert again.merged == 0
    assert len(again.errors) == 1
