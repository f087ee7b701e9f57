"""Erasure, restriction and objection (Art. 17, 18, 21)."""

import datetime as dt
import os
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from consents import erasure
from consents.erasure import (
    customer_erase,
    customer_object,
    customer_objection_lift,
    customer_restrict,
    customer_restriction_lift,
)
from consents.models import (
    AccessLog,
    ConsentEvent,
    ConsentState,
    DataSubjectRequest,
    DoubleOptIn,
    Suppression,
)
from consents.services import (
    consent_allows,
    consent_grant,
    consent_purpose,
    consent_text_current,
    is_suppressed,
)
from customers.interactions import (
    interaction_attach,
    interaction_log,
    interaction_set_status,
)
from customers.models import (
    Address,
    Customer,
    CustomerIdentity,
    Event,
    IdempotencyRecord,
    Interaction,
    InteractionAttachment,
    Visitor,
    WebhookDelivery,
)
from customers.services import api_key_create, customer_upsert
from customers.tasks import webhook_deliver_task
from customers.webhooks import webhook_endpoint_create
from orders.models import Cart, Order
from tests.conftest import ensure_purposes, ensure_roles
from tests.factories.consents import DataSubjectRequestFactory
from tests.factories.customers import (
    AddressFactory,
    CustomerFactory,
    CustomerIdentityFactory,
    StoreFactory,
)
from tests.factories.orders import OrderFactory, OrderLineFactory

EMAIL = "bozydar.wrzeszczynski@example.pl"
PHONE = "+48609876543"
FIRST = "Bożydar"
LAST = "Wrzeszczyński"
STREET = "ul. Niepowtarzalna 13"
IP = "83.24.117.201"
USER_AGENT = "Mozilla/5.0 (PersonalLaptop-XYZ)"


@pytest.fixture
def enqueued(monkeypatch):
    """Webhook deliveries handed to Celery (the broker is not called)."""
    ids: list[str] = []
    monkeypatch.setattr(webhook_deliver_task, "delay", ids.append)
    return ids


def revenue():
    return Order.objects.completed().aggregate(total=Sum("total"))["total"]


def build_person(store, dpo):
    """A customer with data in every table that can hold some of it."""
    webhook_endpoint_create(
        store=store,
        url="https://shop.example.pl/hooks",
        events=["customer.updated", "consent.changed", "customer.erased"],
    )
    customer = CustomerFactory(
        first_name=FIRST,
        last_name=LAST,
        email=EMAIL,
        phone=PHONE,
        birth_date=dt.date(1980, 5, 17),
        company="Wrzeszczyński Sp. z o.o.",
        nip="5260250274",
        attributes={"nickname": FIRST},
        last_device="mobile",
    )
    AddressFactory(customer=customer, street=STREET, phone=PHONE)
    CustomerIdentityFactory(customer=customer, store=store, external_id="C-900")
    address = {
        "first_name": FIRST,
        "last_name": LAST,
        "street": STREET,
        "email": EMAIL,
        "phone": PHONE,
    }
    paid = OrderFactory(
        customer=customer,
        store=store,
        total=Decimal("250.00"),
        billing_address=address,
        shipping_address=address,
    )
    OrderLineFactory(order=paid)
    OrderFactory(customer=customer, store=store, status="cancelled", total=Decimal(9))
    OrderFactory(store=store, total=Decimal("40.00"))  # someone else's
    Cart.objects.create(
        store=store,
        external_id="K-900",
        customer=customer,
        value=Decimal(10),
        items=[{"sku": "X", "name": f"Grawer: {FIRST} {LAST}"}],
        updated_at=timezone.now(),
    )
    now = timezone.now()
    Visitor.objects.create(
        store=store,
        anonymous_id="anon-900",
        customer=customer,
        first_seen_at=now,
        last_seen_at=now,
    )
    Event.objects.create(
        store=store,
        customer=customer,
        kind="search",
        keyword=LAST,
        occurred_at=now,
    )
    Event.objects.create(
        store=store, anonymous_id="anon-900", kind="page_view", occurred_at=now
    )
    complaint = interaction_log(
        customer=customer,
        kind="complaint",
        channel="email",
        actor=dpo,
        subject=f"Reklamacja: {FIRST} {LAST}",
        body=f"Proszę o kontakt pod {PHONE} lub {EMAIL}, {STREET}.",
        order=paid,
    )
    interaction_attach(
        interaction=complaint,
        upload=ContentFile(f"Faktura dla {LAST}".encode(), name="faktura.txt"),
        actor=dpo,
    )
    interaction_set_status(
        interaction=complaint,
        status="waiting",
        actor=dpo,
        note=f"Czekamy na zdjęcia od {FIRST}",
    )
    text = consent_text_current(
        purpose=consent_purpose("email_marketing"), language="pl"
    )
    consent_grant(
        customer=customer,
        purpose="email_marketing",
        text=text,
        source=ConsentEvent.Source.NEWSLETTER_FORM,
        store=store,
        ip_address=IP,
        user_agent=USER_AGENT,
        evidence={"form": "footer", "email": EMAIL},
    )
    DoubleOptIn.objects.create(
        customer=customer,
        purpose=text.purpose,
        text=text,
        store=store,
        request_ip=IP,
        request_user_agent=USER_AGENT,
        evidence={"email": EMAIL},
    )
    request = DataSubjectRequestFactory(
        customer=customer,
        kind=DataSubjectRequest.Kind.ERASURE,
        due_on=dt.date(2026, 2, 28),
        requester=f"{FIRST} {LAST} <{EMAIL}>",
    )
    key, _raw = api_key_create(store=store, name="shop", scopes=["write"])
    IdempotencyRecord.objects.create(
        api_key=key,
        key="k-1",
        method="POST",
        path="/api/v1/customers/",
        request_hash="0" * 64,
        response_status=201,
        response_body={"email": EMAIL, "first_name": FIRST},
    )
    LogEntry.objects.log_actions(
        user_id=dpo.pk,
        queryset=[customer, *customer.addresses.all()],
        action_flag=CHANGE,
        change_message=f"Changed email to {EMAIL}",
    )
    return customer, request


def pg_dump_binary() -> str | None:
    try:
        import pgserver

        bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    return shutil.which("pg_dump")


def dump_database() -> str:
    binary = pg_dump_binary()
    if binary is None:
        pytest.skip("No pg_dump binary (neither pgserver's nor on PATH).")
    settings = connection.settings_dict
    command = [binary, "--data-only", "--no-owner", "--dbname", settings["NAME"]]
    if settings.get("HOST"):
        command += ["--host", settings["HOST"]]
    if settings.get("PORT"):
        command += ["--port", str(settings["PORT"])]
    if settings.get("USER"):
        command += ["--username", settings["USER"]]
    env = {**os.environ, "PGPASSWORD": settings.get("PASSWORD") or ""}
    result = subprocess.run(  # noqa: S603 - fixed binary, our own settings
        command, capture_output=True, env=env, check=True, timeout=120
    )
    return result.stdout.decode("utf-8")


@pytest.mark.django_db(transaction=True)
def test_after_erasure_the_database_holds_nothing_of_the_person(enqueued):
    ensure_roles()
    ensure_purposes()
    from django.contrib.auth import get_user_model

    dpo = get_user_model().objects.create_user(username="dpo-erase", is_staff=True)
    store = StoreFactory(code="sklep")
    customer, request = build_person(store, dpo)
    revenue_before = revenue()
    before = dump_database()
    for needle in (EMAIL, FIRST, LAST, STREET, PHONE, IP, USER_AGENT):
        assert needle in before, f"the test data must reach the dump: {needle}"
    assert WebhookDelivery.objects.exists()

    customer_erase(customer=customer, actor=dpo, request=request)

    dump = dump_database()
    for needle in (EMAIL, PHONE, PHONE[3:], FIRST, LAST, STREET, IP, USER_AGENT):
        assert needle not in dump, needle
        assert needle.lower() not in dump.lower(), needle
    assert revenue() == revenue_before
    assert Order.objects.filter(customer=customer).count() == 2
    assert ConsentEvent.objects.filter(customer=customer).count() == 2  # + withdrawn


@pytest.mark.django_db
class TestErase:
    @pytest.fixture
    def person(self, store, purposes, make_staff, enqueued):
        self.dpo = make_staff("Data protection officer")
        return build_person(store, self.dpo)

    def test_anonymises_and_keeps_orders(
        self, person, enqueued, django_capture_on_commit_callbacks
    ):
        customer, request = person
        identity_ids = list(customer.identities.values_list("pk", flat=True))
        revenue_before = revenue()
        status = customer.status
        attachment = InteractionAttachment.objects.get(interaction__customer=customer)
        storage, file_name = attachment.file.storage, attachment.file.name
        assert storage.exists(file_name)
        with django_capture_on_commit_callbacks(execute=True):
            customer_erase(customer=customer, actor=self.dpo, request=request)

        # The support log keeps that there was a complaint and how it stands,
        # not what was said nor the files.
        (complaint,) = Interaction.objects.filter(customer=customer)
        assert (complaint.kind, complaint.status) == ("complaint", "waiting")
        assert (complaint.subject, complaint.body) == ("", "")
        assert complaint.due_at is not None
        assert not complaint.attachments.exists()
        assert not storage.exists(file_name)
        assert [c.note for c in complaint.changes.all()] == [""]

        customer.refresh_from_db()
        assert customer.erased_at is not None
        assert customer.restricted_at is not None
        assert (customer.first_name, customer.last_name) == ("", "")
        assert customer.email is None
        assert customer.phone == ""
        assert customer.birth_date is None
        assert (customer.company, customer.nip) == ("", "")
        assert customer.attributes == {}
        assert customer.last_device == ""
        assert customer.status == status
        assert not customer.tags.exists()
        assert not Address.objects.filter(customer=customer).exists()
        assert not CustomerIdentity.objects.filter(pk__in=identity_ids).exists()
        assert not Event.objects.filter(customer=customer).exists()
        assert not Event.objects.filter(anonymous_id="anon-900").exists()
        assert not Visitor.objects.filter(customer=customer).exists()
        assert not Cart.objects.filter(customer=customer).exists()
        assert not DoubleOptIn.objects.filter(customer=customer).exists()
        assert not IdempotencyRecord.objects.exists()

        orders = Order.objects.filter(customer=customer)
        assert orders.count() == 2
        assert all(o.billing_address == o.shipping_address == {} for o in orders)
        assert revenue() == revenue_before

        ledger = ConsentEvent.objects.filter(customer=customer).order_by("id")
        grant, withdrawal = ledger
        assert grant.action == "grant"
        assert withdrawal.action == "withdraw"
        assert withdrawal.source == ConsentEvent.Source.DATA_SUBJECT_REQUEST
        assert (grant.ip_address, grant.user_agent, grant.evidence) == (None, "", {})
        assert grant.evidence_hash  # the proof of what the evidence was
        assert grant.text_id is not None
        assert not ConsentState.objects.filter(customer=customer, granted=True).exists()
        assert not consent_allows(customer=customer, purpose="email_marketing")

        assert is_suppressed(email=EMAIL)
        assert is_suppressed(phone=PHONE)
        request.refresh_from_db()
        assert request.requester == ""
        assert AccessLog.objects.filter(
            customer=customer, action="erasure", user=self.dpo
        ).exists()

        entries = LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Customer)
        )
        assert [(e.object_repr, e.change_message) for e in entries] == [("—", "")]
        for delivery in WebhookDelivery.objects.exclude(event="customer.erased"):
            assert delivery.payload["data"]["customer"]["email"] is None

    def test_shops_hear_about_it_with_their_ids(self, person, store):
        customer, request = person
        customer_erase(customer=customer, actor=self.dpo, request=request)
        (delivery,) = WebhookDelivery.objects.filter(event="customer.erased")
        assert delivery.endpoint.store == store
        described = delivery.payload["data"]["customer"]
        assert described["id"] == customer.pk
        assert described["identities"] == [{"store": "sklep", "external_id": "C-900"}]

    def test_api_answers_404_after_erasure(self, person, store, make_api_client):
        customer, request = person
        api = make_api_client(store)
        assert api.get("/api/v1/customers/C-900/").status_code == 200
        customer_erase(customer=customer, actor=self.dpo, request=request)
        assert api.get("/api/v1/customers/C-900/").status_code == 404

    def test_erasing_twice_writes_nothing_more(self, person):
        customer, request = person
        customer_erase(customer=customer, actor=self.dpo, request=request)
        counts = (AccessLog.objects.count(), ConsentEvent.objects.count())
        customer_erase(customer=customer, actor=self.dpo)
        assert (AccessLog.objects.count(), ConsentEvent.objects.count()) == counts

    def test_a_failure_leaves_the_customer_whole(self, person, monkeypatch):
        customer, request = person

        def broken(**kwargs):
            raise RuntimeError("webhook store down")

        monkeypatch.setattr(erasure, "webhook_emit", broken)
        with pytest.raises(RuntimeError):
            customer_erase(customer=customer, actor=self.dpo, request=request)
        customer.refresh_from_db()
        assert customer.erased_at is None
        assert customer.email == EMAIL
        assert customer.addresses.exists()
        assert not Suppression.objects.exists()
        assert ConsentEvent.objects.get(customer=customer).ip_address == IP

    def test_request_of_another_customer_is_refused(self, person):
        customer, _request = person
        other = DataSubjectRequestFactory(due_on=dt.date(2026, 2, 28))
        with pytest.raises(ValidationError) as error:
            customer_erase(customer=customer, actor=self.dpo, request=other)
        assert "request" in error.value.error_dict
        customer.refresh_from_db()
        assert customer.erased_at is None

    def test_reimport_cannot_bring_marketing_consent_back(self, person, store):
        customer, request = person
        customer_erase(customer=customer, actor=self.dpo, request=request)
        again, created = customer_upsert(email=EMAIL, first_name=FIRST)
        assert created
        assert again.pk != customer.pk
        text = consent_text_current(
            purpose=consent_purpose("email_marketing"), language="pl"
        )
        with pytest.raises(ValidationError) as error:
            consent_grant(
                customer=again,
                purpose="email_marketing",
                text=text,
                source="import",
                import_file_hash="a" * 64,
            )
        assert error.value.error_dict["customer"][0].code == "suppressed"
        assert not ConsentEvent.objects.filter(customer=again).exists()


# --- Restriction and objection -------------------------------------------------------


@pytest.fixture
def dpo(make_staff):
    return make_staff("Data protection officer", username="dpo")


@pytest.fixture
def granted(customer, purposes):
    for code in ("email_marketing", "sms_marketing", "profiling"):
        consent_grant(
            customer=customer,
            purpose=code,
            text=consent_text_current(purpose=consent_purpose(code), language="pl"),
            source=ConsentEvent.Source.ACCOUNT_FORM,
        )
    return customer


@pytest.mark.django_db
def test_restriction_and_its_lifting(granted, dpo):
    assert consent_allows(customer=granted, purpose="email_marketing")
    assert customer_restrict(customer=granted, actor=dpo) is True
    first = granted.restricted_at
    assert first is not None
    assert not consent_allows(customer=granted, purpose="email_marketing")
    assert not Customer.objects.processable().filter(pk=granted.pk).exists()
    assert customer_restrict(customer=granted, actor=dpo) is False
    granted.refresh_from_db()
    assert granted.restricted_at == first

    assert customer_restriction_lift(customer=granted, actor=dpo) is True
    assert customer_restriction_lift(customer=granted, actor=dpo) is False
    granted.refresh_from_db()
    assert granted.restricted_at is None
    assert consent_allows(customer=granted, purpose="email_marketing")


@pytest.mark.django_db
def test_marketing_objection_withdraws_every_marketing_purpose(granted, dpo):
    assert customer_object(customer=granted, to="marketing", actor=dpo) is True
    granted.refresh_from_db()
    assert granted.marketing_objection_at is not None
    states = dict(
        ConsentState.objects.filter(customer=granted).values_list(
            "purpose__code", "granted"
        )
    )
    assert states == {
        "email_marketing": False,
        "sms_marketing": False,
        "profiling": True,
    }
    withdrawals = ConsentEvent.objects.filter(customer=granted, action="withdraw")
    assert set(withdrawals.values_list("source", flat=True)) == {"data_subject_request"}
    events = ConsentEvent.objects.count()
    assert customer_object(customer=granted, to="marketing", actor=dpo) is False
    assert ConsentEvent.objects.count() == events


@pytest.mark.django_db
def test_profiling_objection_and_lifting(granted, dpo):
    assert customer_object(customer=granted, to="profiling", actor=dpo) is True
    assert not consent_allows(customer=granted, purpose="profiling")
    assert consent_allows(customer=granted, purpose="email_marketing")
    assert customer_objection_lift(customer=granted, to="profiling", actor=dpo)
    assert not customer_objection_lift(customer=granted, to="profiling", actor=dpo)
    granted.refresh_from_db()
    assert granted.profiling_objection_at is None
    # Lifting the objection does not give the consent back.
    assert not consent_allows(customer=granted, purpose="profiling")


@pytest.mark.django_db
def test_unknown_objection_and_erased_customer_are_refused(granted, dpo, purposes):
    with pytest.raises(ValidationError) as error:
        customer_object(customer=granted, to="everything", actor=dpo)
    assert error.value.error_dict["to"][0].code == "invalid_choice"
    customer_erase(customer=granted, actor=dpo)
    for call in (
        lambda: customer_restriction_lift(customer=granted, actor=dpo),
        lambda: customer_object(customer=granted, to="marketing", actor=dpo),
    ):
        with pytest.raises(ValidationError) as error:
            call()
        assert error.value.error_dict["customer"][0].code == "erased"
