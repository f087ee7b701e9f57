import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from customers import roles
from customers.models import AttributeDefinition, Customer
from customers.paginators import EstimatedCountPaginator
from tests.factories.customers import (
    AddressFactory,
    CustomerFactory,
    CustomerIdentityFactory,
    TagFactory,
)
from tests.factories.orders import OrderFactory

CHANGELIST = reverse("admin:customers_customer_changelist")
VALID_NIP = "5260001246"  # checksum-valid


def change_url(customer):
    return reverse("admin:customers_customer_change", args=[customer.pk])


def management(prefix, total=0, initial=0):
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def change_data(customer, **overrides):
    """POST data for the customer change form, as the browser would send it."""
    data = {
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "email": customer.email or "",
        "phone": customer.phone,
        "birth_date": "",
        "gender": customer.gender,
        "language": customer.language,
        "company": customer.company,
        "nip": customer.nip,
        "acquisition_source": "",
        "acquisition_medium": "",
        "acquisition_campaign": "",
        "acquisition_keyword": "",
        **management("addresses"),
        **management("identities"),
        **management("orders"),
    }
    data.update(overrides)
    return data


def count_queries(captured):
    return [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]


@pytest.fixture
def customers_with_orders(db):
    customers = CustomerFactory.create_batch(5)
    for customer in customers:
        OrderFactory(customer=customer)
        CustomerIdentityFactory(customer=customer)
    return customers


@pytest.fixture
def jan(db):
    customer = CustomerFactory(
        first_name="Jan",
        last_name="Brzęczyszczykiewicz",
        email="jan.b@example.pl",
        phone="+48601234567",
        company="Chrząszcz sp. z o.o.",
    )
    OrderFactory(customer=customer, number="ZAM/2024/0042", external_id="shop-42")
    return customer


# --- Changelist and search ---------------------------------------------------------


def test_changelist_loads_with_bounded_queries(
    admin_client, customers_with_orders, django_assert_max_num_queries
):
    CustomerFactory.create_batch(20)
    TagFactory.create_batch(3)
    with django_assert_max_num_queries(12):
        response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 25


def test_changelist_shows_phone_for_people(admin_client, jan):
    response = admin_client.get(CHANGELIST)
    assert "601 234 567" in response.content.decode()


@pytest.mark.parametrize(
    "query",
    [
        "jan.b@example.pl",
        "JAN.B@EXAMPLE.PL",
        "+48 601 234 567",
        "601234567",
        "0048601234567",
        "Brzęczyszczykiewicz",
        "jan brzęczyszczykiewicz",
        "Chrząszcz",
        "ZAM/2024/0042",
        "zam/2024/0042",
    ],
)
def test_search_finds_customer(admin_client, jan, customers_with_orders, query):
    response = admin_client.get(CHANGELIST, {"q": query})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [jan]


def test_search_without_match_is_empty(admin_client, jan):
    response = admin_client.get(CHANGELIST, {"q": "nobody-like-this"})
    assert list(response.context["cl"].result_list) == []


@pytest.mark.parametrize(
    "params",
    [
        {"status__exact": "lead"},
        {"gender__exact": "female"},
        {"language__exact": "pl"},
        {"created_at__gte": "2020-01-01 00:00:00+01:00"},
    ],
)
def test_changelist_filters(admin_client, customers_with_orders, params):
    response = admin_client.get(CHANGELIST, params)
    # An unknown filter would redirect to ?e=1.
    assert response.status_code == 200
    assert response.context["cl"].has_filters


def test_store_and_tag_filters(admin_client, jan, customers_with_orders):
    tag = TagFactory(name="VIP")
    jan.tags.add(tag)
    identity = CustomerIdentityFactory(customer=jan)
    response = admin_client.get(CHANGELIST, {"tag": tag.pk})
    assert list(response.context["cl"].result_list) == [jan]
    response = admin_client.get(CHANGELIST, {"store": identity.store.pk})
    assert list(response.context["cl"].result_list) == [jan]


# --- No full COUNT(*) on a big table -------------------------------------------------


def test_unfiltered_changelist_never_counts_the_whole_table(
    admin_client, customers_with_orders
):
    # The planner's size of the table as it is now (an earlier test's ANALYZE of
    # thousands of rows outlives its rollback).
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Customer._meta.db_table}")
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    counts = count_queries(captured)
    # Small table: a count, but one that stops at the limit.
    assert counts
    assert all("LIMIT" in sql.upper() for sql in counts), counts


def test_unfiltered_changelist_uses_planner_estimate_on_big_table(
    admin_client, customers_with_orders, monkeypatch
):
    # Pretend five rows are a big table; ANALYZE fills pg_class.reltuples.
    monkeypatch.setattr(EstimatedCountPaginator, "count_limit", 2)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Customer._meta.db_table}")
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    assert count_queries(captured) == []
    assert any("reltuples" in q["sql"] for q in captured.captured_queries)
    assert response.context["cl"].result_count == 5


def test_filtered_count_is_capped(customers_with_orders, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "count_limit", 2)
    paginator = EstimatedCountPaginator(Customer.objects.filter(status="lead"), 50)
    assert paginator.count == 3


def test_filtered_count_is_exact_below_limit(customers_with_orders):
    paginator = EstimatedCountPaginator(Customer.objects.filter(status="lead"), 2)
    assert paginator.count == 5
    assert paginator.num_pages == 3


# --- Change form: normalisation and validation -----------------------------------


def test_change_page_renders_attribute_fields(admin_client, customer):
    response = admin_client.get(change_url(customer))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="attribute__education"' in html
    assert 'name="attribute__profession"' in html
    # Multiple choice: one checkbox per choice.
    assert html.count('name="attribute__interests"') == 10
    assert 'name="attributes"' not in html


def test_change_form_normalises_and_saves(admin_client, customer):
    data = change_data(
        customer,
        email="Nowy.Adres@Example.PL ",
        phone="0048 601 234 999",
        nip="PL 526-000-12-46",
        preferred_channels=["email", "sms"],
        attribute__education="wyższe",
        attribute__interests=["sport", "moda"],
        attribute__profession="  Stolarz ",
        **management("addresses", total=1),
        **{
            "addresses-0-kind": "billing",
            "addresses-0-is_default": "on",
            "addresses-0-street": "ul. Długa 1",
            "addresses-0-postcode": "00950",
            "addresses-0-city": "Warszawa",
            "addresses-0-country": "PL",
            "addresses-0-phone": "601 234 998",
            "addresses-0-customer": str(customer.pk),
        },
    )
    response = admin_client.post(change_url(customer), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    customer.refresh_from_db()
    assert customer.email == "Nowy.Adres@example.pl"
    assert customer.phone == "+48601234999"
    assert customer.nip == VALID_NIP
    assert customer.preferred_channels == ["email", "sms"]
    assert customer.attributes == {
        "education": "wyższe",
        "interests": ["sport", "moda"],
        "profession": "Stolarz",
    }
    address = customer.addresses.get()
    assert address.postcode == "00-950"
    assert address.phone == "+48601234998"


def test_untouched_attributes_are_kept(admin_client, customer):
    customer.attributes = {
        "education": "doktorat",  # no longer one of the choices
        "legacy_code": 7,  # no definition at all
    }
    customer.save()
    response = admin_client.get(change_url(customer))
    assert "doktorat" in response.content.decode()
    data = change_data(customer, first_name="Zmiana", attribute__education="doktorat")
    response = admin_client.post(change_url(customer), data)
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.first_name == "Zmiana"
    assert customer.attributes == {"education": "doktorat", "legacy_code": 7}


def test_clearing_an_attribute_removes_it(admin_client, customer):
    customer.attributes = {"education": "średnie", "profession": "Stolarz"}
    customer.save()
    data = change_data(
        customer, attribute__education="średnie", attribute__profession=""
    )
    response = admin_client.post(change_url(customer), data)
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.attributes == {"education": "średnie"}


def test_typed_attributes_are_stored_as_json(admin_client, customer):
    AttributeDefinition.objects.create(code="children", label="Dzieci", kind="number")
    AttributeDefinition.objects.create(code="height", label="Wzrost", kind="number")
    AttributeDefinition.objects.create(code="wedding", label="Ślub", kind="date")
    AttributeDefinition.objects.create(code="has_dog", label="Pies", kind="boolean")
    AttributeDefinition.objects.create(
        code="retired", label="Stare", kind="text", is_active=False
    )
    response = admin_client.get(change_url(customer))
    html = response.content.decode()
    assert 'name="attribute__children"' in html
    assert 'name="attribute__retired"' not in html
    data = change_data(
        customer,
        attribute__children="2",
        attribute__height="1,75",
        attribute__wedding="2015-06-20",
        attribute__has_dog="true",
    )
    response = admin_client.post(change_url(customer), data)
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.attributes == {
        "children": "2",
        "height": "1.75",
        "wedding": "2015-06-20",
        "has_dog": True,
    }
    response = admin_client.get(change_url(customer))
    assert 'value="1,75"' in response.content.decode()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("phone", "12345"),
        ("phone", "+48 601 234 56a"),
        ("nip", "5260001247"),
        ("email", "not-an-email"),
        ("attribute__education", "doktorat"),
        ("attribute__interests", ["sport", "bungee"]),
    ],
)
def test_change_form_rejects_bad_value_with_field_error(
    admin_client, customer, field, value
):
    before = Customer.objects.values().get(pk=customer.pk)
    response = admin_client.post(
        change_url(customer),
        change_data(customer, first_name="Zmiana", **{field: value}),
    )
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert list(form.errors) == [field]
    assert Customer.objects.values().get(pk=customer.pk) == before


def test_change_form_rejects_number_attribute(admin_client, customer):
    AttributeDefinition.objects.create(code="children", label="Dzieci", kind="number")
    response = admin_client.post(
        change_url(customer), change_data(customer, attribute__children="dwoje")
    )
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["attribute__children"]
    customer.refresh_from_db()
    assert customer.attributes == {}


def test_change_form_rejects_duplicate_email(admin_client, customer):
    other = CustomerFactory(email="zajety@example.pl")
    response = admin_client.post(
        change_url(customer), change_data(customer, email="ZAJETY@example.pl")
    )
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["email"]
    customer.refresh_from_db()
    assert customer.email != other.email


def test_change_form_rejects_bad_postcode(admin_client, customer):
    address = AddressFactory(customer=customer, postcode="00-950")
    data = change_data(
        customer,
        first_name="Zmiana",
        **management("addresses", total=1, initial=1),
        **{
            "addresses-0-id": str(address.pk),
            "addresses-0-customer": str(customer.pk),
            "addresses-0-kind": address.kind,
            "addresses-0-is_default": "on",
            "addresses-0-street": address.street,
            "addresses-0-postcode": "0095",
            "addresses-0-city": address.city,
            "addresses-0-country": "PL",
        },
    )
    response = admin_client.post(change_url(customer), data)
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    assert formset.errors[0].keys() == {"postcode"}
    address.refresh_from_db()
    customer.refresh_from_db()
    assert address.postcode == "00-950"
    assert customer.first_name != "Zmiana"


def test_add_customer(admin_client):
    data = change_data(
        Customer(language="pl"),
        email="nowa@example.pl",
        phone="+48 601 234 567",
        attribute__education="średnie",
    )
    response = admin_client.post(reverse("admin:customers_customer_add"), data)
    assert response.status_code == 302
    customer = Customer.objects.get(email="nowa@example.pl")
    assert customer.phone == "+48601234567"
    assert customer.attributes == {"education": "średnie"}


# --- Other models -------------------------------------------------------------------


@pytest.mark.parametrize("model", ["store", "tag", "attributedefinition"])
def test_small_changelists_load(admin_client, store, model):
    TagFactory()
    response = admin_client.get(reverse(f"admin:customers_{model}_changelist"))
    assert response.status_code == 200


def test_attribute_definition_choice_needs_choices(admin_client):
    url = reverse("admin:customers_attributedefinition_add")
    response = admin_client.post(
        url,
        {"label": "Kolor", "code": "colour", "kind": "choice", "choices": "",
         "position": "0", "is_active": "on"},
    )  # fmt: skip
    assert response.status_code == 200
    assert "choices" in response.context["adminform"].form.errors
    assert not AttributeDefinition.objects.filter(code="colour").exists()


def test_attribute_definition_code_is_read_only_once_created(admin_client):
    definition = AttributeDefinition.objects.get(code="education")
    url = reverse("admin:customers_attributedefinition_change", args=[definition.pk])
    response = admin_client.get(url)
    assert 'name="code"' not in response.content.decode()


def test_tag_autocomplete_on_customer_form(admin_client):
    TagFactory(name="VIP")
    TagFactory(name="Hurt")
    response = admin_client.get(
        reverse("admin:autocomplete"),
        {
            "term": "vi",
            "app_label": "customers",
            "model_name": "customer",
            "field_name": "tags",
        },
    )
    assert response.status_code == 200
    assert [r["text"] for r in response.json()["results"]] == ["VIP"]


# --- Roles --------------------------------------------------------------------------


@pytest.fixture
def login(client, make_staff):
    def as_role(*role_names):
        user = make_staff(*role_names)
        client.force_login(user)
        return client

    return as_role


def test_support_can_open_customer_but_not_add_product_or_attribute(login, customer):
    client = login(roles.SUPPORT)
    assert client.get(CHANGELIST).status_code == 200
    assert client.get(change_url(customer)).status_code == 200
    assert client.get(reverse("admin:orders_product_add")).status_code == 403
    url = reverse("admin:customers_attributedefinition_add")
    assert client.get(url).status_code == 403
    assert client.post(
        url, {"label": "X", "code": "x", "kind": "text"}
    ).status_code == (403)


def test_support_can_change_customer(login, customer):
    client = login(roles.SUPPORT)
    response = client.post(
        change_url(customer), change_data(customer, phone="601 999 888")
    )
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.phone == "+48601999888"


def test_marketing_sees_customer_read_only(login, customer):
    customer.attributes = {"education": "wyższe", "interests": ["sport", "moda"]}
    customer.save()
    client = login(roles.MARKETING)
    response = client.get(change_url(customer))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="first_name"' not in html
    assert 'name="attribute__education"' not in html
    assert "wyższe" in html
    assert "sport, moda" in html
    response = client.post(change_url(customer), change_data(customer, first_name="X"))
    assert response.status_code == 403
    customer.refresh_from_db()
    assert customer.first_name != "X"


def test_manager_can_add_attribute_definition(login):
    client = login(roles.MANAGER)
    response = client.post(
        reverse("admin:customers_attributedefinition_add"),
        {"label": "Rozmiar buta", "code": "shoe_size", "kind": "number",
         "choices": "", "position": "10", "is_active": "on"},
    )  # fmt: skip
    assert response.status_code == 302
    assert AttributeDefinition.objects.filter(code="shoe_size", kind="number").exists()


def test_staff_without_role_cannot_open_customers(login, customer):
    client = login()
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(change_url(customer)).status_code == 403


def test_data_protection_officer_cannot_view_products(login):
    client = login(roles.DATA_PROTECTION_OFFICER)
    assert client.get(reverse("admin:orders_product_changelist")).status_code == 403
    assert client.get(CHANGELIST).status_code == 200


def test_no_per_row_queries_on_change_page(
    admin_client, customer, django_assert_max_num_queries
):
    for _ in range(5):
        AddressFactory(customer=customer, is_default=False)
        CustomerIdentityFactory(customer=customer)
        OrderFactory(customer=customer)
    admin_client.get(change_url(customer))  # warms the content type cache
    with CaptureQueriesContext(connection) as few:
        admin_client.get(change_url(customer))
    for _ in range(10):
        AddressFactory(customer=customer, is_default=False)
        CustomerIdentityFactory(customer=customer)
        OrderFactory(customer=customer)
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(change_url(customer))
    assert response.status_code == 200
    few_sql = [q["sql"] for q in few.captured_queries]
    many_sql = [q["sql"] for q in many.captured_queries]
    assert len(many_sql) == len(few_sql), "\n".join(many_sql)
    assert re.search(r"ZAM/\d+", response.content.decode())
