"""Contacts in lists: masked for Support, in full for the roles that need them."""

import pytest
from django.urls import reverse

from customers.templatetags.formatting import email_masked, phone_masked
from tests.factories.customers import CustomerFactory

HTMX = {"HTTP_HX_REQUEST": "true"}
FULL_PHONE = "601 234 567"


@pytest.fixture
def kowalska(db):
    return CustomerFactory(
        last_name="Kowalska", email="anna.kowalska@example.pl", phone="+48601234567"
    )


def test_masks():
    assert phone_masked("+48601234567") == "••• ••• 567"
    assert phone_masked("") == ""
    assert email_masked("anna.kowalska@example.pl") == "a•••@example.pl"
    assert email_masked("") == ""
    assert email_masked(None) == ""


@pytest.mark.parametrize(
    ("role", "masked"),
    [
        ("Support", True),
        ("Marketing", False),
        ("Manager", False),
        ("Data protection officer", False),
    ],
)
def test_lists_mask_contacts_for_support_only(
    client, make_staff, kowalska, role, masked
):
    client.force_login(make_staff(role))

    listed = client.get(reverse("customers:list")).text
    found = client.get(reverse("customers:search"), {"q": "kowalska"}, **HTMX).text

    for page in (listed, found):
        assert ("••• ••• 567" in page) is masked
        assert (FULL_PHONE in page) is not masked
        assert ("anna.kowalska@example.pl" in page) is not masked


def test_support_sees_the_full_contacts_on_the_customer_page(
    client, make_staff, kowalska
):
    client.force_login(make_staff("Support"))

    page = client.get(reverse("customers:detail", args=[kowalska.pk])).text

    assert FULL_PHONE in page
    assert "anna.kowalska@example.pl" in page
