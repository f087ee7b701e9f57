import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.recommendations import Recommender, price_format, recommendations_for
from campaigns.rendering import Recommendation
from consents.erasure import customer_erase, customer_object, customer_restrict
from consents.models import ConsentPurpose
from consents.services import consent_grant, consent_text_current, consent_withdraw
from customers.models import Customer
from orders.models import Order
from tests.factories.customers import CustomerFactory
from tests.factories.orders import (
    CategoryFactory,
    OrderFactory,
    OrderLineFactory,
    ProductFactory,
)

pytestmark = pytest.mark.django_db


def buy(customer, *products, quantity=1, status=Order.Status.PAID, days_ago=1):
    order = OrderFactory(
        customer=customer,
        store=products[0].store,
        status=status,
        placed_at=timezone.now() - dt.timedelta(days=days_ago),
    )
    for product in products:
        OrderLineFactory(order=order, product=product, quantity=Decimal(quantity))
    return order


def grant_profiling(customer, purposes):
    consent_grant(
        customer=customer,
        purpose="profiling",
        text=consent_text_current(purpose=purposes["profiling"], language="pl"),
        source="newsletter_form",
    )


def names(recommendations):
    return [r.name for r in recommendations]


@pytest.fixture
def shop(store, purposes):
    """A catalogue with sensitive goods, and what other people bought lately."""
    kitchen = CategoryFactory(store=store, name="Kuchnia")
    garden = CategoryFactory(store=store, name="Ogród")
    books = CategoryFactory(store=store, name="Książki")
    health = CategoryFactory(store=store, name="Zdrowie", is_sensitive=True)
    products = {}

    def make(name, category, **fields):
        products[name] = ProductFactory(
            store=store, name=name, category=category, **fields
        )

    make("sensitive", kitchen, is_sensitive=True)
    make("health", health)
    make("inactive", kitchen, is_active=False)
    for name in ("k1", "k2", "k3", "k4"):
        make(name, kitchen)
    for name in ("g1", "g2", "g3"):
        make(name, garden)
    for name in ("b1", "b2"):
        make(name, books)
    make("loose", None)
    crowd = CustomerFactory()
    sold = {
        "sensitive": 100,
        "health": 90,
        "inactive": 80,
        "loose": 60,
        "k1": 50,
        "k2": 40,
        "k3": 30,
        "g1": 20,
        "g2": 15,
        "b1": 12,
        "g3": 10,
        "b2": 8,
        "k4": 5,
    }
    for name, quantity in sold.items():
        buy(crowd, products[name], quantity=quantity)
    # Outside the 90 days, and not revenue: neither makes a best seller.
    buy(crowd, products["g3"], quantity=1000, days_ago=100)
    buy(crowd, products["b2"], quantity=1000, status=Order.Status.CANCELLED)
    buy(crowd, products["k4"], quantity=1000, status=Order.Status.NEW)
    return products


BEST_SELLERS = ["loose", "k1", "k2", "k3", "g1", "g2", "b1", "g3", "b2", "k4"]


@pytest.fixture
def ala(shop, purposes):
    """Consents to profiling; loves the garden, then books; sensitive buys aside."""
    ala = CustomerFactory(language="pl")
    grant_profiling(ala, purposes)
    buy(ala, shop["g1"], shop["g1"], shop["b1"])
    # More lines than any other category, all sensitive: never a favourite.
    buy(ala, shop["health"], shop["sensitive"])
    buy(ala, shop["health"], shop["sensitive"])
    # Ordered, then cancelled: not a favourite's line, but not recommended either.
    buy(ala, shop["k1"], shop["k2"], status=Order.Status.CANCELLED)
    return ala


def test_the_best_sellers_of_the_favourite_categories_come_first_in_turn(ala):
    # Garden (two lines), then books (one): one product of each in turn.
    assert names(Recommender(limit=2).for_customer(ala)) == ["g2", "b2"]
    assert names(Recommender(limit=3).for_customer(ala)) == ["g2", "b2", "g3"]


def test_filled_up_with_best_sellers_never_with_what_was_ordered(ala):
    # Then the best sellers without k1 and k2 (a cancelled order) nor g1 and b1
    # (bought).
    assert names(Recommender(limit=6).for_customer(ala)) == [
        "g2",
        "b2",
        "g3",
        "loose",
        "k3",
        "k4",
    ]


def test_no_more_than_the_limit(ala):
    assert len(Recommender(limit=1).for_customer(ala)) == 1
    assert len(Recommender(limit=3).for_customer(ala)) == 3
    assert Recommender(limit=0).for_customer(ala) == []


def test_top_three_categories_only(store, shop, purposes):
    toys = CategoryFactory(store=store, name="Zabawki")
    shop["t1"] = ProductFactory(store=store, name="t1", category=toys)
    buy(CustomerFactory(), shop["t1"], quantity=1)
    bolek = CustomerFactory()
    grant_profiling(bolek, purposes)
    buy(bolek, shop["k4"], shop["k3"], shop["k2"])
    buy(bolek, shop["g3"], shop["g2"])
    buy(bolek, shop["b2"])
    bought_toy = buy(bolek, shop["t1"])
    bought_toy.lines.update(product=None)  # a toy line whose product is gone
    # Kitchen, garden, books; toys are fourth: t1 (the last best seller) only
    # after the others.
    assert names(Recommender(limit=6).for_customer(bolek)) == [
        "k1",
        "g1",
        "b1",
        "loose",
        "t1",
    ]


def test_sensitive_goods_never(shop, purposes):
    fan = CustomerFactory()
    grant_profiling(fan, purposes)
    buy(fan, shop["health"], shop["health"], shop["sensitive"])
    everything = Recommender(limit=20).for_customer(fan)
    assert names(everything) == BEST_SELLERS
    anonymous = CustomerFactory()
    assert names(Recommender(limit=20).for_customer(anonymous)) == BEST_SELLERS


def test_without_profiling_consent_the_best_sellers_for_everyone(shop, purposes):
    # As seeded, profiling is done on consent (Art. 6(1)(a)).
    assert purposes["profiling"].legal_basis == ConsentPurpose.LegalBasis.CONSENT
    never, withdrew = CustomerFactory(), CustomerFactory()
    grant_profiling(withdrew, purposes)
    consent_withdraw(customer=withdrew, purpose="profiling", source="newsletter_form")
    for customer in (never, withdrew):
        # What they bought stays in: leaving it out would be personalising.
        buy(customer, shop["loose"], shop["g1"], shop["g2"])
        assert names(Recommender().for_customer(customer)) == ["loose", "k1", "k2"]


def test_on_legitimate_interest_no_consent_is_needed(shop, purposes):
    ConsentPurpose.objects.filter(code="profiling").update(
        legal_basis=ConsentPurpose.LegalBasis.LEGITIMATE_INTEREST
    )
    customer = CustomerFactory()
    buy(customer, shop["g1"])
    assert names(Recommender().for_customer(customer)) == ["g2", "g3", "loose"]


def test_objector_restricted_and_erased_get_the_best_sellers(
    ala, shop, purposes, django_assert_num_queries
):
    recommender = Recommender()
    restricted, erased = CustomerFactory(), CustomerFactory()
    for customer in (restricted, erased):
        grant_profiling(customer, purposes)
        buy(customer, shop["loose"], shop["g1"])
    customer_object(customer=ala, to="profiling", actor=None)
    customer_restrict(customer=restricted, actor=None)
    customer_erase(customer=erased, actor=None)
    erased.refresh_from_db()
    for customer in (ala, restricted, erased):
        # The customer row says so: not even a query.
        with django_assert_num_queries(0):
            assert names(recommender.for_customer(customer)) == ["loose", "k1", "k2"]


def test_the_database_decides_not_a_stale_customer_object(ala, shop):
    recommender = Recommender()
    Customer.objects.filter(pk=ala.pk).update(profiling_objection_at=timezone.now())
    assert ala.profiling_objection_at is None
    assert names(recommender.for_customer(ala)) == ["loose", "k1", "k2"]


def test_one_query_per_customer(ala, shop, purposes, django_assert_num_queries):
    with django_assert_num_queries(2):  # the purpose, the best sellers
        recommender = Recommender()
    newcomer = CustomerFactory()
    for customer in (ala, newcomer, ala):
        with django_assert_num_queries(1):
            assert len(recommender.for_customer(customer)) == 3


def test_days_and_now_set_the_window(shop, purposes):
    customer = CustomerFactory()
    assert names(Recommender(limit=1, days=200).for_customer(customer)) == ["g3"]
    # 95 days ago, the last 90 days held only the order of 100 days ago.
    then = timezone.now() - dt.timedelta(days=95)
    assert names(Recommender(limit=2, now=then).for_customer(customer)) == ["g3"]


def test_empty_catalogue(store, purposes, django_assert_num_queries):
    customer = CustomerFactory()
    grant_profiling(customer, purposes)
    recommender = Recommender()
    with django_assert_num_queries(0):
        assert recommender.for_customer(customer) == []
    assert recommendations_for(customer) == []
    # Products nobody bought in the window are not best sellers.
    ProductFactory(store=store)
    assert recommendations_for(customer) == []


def test_cards_carry_links_and_prices_in_the_customer_language(store, purposes):
    product = ProductFactory(
        store=store,
        name="Kubek",
        price=Decimal("1299.5"),
        currency="PLN",
        url="https://sklep.pl/p/kubek",
        image_url="https://cdn.sklep.pl/kubek.jpg",
    )
    buy(CustomerFactory(), product)
    assert recommendations_for(CustomerFactory(language="pl")) == [
        Recommendation(
            name="Kubek",
            price="1 299,50 zł",
            url="https://sklep.pl/p/kubek",
            image_url="https://cdn.sklep.pl/kubek.jpg",
        )
    ]
    assert recommendations_for(CustomerFactory(language="en"))[0].price == (
        "1,299.50 zł"
    )


@pytest.mark.parametrize(
    ("amount", "currency", "language", "expected"),
    [
        ("49.99", "PLN", "pl", "49,99 zł"),
        ("49.99", "PLN", "en", "49.99 zł"),
        ("12.5", "EUR", "en", "€12.50"),
        ("12.5", "EUR", "pl", "12,50 €"),
        ("1000", "USD", "en", "$1,000.00"),
        ("5", "GBP", "en", "£5.00"),
        ("1234567.891", "CZK", "pl", "1 234 567,89 CZK"),
        ("0", "SEK", "en", "0.00 SEK"),
    ],
)
def test_price_format(amount, currency, language, expected):
    assert price_format(Decimal(amount), currency, language=language) == expected
