import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Upper

from customers.demo import (
    DEMO_ADMIN_USERNAME,
    DEMO_PASSWORD,
    DEMO_USERS,
    DemoCalendar,
    demo_seed,
)
from customers.interactions import answer_due
from customers.models import (
    Address,
    AttributeDefinition,
    Customer,
    Interaction,
    Store,
)
from customers.validators import normalize_nip, normalize_phone
from orders.models import Category, Order, OrderLine, Product

CUSTOMERS = 300


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    """Seed once for the module; roll everything back at the end."""
    with django_db_blocker.unblock(), transaction.atomic():
        summary = demo_seed(customers=CUSTOMERS, seed=7)
        yield summary
        transaction.set_rollback(True)


@pytest.fixture
def data(seeded, db):
    return seeded


def test_summary_counts(data):
    # Plus a few second records of seeded people: the duplicates to merge.
    duplicates = data.counts["duplicates"]
    assert 0 < duplicates <= 12
    assert data.customers == CUSTOMERS == Customer.objects.count() - duplicates
    assert data.orders == Order.objects.count() > CUSTOMERS
    assert data.lines == OrderLine.objects.count() > data.orders


def test_two_stores_with_identities_and_catalogues(data):
    stores = set(Store.objects.values_list("code", flat=True))
    assert stores == {"sklep", "zoo"}
    for code in stores:
        assert Customer.objects.filter(identities__store__code=code).exists()
        assert Order.objects.filter(store__code=code).exists()
        assert Category.objects.filter(store__code=code, parent__isnull=False).exists()
    assert 250 <= Product.objects.count() <= 350


def test_leads_and_buyers(data):
    leads = Customer.objects.leads().count()
    assert 0.2 <= leads / CUSTOMERS <= 0.36
    assert not Customer.objects.leads().filter(orders__isnull=False).exists()
    assert not Customer.objects.buyers().filter(orders__isnull=True).exists()
    per_buyer = Customer.objects.buyers().annotate(n=Count("orders"))
    assert per_buyer.filter(n=1).exists()
    assert per_buyer.filter(n__gte=5).exists()


def test_order_totals_add_up(data):
    assert not OrderLine.objects.exclude(total=F("quantity") * F("unit_price")).exists()
    assert not Order.objects.exclude(
        total=F("subtotal") - F("discount_total") + F("shipping_total")
    ).exists()
    orders = Order.objects.annotate(
        line_sum=Sum("lines__total"), line_count=Count("lines")
    )
    assert not orders.exclude(subtotal=F("line_sum")).exists()
    assert not orders.filter(Q(line_count__lt=1) | Q(line_count__gt=5)).exists()
    assert Order.objects.exclude(coupon_code="").exists()
    assert Order.objects.filter(discount_total__gt=0).exists()


def test_orders_span_three_years_with_statuses_by_age(data):
    now = datetime.now(UTC)
    oldest = Order.objects.order_by("placed_at").first().placed_at
    assert now - timedelta(days=3 * 366) <= oldest <= now - timedelta(days=2 * 365)
    assert not Order.objects.filter(placed_at__gt=now).exists()
    old = Order.objects.filter(placed_at__lt=now - timedelta(days=30))
    assert set(old.values_list("status", flat=True)) <= {
        "delivered",
        "cancelled",
        "returned",
    }
    assert old.filter(status="delivered").count() > 0.8 * old.count()
    assert not Order.objects.filter(
        status="delivered", delivered_at__isnull=True
    ).exists()
    assert not Order.objects.filter(
        status="cancelled", cancelled_at__isnull=True
    ).exists()
    assert not Order.objects.filter(
        status="returned", returned_at__isnull=True
    ).exists()
    assert not Order.objects.filter(status="new").exclude(paid_at=None).exists()
    assert not Order.objects.filter(shipped_at__lt=F("placed_at")).exists()
    assert not Order.objects.filter(delivered_at__lt=F("shipped_at")).exists()
    assert set(Order.objects.values_list("payment_method", flat=True)) >= {
        "BLIK",
        "pobranie",
    }
    order = Order.objects.exclude(shipping_address={}).first()
    assert {"street", "postcode", "city", "country"} <= set(order.shipping_address)


def test_support_log_follows_the_orders(data):
    interactions = Interaction.objects.all()
    assert data.counts["interactions"] == interactions.count() > 0
    assert set(interactions.values_list("kind", flat=True)) >= {"return", "review"}
    # Every return is about a returned order of the same customer.
    returns = interactions.filter(kind="return")
    assert not returns.exclude(order__status="returned").exists()
    assert not interactions.exclude(order__customer=F("customer")).exists()
    # Complaints and returns are due 14 days after they came in; the settled ones
    # have their closing time.
    for interaction in interactions.with_status():
        assert interaction.due_at == answer_due(interaction.occurred_at)
        assert (interaction.resolved_at is None) == interaction.is_pending
    assert not interactions.filter(kind="review", rating__isnull=True).exists()


def test_contact_data_is_valid(data):
    phones = list(Customer.objects.exclude(phone="").values_list("phone", flat=True))
    assert len(phones) > 0.7 * CUSTOMERS
    for phone in phones[:100]:
        assert normalize_phone(phone) == phone
        assert re.fullmatch(r"\+48[5-8]\d{8}", phone)
    postcodes = Address.objects.filter(country="PL").values_list("postcode", flat=True)
    assert all(re.fullmatch(r"\d{2}-\d{3}", code) for code in postcodes)
    nips = list(Customer.objects.exclude(nip="").values_list("nip", flat=True))
    assert nips
    assert all(normalize_nip(nip) == nip for nip in nips)
    emails = Customer.objects.exclude(email=None)
    assert emails.values(upper=Upper("email")).distinct().count() == emails.count()
    customer = emails.exclude(last_name="").first()
    assert customer.email == customer.email.strip()


def test_addresses_one_default_per_kind(data):
    buyers = Customer.objects.buyers()
    assert not buyers.exclude(
        addresses__kind="shipping", addresses__is_default=True
    ).exists()
    assert not buyers.exclude(
        addresses__kind="billing", addresses__is_default=True
    ).exists()
    defaults = (
        Address.objects.filter(is_default=True)
        .values("customer", "kind")
        .annotate(n=Count("id"))
    )
    assert not defaults.filter(n__gt=1).exists()


def test_pareto_revenue(data):
    revenue = sorted(
        Order.objects.completed()
        .values("customer")
        .annotate(total=Sum("total"))
        .values_list("total", flat=True),
        reverse=True,
    )
    top = revenue[: len(revenue) // 5]
    assert sum(top) / sum(revenue) >= 0.6


def test_sensitive_and_replenishable_catalogue(data):
    assert Category.objects.filter(is_sensitive=True).exists()
    assert Product.objects.filter(category__is_sensitive=True).exists()
    assert not Product.objects.filter(
        category__is_sensitive=True, is_sensitive=False
    ).exists()
    days = set(
        Product.objects.replenishable().values_list("replenishment_days", flat=True)
    )
    assert {14, 20, 30, 45} <= days
    names = set(
        Category.objects.filter(products__replenishment_days__isnull=False).values_list(
            "name", flat=True
        )
    )
    assert {"Karma sucha dla psów", "Soczewki kontaktowe", "Pieluszki"} <= names
    # Replenishment buyers come back for the same product.
    repeat = (
        OrderLine.objects.filter(product__replenishment_days__isnull=False)
        .values("order__customer", "product")
        .annotate(n=Count("id"))
        .filter(n__gte=3)
    )
    assert repeat.exists()


def test_attributes_match_definitions(data):
    definitions = {d.code: d for d in AttributeDefinition.objects.all()}
    with_attributes = Customer.objects.exclude(attributes={})
    assert with_attributes.count() > 0.2 * CUSTOMERS
    for attributes in with_attributes.values_list("attributes", flat=True):
        for code, value in attributes.items():
            definition = definitions[code]
            if definition.multiple:
                assert set(value) <= set(definition.choices)
            elif definition.kind == "choice":
                assert value in definition.choices
    assert Customer.objects.filter(attributes__has_key="interests").exists()


def test_profile_fields_are_filled(data):
    assert Customer.objects.exclude(company="").exists()
    assert Customer.objects.exclude(birth_date=None).exists()
    assert Customer.objects.filter(gender="female").exists()
    assert Customer.objects.filter(
        acquisition_source="google", acquisition_medium="cpc"
    ).exists()
    assert Customer.objects.filter(preferred_channels__contains=["email"]).exists()
    assert Customer.objects.exclude(last_device="").exists()
    assert Customer.objects.filter(tags__isnull=False).exists()
    assert Customer.objects.filter(language="pl").count() > 0.9 * CUSTOMERS


def test_demo_users_in_their_groups(data):
    users = get_user_model().objects
    for username, role in DEMO_USERS.items():
        user = users.get(username=username)
        assert user.is_staff
        assert not user.is_superuser
        assert list(user.groups.values_list("name", flat=True)) == [role]
        assert user.check_password(DEMO_PASSWORD)
    admin = users.get(username=DEMO_ADMIN_USERNAME)
    assert admin.is_superuser
    assert admin.check_password(DEMO_PASSWORD)


def test_if_empty_changes_nothing(data):
    before = (Customer.objects.count(), Order.objects.count(), Product.objects.count())
    out = io.StringIO()
    call_command("seed_demo", customers=50, if_empty=True, stdout=out)
    after = (Customer.objects.count(), Order.objects.count(), Product.objects.count())
    assert before == after
    assert "nothing seeded" in out.getvalue()


def test_seeding_again_adds_more(data):
    customers, orders = Customer.objects.count(), Order.objects.count()
    products, users = Product.objects.count(), get_user_model().objects.count()
    # The same seed draws the same names: emails must still come out unique.
    out = io.StringIO()
    call_command("seed_demo", customers=50, seed=7, stdout=out)
    # Fifty people, and second records of a few of them (the duplicates to merge).
    assert 50 < Customer.objects.count() - customers <= 50 + 12
    assert Order.objects.count() > orders
    assert Product.objects.count() == products
    assert get_user_model().objects.count() == users
    assert "Seeded 50 customers" in out.getvalue()


def test_calendar_is_seasonal():
    calendar = DemoCalendar(now=datetime(2026, 1, 15, 12, tzinfo=UTC))

    def weight(day):
        i = calendar.dates.index(day)
        return calendar.cum[i] - calendar.cum[i - 1]

    black_friday = date(2025, 11, 28)
    assert weight(black_friday) > 2.5 * weight(date(2025, 11, 7))
    assert weight(date(2025, 12, 10)) > 1.5 * weight(date(2025, 7, 9))
    assert len(calendar) == 3 * 365 + 1


def test_consents_follow_the_ledger(data):
    from consents.models import ConsentEvent, ConsentState

    granted = ConsentState.objects.filter(purpose__code="email_marketing", granted=True)
    assert 0.3 <= granted.count() / CUSTOMERS <= 0.6
    assert ConsentEvent.objects.filter(action="withdraw").exists()
    # every state is its customer's newest event for that purpose
    for state in ConsentState.objects.select_related("event")[:50]:
        newest = (
            ConsentEvent.objects.filter(
                customer_id=state.customer_id, purpose_id=state.purpose_id
            )
            .order_by("-occurred_at", "-id")
            .first()
        )
        assert state.event_id == newest.pk
        assert state.granted == (newest.action == "grant")
    assert not ConsentEvent.objects.filter(action="grant", text__isnull=True).exists()
