from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from customers.models import AttributeDefinition, Customer
from customers.roles import ROLES
from customers.views import CustomerListView
from orders.models import Order, OrderLine
from tests.factories.customers import (
    AddressFactory,
    CustomerFactory,
    CustomerIdentityFactory,
    StoreFactory,
    TagFactory,
)
from tests.factories.orders import OrderFactory
from tests.staff import app_device, totp_code

NBSP = "\u00a0"
LIST = reverse("customers:list")


@pytest.fixture
def support(client, make_staff):
    user = make_staff("Support")
    client.force_login(user)
    return user


def detail_url(customer):
    return reverse("customers:detail", args=[customer.pk])


# ---------- Access ----------


def test_home_resolves_and_leads_to_the_customer_list(client, support):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response.url == LIST


def test_login_page_renders_and_signs_in(client, make_staff):
    make_staff("Support", username="anna")
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert b'name="username"' in page.content
    device = app_device(User.objects.get(username="anna"))
    response = client.post(
        reverse("login"), {"username": "anna", "password": "test-pass-123"}, follow=True
    )
    # The password signs in half way: the code from the app completes it.
    assert response.redirect_chain[-1][0] == reverse("accounts:second-factor")
    response = client.post(
        reverse("accounts:second-factor"), {"code": totp_code(device)}, follow=True
    )
    assert response.redirect_chain[-1][0] == LIST
    assert response.context["user"].username == "anna"


def test_logout_is_a_post_and_returns_to_login(client, support):
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert response.url == reverse("login")
    assert client.get(LIST).status_code == 302


@pytest.mark.parametrize("name", ["customers:list", "customers:detail"])
def test_anonymous_users_are_sent_to_login(client, customer, name):
    url = reverse(name, args=[customer.pk] if name.endswith("detail") else [])
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login") + "?next=")


@pytest.mark.parametrize("role", ROLES)
def test_every_role_sees_customer_pages(client, make_staff, customer, role):
    client.force_login(make_staff(role))
    assert client.get(LIST).status_code == 200
    assert client.get(detail_url(customer)).status_code == 200


@pytest.mark.parametrize("name", ["customers:list", "customers:detail"])
def test_staff_without_a_role_get_403_in_the_layout(client, make_staff, customer, name):
    client.force_login(make_staff())
    url = reverse(name, args=[customer.pk] if name.endswith("detail") else [])
    response = client.get(url)
    assert response.status_code == 403
    content = response.content.decode()
    assert "Kartoteka" in content
    assert 'action="/logout/"' in content


def test_missing_customer_is_a_404_in_the_layout(client, support):
    response = client.get(reverse("customers:detail", args=[999999]))
    assert response.status_code == 404
    assert b"404" in response.content
    assert b'class="topbar"' in response.content


def test_edit_link_only_for_users_who_may_change(client, make_staff, customer):
    client.force_login(make_staff("Marketing"))
    assert b"/change/" not in client.get(detail_url(customer)).content


# ---------- Search ----------


@pytest.mark.parametrize(
    "query", ["+48 601 234 567", "601234567", "0048601234567", "601-234-567"]
)
def test_search_by_phone_in_any_format_goes_to_the_customer(client, support, query):
    wanted = CustomerFactory(phone="+48601234567")
    CustomerFactory(phone="+48501000111")
    response = client.get(LIST, {"q": query})
    assert response.status_code == 302
    assert response.url == detail_url(wanted)


def test_search_by_email_goes_to_the_customer(client, support):
    wanted = CustomerFactory(email="Jan.Kowalski@example.pl")
    CustomerFactory(email="ktos@example.pl")
    response = client.get(LIST, {"q": "jan.kowalski@EXAMPLE.pl"})
    assert response.url == detail_url(wanted)


def test_search_by_name_lists_every_match(client, support):
    first = CustomerFactory(first_name="Anna", last_name="Kowalska")
    second = CustomerFactory(first_name="Piotr", last_name="Kowalski")
    CustomerFactory(first_name="Ewa", last_name="Nowak")
    response = client.get(LIST, {"q": "kowal"})
    assert response.status_code == 200
    assert {c.pk for c in response.context["customers"]} == {first.pk, second.pk}


def test_search_by_order_number_goes_to_the_order(client, support):
    order = OrderFactory(number="ZAM/2024/777")
    OrderFactory(number="ZAM/2024/778")
    response = client.get(LIST, {"q": "zam/2024/777"})
    assert response.url == reverse("orders:detail", args=[order.pk])


def test_search_with_filters_stays_on_the_list(client, support):
    wanted = CustomerFactory(phone="+48601234567")
    response = client.get(LIST, {"q": "601234567", "status": "lead"})
    assert response.status_code == 200
    assert [c.pk for c in response.context["customers"]] == [wanted.pk]


def test_search_without_a_match_shows_an_empty_list(client, support):
    CustomerFactory()
    response = client.get(LIST, {"q": "nikogo-takiego"})
    assert response.status_code == 200
    assert list(response.context["customers"]) == []


def test_header_search_box_submits_to_the_customer_list(client, support):
    content = client.get(LIST).content.decode()
    assert f'role="search" action="{LIST}" method="get"' in content
    assert 'id="global-search" type="search" name="q"' in content


# ---------- Filters and ordering ----------


def listed(client, **params):
    response = client.get(LIST, params)
    assert response.status_code == 200
    return {c.pk for c in response.context["customers"]}


def test_filter_by_status_store_tag_and_language(client, support):
    store = StoreFactory(code="allegro")
    tag = TagFactory(name="VIP")
    buyer = CustomerFactory(status=Customer.Status.BUYER, language="en")
    lead = CustomerFactory(status=Customer.Status.LEAD)
    CustomerIdentityFactory(customer=lead, store=store)
    lead.tags.add(tag)

    assert listed(client, status="buyer") == {buyer.pk}
    assert listed(client, store=store.pk) == {lead.pk}
    assert listed(client, tag=tag.pk) == {lead.pk}
    assert listed(client, language="en") == {buyer.pk}


def test_filter_created_between(client, support):
    old = CustomerFactory()
    new = CustomerFactory()
    Customer.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - timedelta(days=40)
    )
    today = timezone.localdate()
    since = (today - timedelta(days=7)).isoformat()
    assert listed(client, created_after=since) == {new.pk}
    until = (today - timedelta(days=30)).isoformat()
    assert listed(client, created_before=until) == {old.pk}


def test_ordering_by_name(client, support):
    b = CustomerFactory(last_name="Bąk")
    a = CustomerFactory(last_name="Adamski")
    c = CustomerFactory(last_name="Cieślak")
    response = client.get(LIST, {"o": "name"})
    assert [x.pk for x in response.context["customers"]] == [a.pk, b.pk, c.pk]
    response = client.get(LIST, {"o": "-name"})
    assert [x.pk for x in response.context["customers"]] == [c.pk, b.pk, a.pk]


def test_list_shows_formatted_phone_and_status(client, make_staff):
    client.force_login(make_staff("Manager"))
    CustomerFactory(phone="+48601234567", status=Customer.Status.BUYER)
    content = client.get(LIST).content.decode()
    assert "601 234 567" in content  # as people write it
    assert "badge--buyer" in content


# ---------- Pagination ----------


def test_unfiltered_list_pages_without_count(client, support, monkeypatch):
    monkeypatch.setattr(CustomerListView, "per_page", 2)
    customers = CustomerFactory.create_batch(5)
    newest_first = [c.pk for c in reversed(customers)]
    with CaptureQueriesContext(connection) as queries:
        response = client.get(LIST)
    assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)
    page = response.context["page"]
    assert [c.pk for c in page] == newest_first[:2]
    assert page.has_next
    assert not page.has_previous
    assert "page=2" in response.content.decode()

    last = client.get(LIST, {"page": 3}).context["page"]
    assert [c.pk for c in last] == newest_first[4:]
    assert not last.has_next
    assert last.known_total == 5


def test_filtered_list_pages_without_count(client, support, monkeypatch):
    monkeypatch.setattr(CustomerListView, "per_page", 2)
    CustomerFactory.create_batch(3, status=Customer.Status.BUYER)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(LIST, {"status": "buyer", "page": "2"})
    assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)
    assert len(response.context["page"]) == 1


def test_junk_page_number_means_the_first_page(client, support):
    CustomerFactory()
    assert client.get(LIST, {"page": "x"}).context["page"].number == 1


# ---------- Customer page ----------


def make_orders(customer, store, count, lines=3):
    orders = OrderFactory.create_batch(count, customer=customer, store=store)
    OrderLine.objects.bulk_create(
        OrderLine(
            order=order,
            position=position,
            sku=f"SKU-{order.pk}-{position}",
            name=f"Produkt {position}",
            quantity=Decimal("1"),
            unit_price=Decimal("33.33"),
            total=Decimal("33.33"),
        )
        for order in orders
        for position in range(lines)
    )
    return orders


def count_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries.captured_queries), response


def test_customer_page_queries_do_not_grow_with_orders(client, support, store):
    small = CustomerFactory()
    make_orders(small, store, 1)
    big = CustomerFactory()
    make_orders(big, store, 200)
    for customer in (small, big):
        customer.tags.add(TagFactory())
        AddressFactory(customer=customer)
        CustomerIdentityFactory(customer=customer, store=store)

    small_count, _ = count_queries(client, detail_url(small))
    big_count, response = count_queries(client, detail_url(big))
    assert big_count == small_count
    # With the access log row, the consents section and the segments panel.
    assert big_count <= 22
    content = response.content.decode()
    assert content.count('class="orderblock"') == 200
    assert content.count(">Produkt 2</td>") == 200


def test_customer_page_shows_profile_addresses_identities_and_tags(
    client, support, store
):
    customer = CustomerFactory(
        first_name="Zofia",
        last_name="Wiśniewska",
        phone="+48601234567",
        company="Wiśnia sp. z o.o.",
        nip="5260250274",
        acquisition_source="google",
        acquisition_campaign="wiosna-2025",
        last_browser="Firefox",
        preferred_channels=["email", "sms"],
    )
    customer.tags.add(TagFactory(name="Hurt", color="#dc2626"))
    AddressFactory(
        customer=customer, street="ul. Długa 5", city="Gdańsk", postcode="80-001"
    )
    CustomerIdentityFactory(customer=customer, store=store, external_id="SHOP-42")
    content = client.get(detail_url(customer)).content.decode()
    for text in (
        "Zofia",
        "Wiśniewska",
        "601 234 567",
        "5260250274",
        "google",
        "wiosna-2025",
        "Firefox",
        "ul. Długa 5",
        "80-001 Gdańsk",
        "SHOP-42",
        "Sklep Główny",
        "Hurt",
        'data-chip-color="#dc2626"',
    ):
        assert text in content, text


def test_customer_page_money_and_lifetime_figures(client, support, store):
    customer = CustomerFactory()
    OrderFactory(
        customer=customer, store=store, total=Decimal("1234.56"), currency="PLN"
    )
    OrderFactory(
        customer=customer, store=store, total=Decimal("765.44"), currency="PLN"
    )
    OrderFactory(customer=customer, store=store, total=Decimal("10.00"), currency="EUR")
    OrderFactory(
        customer=customer,
        store=store,
        total=Decimal("5000.00"),
        currency="PLN",
        status=Order.Status.CANCELLED,
    )
    response = client.get(detail_url(customer))
    summary = response.context["summary"]
    assert summary["count"] == 4
    revenue = {row["currency"]: row for row in summary["revenue"]}
    assert revenue["PLN"]["revenue"] == Decimal("2000.00")
    assert revenue["PLN"]["average"] == Decimal("1000.00")
    assert revenue["EUR"]["revenue"] == Decimal("10.00")
    content = response.content.decode()
    assert f"2{NBSP}000,00{NBSP}zł" in content
    assert f"1{NBSP}234,56{NBSP}zł" in content
    assert f"10,00{NBSP}EUR" in content


def test_customer_page_shows_active_attributes_with_labels(client, support):
    AttributeDefinition.objects.create(
        code="newsletter_vip", label="Klient VIP", kind=AttributeDefinition.Kind.BOOLEAN
    )
    AttributeDefinition.objects.create(
        code="retired", label="Stary atrybut", kind="text", is_active=False
    )
    customer = CustomerFactory(
        attributes={
            "interests": ["sport", "moda"],
            "profession": "lekarka",
            "newsletter_vip": True,
            "retired": "ukryte",
        }
    )
    content = client.get(detail_url(customer)).content.decode()
    assert "Zainteresowania" in content
    assert "sport, moda" in content
    assert "Zawód" in content
    assert "lekarka" in content
    assert "Klient VIP" in content
    assert "<dd>Tak</dd>" in content
    assert "Stary atrybut" not in content
    assert "ukryte" not in content


def test_customer_page_links_orders_for_users_who_may_see_them(client, support, store):
    customer = CustomerFactory()
    order = OrderFactory(customer=customer, store=store, number="ZAM/1")
    content = client.get(detail_url(customer)).content.decode()
    assert reverse("orders:detail", args=[order.pk]) in content


# ---------- Language ----------


def test_polish_by_default_and_english_after_switching(client, support):
    content = client.get(LIST).content.decode()
    assert '<html lang="pl">' in content
    assert "<h1>Klienci</h1>" in content
    assert "Szukaj" in content

    response = client.post(reverse("set_language"), {"language": "en", "next": LIST})
    assert response.status_code == 302
    content = client.get(LIST).content.decode()
    assert '<html lang="en">' in content
    assert "<h1>Customers</h1>" in content
    assert "Search" in content


def test_money_is_formatted_for_english_too(client, support, store):
    customer = CustomerFactory()
    OrderFactory(customer=customer, store=store, total=Decimal("1234.56"))
    client.post(reverse("set_language"), {"language": "en", "next": LIST})
    content = client.get(detail_url(customer)).content.decode()
    assert f"1,234.56{NBSP}PLN" in content


def test_polish_even_for_an_english_browser_until_the_user_switches(client, make_staff):
    client.force_login(make_staff("Support"))
    response = client.get(reverse("customers:list"), HTTP_ACCEPT_LANGUAGE="en-US,en")
    assert response["Content-Language"] == "pl"
    client.post(reverse("set_language"), {"language": "en", "next": "/"})
    response = client.get(reverse("customers:list"), HTTP_ACCEPT_LANGUAGE="pl")
    assert response["Content-Language"] == "en"
