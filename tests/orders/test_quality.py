"""The orders app's data quality check: orders without a customer."""

import pytest
from django.urls import reverse
from django.utils import timezone

from customers.models import Customer
from customers.quality import quality_check, quality_scan
from tests.factories.customers import CustomerFactory, CustomerIdentityFactory
from tests.factories.orders import OrderFactory

pytestmark = pytest.mark.django_db


def test_orders_of_nobody_and_of_merged_away_records_are_listed():
    nobody = CustomerFactory(email=None, phone="", first_name="Gość", last_name="")
    guest_order = OrderFactory(customer=nobody)
    known = CustomerFactory(email=None, phone="")
    CustomerIdentityFactory(customer=known)
    OrderFactory(customer=known)  # the shop knows them by their id
    OrderFactory(customer=CustomerFactory())
    erased = CustomerFactory(email=None, phone="", erased_at=timezone.now())
    OrderFactory(customer=erased)  # kept for accounting on purpose
    survivor = CustomerFactory()
    merged = CustomerFactory()
    left_behind = OrderFactory(customer=merged)
    Customer.objects.filter(pk=merged.pk).update(merged_into=survivor)

    scan = quality_scan()

    check = quality_check("orders-without-customer")
    assert {order.pk for order in check.found()} == {guest_order.pk, left_behind.pk}
    assert scan.counts["orders-without-customer"] == 2


def test_the_list_links_to_each_order(client, make_staff):
    order = OrderFactory(customer=CustomerFactory(email=None, phone=""))
    quality_scan()
    client.force_login(make_staff("Manager"))

    page = client.get(reverse("quality:list", args=["orders-without-customer"]))

    assert page.status_code == 200
    assert reverse("orders:detail", args=[order.pk]).encode() in page.content
    assert order.number.encode() in page.content


def test_the_csv_is_for_those_who_may_export_orders(client, make_staff):
    order = OrderFactory(customer=CustomerFactory(email=None, phone=""))
    quality_scan()
    url = reverse("quality:export", args=["orders-without-customer"])

    client.force_login(make_staff("Data protection officer"))
    assert client.get(url).status_code == 403
    client.force_login(make_staff("Manager"))
    response = client.get(url)
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    assert text.splitlines()[0].startswith("number,placed_at,status")
    assert order.number in text
