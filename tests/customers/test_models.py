"""The database itself refuses bad data, whatever path writes it."""

import pytest
from django.db import IntegrityError

from customers.models import Address, Customer, CustomerIdentity
from tests.factories.customers import AddressFactory, CustomerFactory
from tests.factories.orders import OrderFactory

pytestmark = pytest.mark.django_db


def test_email_unique_case_insensitively():
    CustomerFactory(email="Ala@example.pl")
    with pytest.raises(IntegrityError):
        Customer.objects.create(email="ALA@EXAMPLE.PL")


def test_many_customers_without_email():
    Customer.objects.create(email=None, phone="+48601000001")
    Customer.objects.create(email=None, phone="+48601000002")
    assert Customer.objects.filter(email__isnull=True).count() == 2


@pytest.mark.parametrize("phone", ["601234567", "+48 601 234 567", "+0123"])
def test_phone_must_be_e164(phone):
    with pytest.raises(IntegrityError):
        Customer.objects.create(email="p@example.pl", phone=phone)


def test_identity_unique_per_store(store):
    customer = CustomerFactory()
    CustomerIdentity.objects.create(store=store, external_id="1", customer=customer)
    with pytest.raises(IntegrityError):
        CustomerIdentity.objects.create(store=store, external_id="1", customer=customer)


def test_polish_postcode_enforced_in_database():
    customer = CustomerFactory()
    with pytest.raises(IntegrityError):
        Address.objects.create(
            customer=customer,
            kind="billing",
            street="Długa 1",
            postcode="00950",
            city="Warszawa",
            country="PL",
        )


def test_foreign_postcode_free_form():
    address = AddressFactory(country="DE", postcode="10117", city="Berlin")
    assert address.pk


def test_one_default_address_per_kind():
    address = AddressFactory(kind="shipping", is_default=True)
    AddressFactory(customer=address.customer, kind="billing", is_default=True)
    with pytest.raises(IntegrityError):
        AddressFactory(customer=address.customer, kind="shipping", is_default=True)


def test_order_amounts_cannot_be_negative():
    with pytest.raises(IntegrityError):
        OrderFactory(total=-1)


def test_search_finds_by_phone_formats_name_and_order_number():
    customer = CustomerFactory(
        first_name="Grzegorz",
        last_name="Brzęczyszczykiewicz",
        phone="+48601234567",
        email="g.b@example.pl",
    )
    OrderFactory(customer=customer, number="ZAM/2026/0042")
    CustomerFactory()
    for query in [
        "601 234 567",
        "0048601234567",
        "+48601234567",
        "brzęczy",
        "grzegorz brzęczyszczykiewicz",
        "G.B@EXAMPLE",
        "zam/2026/0042",
    ]:
        assert list(Customer.objects.search(query)) == [customer], query
