"""Coupons: unique codes issued per delivery, redeemed by the orders that use them."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from campaigns import coupons
from campaigns.coupons import coupon_issue, coupons_redeem
from campaigns.models import Coupon, Delivery
from customers.importers.reading import open_csv
from orders.importers.orders import orders_import
from orders.models import Order
from orders.services import order_set_status, order_upsert
from segments.models import Segment
from tests.factories.campaigns import CampaignFactory, DeliveryFactory
from tests.factories.customers import CustomerFactory
from tests.factories.orders import OrderFactory

pytestmark = pytest.mark.django_db

UTC = dt.UTC
SENT = dt.datetime(2025, 5, 5, 8, 0, tzinfo=UTC)
CODE = re.compile(r"LATO-[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{8}")


@pytest.fixture
def campaign(purposes):
    return CampaignFactory(segment=Segment.objects.create(name="x", kind="static"))


@pytest.fixture
def delivery(campaign):
    return DeliveryFactory(campaign=campaign, status=Delivery.Status.SENT, sent_at=SENT)


def issue(delivery, **kwargs):
    return coupon_issue(
        delivery=delivery,
        prefix=kwargs.pop("prefix", "lato"),
        validity_days=kwargs.pop("validity_days", 14),
        now=kwargs.pop("now", SENT),
    )


def upsert(store, customer, external_id, placed_at, *, code, status="paid", **extra):
    order, _created = order_upsert(
        store=store,
        external_id=external_id,
        placed_at=placed_at,
        customer=customer,
        status=status,
        coupon_code=code,
        lines=[{"name": "Karma", "quantity": 1, "unit_price": "80"}],
        **extra,
    )
    return order


def state(coupon):
    coupon.refresh_from_db()
    return coupon.redeemed_at, coupon.order_id


# --- Issuing ---------------------------------------------------------------------


def test_issue_gives_a_readable_unique_code_valid_from_sending(delivery):
    coupon = issue(delivery, prefix=" lato ", validity_days=14)

    assert CODE.fullmatch(coupon.code)
    assert (coupon.customer, coupon.delivery) == (delivery.customer, delivery)
    assert coupon.valid_from == SENT
    assert coupon.valid_until == SENT + dt.timedelta(days=14)
    assert (coupon.redeemed_at, coupon.order) == (None, None)


def test_issue_is_idempotent_per_delivery(delivery):
    first = issue(delivery)
    again = issue(delivery, prefix="INNY", validity_days=3, now=SENT.replace(day=9))

    assert again.pk == first.pk
    assert again.code == first.code
    assert Coupon.objects.count() == 1


def test_long_validity_up_to_ten_years(delivery, campaign):
    coupon = issue(delivery, validity_days=3650)
    assert coupon.valid_until - coupon.valid_from == dt.timedelta(days=3650)

    other = DeliveryFactory(campaign=campaign)
    with pytest.raises(ValidationError) as error:
        issue(other, validity_days=3651)
    assert error.value.error_dict["coupon_validity_days"][0].code == "invalid"
    with pytest.raises(ValidationError):
        issue(other, validity_days=0)


@pytest.mark.parametrize("prefix", ["", "  ", "-", "LATO 25", "ŻABA", "X" * 56])
def test_bad_prefix_is_refused(delivery, prefix):
    with pytest.raises(ValidationError) as error:
        issue(delivery, prefix=prefix)
    assert error.value.error_dict["coupon_prefix"][0].code == "invalid"
    assert not Coupon.objects.exists()


@pytest.mark.parametrize(
    ("prefix", "start"), [("lato-2025", "LATO-2025-"), ("-Lato-", "LATO-")]
)
def test_prefix_may_have_digits_and_hyphens(delivery, prefix, start):
    code = issue(delivery, prefix=prefix).code
    assert code.startswith(start)
    assert len(code) == len(start) + 8


def test_a_code_taken_is_drawn_again_in_the_same_transaction(
    delivery, campaign, monkeypatch
):
    taken = issue(delivery, prefix="X")
    draws = iter(taken.code.removeprefix("X-") + "ABCDEFGH")
    monkeypatch.setattr(coupons.secrets, "choice", lambda _alphabet: next(draws))

    other = DeliveryFactory(campaign=campaign)
    coupon = issue(other, prefix="x")

    # The clash rolled back to its savepoint only: the transaction goes on.
    assert coupon.code == "X-ABCDEFGH"
    assert Coupon.objects.count() == 2


def test_gives_up_after_a_few_clashes(delivery, campaign, monkeypatch):
    taken = issue(delivery, prefix="X")
    draws = iter(taken.code.removeprefix("X-") * coupons.ISSUE_ATTEMPTS)
    monkeypatch.setattr(coupons.secrets, "choice", lambda _alphabet: next(draws))
    with pytest.raises(IntegrityError):
        issue(DeliveryFactory(campaign=campaign), prefix="X")
    assert Coupon.objects.count() == 1  # and the database still answers


# --- Redeeming through the orders services ----------------------------------------


def test_order_with_the_code_redeems_it(delivery, store):
    coupon = issue(delivery)
    placed = SENT + dt.timedelta(days=2)

    # The shop may send the code in another case and with spaces.
    order = upsert(
        store, delivery.customer, "Z1", placed, code=f" {coupon.code.lower()} "
    )

    assert state(coupon) == (placed, order.pk)
    assert coupons_redeem(customer_ids=[delivery.customer_id]) == 0


def test_new_order_redeems_and_cancelling_it_gives_the_coupon_back(delivery, store):
    coupon = issue(delivery)
    first = upsert(
        store,
        delivery.customer,
        "Z1",
        SENT + dt.timedelta(days=1),
        code=coupon.code,
        status="new",
    )
    assert state(coupon) == (first.placed_at, first.pk)

    order_set_status(order=first, status=Order.Status.CANCELLED)
    assert state(coupon) == (None, None)

    second = upsert(
        store, delivery.customer, "Z2", SENT + dt.timedelta(days=3), code=coupon.code
    )
    assert state(coupon) == (second.placed_at, second.pk)


def test_returned_order_releases_to_a_later_order_with_the_code(delivery, store):
    coupon = issue(delivery)
    first = upsert(
        store, delivery.customer, "Z1", SENT + dt.timedelta(days=1), code=coupon.code
    )
    second = upsert(
        store, delivery.customer, "Z2", SENT + dt.timedelta(days=4), code=coupon.code
    )
    assert state(coupon) == (first.placed_at, first.pk)  # the first use wins

    order_set_status(order=first, status=Order.Status.RETURNED)

    assert state(coupon) == (second.placed_at, second.pk)


def test_order_changing_its_code_gives_the_coupon_back(delivery, store):
    coupon = issue(delivery)
    upsert(
        store, delivery.customer, "Z1", SENT + dt.timedelta(days=1), code=coupon.code
    )
    upsert(store, delivery.customer, "Z1", SENT + dt.timedelta(days=1), code="INNY")
    assert state(coupon) == (None, None)


def test_code_used_outside_its_validity_is_not_redeemed(delivery, store):
    coupon = issue(delivery, validity_days=7)
    upsert(
        store, delivery.customer, "Z1", SENT - dt.timedelta(minutes=1), code=coupon.code
    )
    upsert(
        store,
        delivery.customer,
        "Z2",
        SENT + dt.timedelta(days=7, seconds=1),
        code=coupon.code,
    )
    assert state(coupon) == (None, None)

    last_moment = upsert(
        store, delivery.customer, "Z3", SENT + dt.timedelta(days=7), code=coupon.code
    )
    assert state(coupon) == (last_moment.placed_at, last_moment.pk)


def test_cancelled_order_does_not_redeem(delivery, store):
    coupon = issue(delivery)
    upsert(
        store,
        delivery.customer,
        "Z1",
        SENT + dt.timedelta(days=1),
        code=coupon.code,
        status="cancelled",
    )
    assert state(coupon) == (None, None)


def test_code_shared_with_someone_else_is_credited(delivery, store):
    coupon = issue(delivery)
    friend = CustomerFactory()

    order = upsert(store, friend, "Z1", SENT + dt.timedelta(days=1), code=coupon.code)

    assert state(coupon) == (order.placed_at, order.pk)
    assert coupon.customer == delivery.customer


def test_unknown_code_and_other_customers_change_nothing(delivery, store):
    coupon = issue(delivery)
    upsert(
        store, delivery.customer, "Z1", SENT + dt.timedelta(days=1), code="LATO-XXXX"
    )
    assert state(coupon) == (None, None)
    # An order that is already there but not among the customers named.
    OrderFactory(
        customer=delivery.customer,
        placed_at=SENT + dt.timedelta(days=1),
        coupon_code=coupon.code,
    )
    assert coupons_redeem(customer_ids=[CustomerFactory().pk]) == 0
    assert state(coupon) == (None, None)
    assert coupons_redeem(customer_ids=[delivery.customer_id, None]) == 1


def test_redeem_is_set_based_over_many_customers(campaign, django_assert_num_queries):
    issued = []
    for n in range(6):
        delivery = DeliveryFactory(campaign=campaign, status="sent", sent_at=SENT)
        coupon = issue(delivery)
        OrderFactory(
            customer=delivery.customer,
            placed_at=SENT + dt.timedelta(hours=n + 1),
            coupon_code=coupon.code if n % 2 == 0 else "",
        )
        issued.append(coupon)
    ids = [coupon.customer_id for coupon in issued]

    with django_assert_num_queries(2):
        assert coupons_redeem(customer_ids=ids) == 3

    assert [state(coupon)[0] is not None for coupon in issued] == [
        True,
        False,
        True,
        False,
        True,
        False,
    ]


# --- Redeeming through the orders import ------------------------------------------

GENERIC_HEADER = [
    "numer zamówienia",
    "data zamówienia",
    "status zamówienia",
    "waluta",
    "e-mail",
    "nazwa produktu",
    "ilość",
    "cena",
    "kod rabatowy",
]


def test_imported_orders_redeem_their_codes(tmp_path, store, campaign):
    ania = CustomerFactory(email="ania@example.pl")
    bartek = CustomerFactory(email="bartek@example.pl")
    coupon_a = issue(DeliveryFactory(campaign=campaign, customer=ania))
    coupon_b = issue(DeliveryFactory(campaign=campaign, customer=bartek))
    path = tmp_path / "orders.csv"
    path.write_text(
        ";".join(GENERIC_HEADER)
        + "\n"
        + f"Z/1;2025-05-06T10:00:00+02:00;opłacone;PLN;ania@example.pl;Karma;1;80,00;"
        f"{coupon_a.code.lower()}\n"
        + f"Z/2;2025-05-07T10:00:00+02:00;anulowane;PLN;bartek@example.pl;Karma;1;"
        f"80,00;{coupon_b.code}\n",
        encoding="utf-8",
    )

    result = orders_import(source=open_csv(path), store=store)

    assert result.errors == []
    assert result.created == 2
    order = Order.objects.get(external_id="Z/1")
    assert state(coupon_a) == (
        dt.datetime(2025, 5, 6, 8, 0, tzinfo=UTC),
        order.pk,
    )
    assert state(coupon_b) == (None, None)  # cancelled
    assert Decimal(order.total) == Decimal("80.00")
