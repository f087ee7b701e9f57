"""Retention: a dry run only counts; applying removes only what is past its time."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from consents import retention
from consents.access_log import access_log_record
from consents.models import AccessLog, ConsentEvent, DoubleOptIn
from consents.retention import months_before, retention_apply
from consents.services import consent_record, consent_text_current
from consents.tasks import retention_apply_task
from customers.models import Customer, Event, Visitor
from tests.factories.customers import CustomerFactory
from tests.factories.orders import OrderFactory

pytestmark = pytest.mark.django_db

WARSAW = ZoneInfo("Europe/Warsaw")
NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=WARSAW)


@pytest.fixture(autouse=True)
def policy(settings):
    settings.RETENTION = {
        "lead_months": 24,
        "unconfirmed_signup_days": 30,
        "event_months": 13,
        "access_log_months": 60,
    }


def ago(**kwargs):
    return NOW - dt.timedelta(**kwargs)


def customer_created(when, **kwargs):
    customer = CustomerFactory(**kwargs)
    Customer.objects.filter(pk=customer.pk).update(created_at=when)
    customer.refresh_from_db()
    return customer


def event(store, when, customer=None):
    return Event.objects.create(
        store=store,
        customer=customer,
        anonymous_id="" if customer else "v-1",
        kind=Event.Kind.PAGE_VIEW,
        occurred_at=when,
    )


def signup(customer, purposes, when, confirmed=False):
    purpose = purposes["email_marketing"]
    return DoubleOptIn.objects.create(
        customer=customer,
        purpose=purpose,
        text=consent_text_current(purpose=purpose, language="pl"),
        requested_at=when,
        confirmed_at=when + dt.timedelta(hours=1) if confirmed else None,
    )


@pytest.fixture
def world(store, purposes):
    """Something past every limit, and something just inside it."""
    keep = customer_created(ago(days=30), status=Customer.Status.BUYER)
    stale_lead = customer_created(ago(days=365 * 3))
    leads_kept = {
        "recent": customer_created(ago(days=200)),
        "seen_lately": customer_created(ago(days=365 * 3), last_seen_at=ago(days=10)),
        "restricted": customer_created(ago(days=365 * 3), restricted_at=ago(days=5)),
        "with_order": customer_created(ago(days=365 * 3)),
        "with_consent": customer_created(ago(days=365 * 3)),
    }
    OrderFactory(customer=leads_kept["with_order"], store=store)
    consent_record(
        customer=leads_kept["with_consent"],
        purpose="email_marketing",
        action="grant",
        source=ConsentEvent.Source.NEWSLETTER_FORM,
        text=consent_text_current(purpose=purposes["email_marketing"], language="pl"),
        occurred_at=ago(days=365 * 3),
    )
    old_events = [event(store, ago(days=400), keep) for _ in range(3)]
    old_events.append(event(store, ago(days=500)))  # anonymous
    new_events = [event(store, ago(days=380), keep), event(store, ago(days=1))]
    old_visitor = Visitor.objects.create(
        store=store,
        anonymous_id="v-old",
        first_seen_at=ago(days=700),
        last_seen_at=ago(days=400),
    )
    new_visitor = Visitor.objects.create(
        store=store,
        anonymous_id="v-new",
        first_seen_at=ago(days=700),
        last_seen_at=ago(days=100),
    )
    old_signup = signup(keep, purposes, ago(days=31))
    new_signup = signup(keep, purposes, ago(days=29))
    confirmed_signup = signup(keep, purposes, ago(days=90), confirmed=True)
    AccessLog.objects.create(customer=keep, action="view", at=ago(days=365 * 6))
    access_log_record(customers=keep, action="view")
    return {
        "stale_lead": stale_lead,
        "leads_kept": leads_kept,
        "old_events": old_events,
        "new_events": new_events,
        "old_visitor": old_visitor,
        "new_visitor": new_visitor,
        "old_signup": old_signup,
        "kept_signups": [new_signup, confirmed_signup],
    }


EXPECTED = {
    "leads_erased": 1,
    "unconfirmed_signups_deleted": 1,
    "events_deleted": 4,
    "visitors_deleted": 1,
    "access_log_kept": 1,
}


def snapshot():
    return {
        "events": Event.objects.count(),
        "visitors": Visitor.objects.count(),
        "signups": DoubleOptIn.objects.count(),
        "access_log": AccessLog.objects.count(),
        "erased": Customer.objects.filter(erased_at__isnull=False).count(),
    }


def test_dry_run_counts_and_changes_nothing(world):
    before = snapshot()
    assert retention_apply(dry_run=True, now=NOW) == EXPECTED
    assert snapshot() == before


def test_apply_removes_what_is_past_its_time_and_keeps_the_rest(world):
    access_log_before = AccessLog.objects.count()
    assert retention_apply(dry_run=False, now=NOW) == EXPECTED

    assert not Event.objects.filter(pk__in=[e.pk for e in world["old_events"]]).exists()
    assert set(Event.objects.values_list("pk", flat=True)) == {
        e.pk for e in world["new_events"]
    }
    assert list(Visitor.objects.all()) == [world["new_visitor"]]
    assert not DoubleOptIn.objects.filter(pk=world["old_signup"].pk).exists()
    assert set(DoubleOptIn.objects.all()) == set(world["kept_signups"])

    stale = Customer.objects.get(pk=world["stale_lead"].pk)
    assert stale.erased_at is not None
    assert stale.email is None
    for name, lead in world["leads_kept"].items():
        lead.refresh_from_db()
        assert lead.erased_at is None, name
        assert lead.email, name
    # The log is never deleted; the erasure adds its own row.
    assert AccessLog.objects.count() == access_log_before + 1
    assert AccessLog.objects.filter(customer=stale, action="erasure").exists()


def test_a_second_run_finds_nothing_more(world):
    retention_apply(dry_run=False, now=NOW)
    again = retention_apply(dry_run=False, now=NOW)
    assert again == {**dict.fromkeys(EXPECTED, 0), "access_log_kept": 1}


def test_events_are_deleted_in_batches(store, monkeypatch):
    monkeypatch.setattr(retention, "DELETE_BATCH", 2)
    for _ in range(5):
        event(store, ago(days=500))
    kept = event(store, ago(days=5))
    result = retention_apply(dry_run=False, now=NOW)
    assert result["events_deleted"] == 5
    assert list(Event.objects.all()) == [kept]


def test_the_policy_comes_from_settings(settings, store):
    event(store, ago(days=100))
    assert retention_apply(dry_run=True, now=NOW)["events_deleted"] == 0
    settings.RETENTION = {**settings.RETENTION, "event_months": 3}
    assert retention_apply(dry_run=True, now=NOW)["events_deleted"] == 1


def test_months_before_keeps_the_local_day_or_the_months_last():
    march_end = dt.datetime(2026, 3, 31, 10, 0, tzinfo=WARSAW)
    assert months_before(march_end, 1) == dt.datetime(2026, 2, 28, 10, 0, tzinfo=WARSAW)
    assert months_before(march_end, 13) == dt.datetime(
        2025, 2, 28, 10, 0, tzinfo=WARSAW
    )
    assert months_before(NOW, 24) == dt.datetime(2024, 6, 15, 12, 0, tzinfo=WARSAW)


def test_command_is_a_dry_run_unless_told(world, capsys):
    call_command("retention")
    out = capsys.readouterr().out
    assert Event.objects.filter(pk=world["old_events"][0].pk).exists()
    assert out.count(": ") >= len(EXPECTED)
    call_command("retention", "--apply")
    assert not Event.objects.filter(pk=world["old_events"][0].pk).exists()


def test_task_is_thin_and_scheduled_nightly(world):
    assert retention_apply_task(dry_run=True)["events_deleted"] >= 4
    assert Event.objects.filter(pk=world["old_events"][0].pk).exists()
    entry = django_settings.CELERY_BEAT_SCHEDULE["retention-apply"]
    assert entry["task"] == retention_apply_task.name
    assert entry["schedule"].hour == {3}
    assert entry["schedule"].minute == {30}
