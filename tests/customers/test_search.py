"""The search box: ``Customer.objects.search`` and the live results under it."""

import re
import time

import pytest
from django.contrib.staticfiles import finders
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse

from customers import search_views
from customers.models import Customer
from customers.models.customer import search_document, search_fold
from customers.search_views import LIVE_SEARCH_LIMIT, within_budget
from tests.factories.customers import (
    AddressFactory,
    CustomerFactory,
    CustomerIdentityFactory,
    StoreFactory,
)
from tests.factories.orders import OrderFactory

SEARCH = reverse("customers:search")
LIST = reverse("customers:list")
HTMX = {"HTTP_HX_REQUEST": "true"}

pytestmark = pytest.mark.django_db


def found(query):
    return set(Customer.objects.search(query).values_list("pk", flat=True))


def person(first_name, last_name, **fields):
    return CustomerFactory(first_name=first_name, last_name=last_name, **fields)


@pytest.fixture
def support(client, make_staff):
    user = make_staff("Support")
    client.force_login(user)
    return user


@pytest.fixture
def jadwiga(db):
    return person(
        "Jadwiga",
        "Żółkiewska",
        email="j.zolkiewska@example.pl",
        phone="+48601234567",
    )


# ---------- What matches ----------


@pytest.mark.parametrize(
    "query", ["zolkiewska", "ŻÓŁKIEWSKA", "Żółk", "żółkiewska", "ZOLK", "jadwiga"]
)
def test_name_with_or_without_polish_letters(jadwiga, query):
    person("Jan", "Kowalski")
    assert found(query) == {jadwiga.pk}


def test_company_is_searched_too():
    wanted = person("Piotr", "Nowak", company="Łódzka Hurtownia Sp. z o.o.")
    person("Piotr", "Nowak")
    assert found("lodzka hurt") == {wanted.pk}


def test_two_words_narrow_the_search():
    anna_nowak = person("Anna", "Nowak")
    person("Anna", "Kowalska")
    person("Piotr", "Nowak")
    assert found("anna nowak") == {anna_nowak.pk}
    assert found("NOWAK anna") == {anna_nowak.pk}
    assert len(found("nowak")) == 2


def test_short_words_are_ignored_beside_longer_ones():
    anna_nowak = person("Anna", "Nowak")
    piotr_nowak = person("Piotr", "Nowak")
    person("Ewa", "Zielińska")
    # "an" cannot use the trigram index: only "nowak" decides.
    assert found("an nowak") == {anna_nowak.pk, piotr_nowak.pk}


@pytest.mark.parametrize("query", ["a", "an", "An Ew", "z"])
def test_a_query_of_short_words_only_matches_no_names(query):
    person("Anna", "Nowak")
    person("Ewa", "Zielińska", company="AN")
    assert found(query) == set()


def test_a_short_query_still_finds_an_order_number():
    order = OrderFactory(number="42")
    assert found("42") == {order.customer_id}
    assert found("#42") == {order.customer_id}


@pytest.mark.parametrize("query", ["#987001", "987001", "#987001 ", " 987001"])
def test_order_number_with_or_without_hash(query):
    order = OrderFactory(number="#987001")
    OrderFactory(number="#987002")
    assert found(query) == {order.customer_id}


@pytest.mark.parametrize("query", ["zam/2026/0042", "ZAM/2026/0042", "#Zam/2026/0042"])
def test_order_number_is_case_insensitive(query):
    order = OrderFactory(number="ZAM/2026/0042")
    OrderFactory(number="ZAM/2026/0043")
    assert found(query) == {order.customer_id}


def test_order_external_id():
    order = OrderFactory(external_id="WC-77001")
    OrderFactory(external_id="WC-77002")
    assert found("WC-77001") == {order.customer_id}
    assert found("wc-77001") == set()  # external ids are exact


def test_store_identity_external_id_in_any_store():
    first = CustomerIdentityFactory(store=StoreFactory(code="a"), external_id="7001")
    second = CustomerIdentityFactory(store=StoreFactory(code="b"), external_id="7001")
    CustomerIdentityFactory(external_id="7002")
    assert found("7001") == {first.customer_id, second.customer_id}


@pytest.mark.parametrize(
    "query",
    [
        "601 234 567",
        "+48 601-234-567",
        "0048601234567",
        "+48601234567",
        "(+48) 601 234 567",
        "601234567",
        "234567",  # the last six digits
        "601 234",
        "48601234",
    ],
)
def test_phone_in_any_format_and_partial_digits(jadwiga, query):
    person("Jan", "Kowalski", phone="+48501000111")
    assert found(query) == {jadwiga.pk}


def test_fewer_than_six_digits_do_not_match_phones(jadwiga):
    assert found("4567") == set()


def test_digits_are_not_looked_for_in_names_or_emails():
    # A phone-like query is a phone, order or id: not a piece of an email.
    person("Jan", "Kowalski", email="jan601234567@example.pl", phone="")
    assert found("601 234 567") == set()


@pytest.mark.parametrize(
    "query",
    [
        "j.zolkiewska@example.pl",
        "J.Zolkiewska@EXAMPLE.pl",
        "j.zolkiewska",
        "zolkiewska@exa",
        "@example.pl",
    ],
)
def test_email_whole_or_in_part(jadwiga, query):
    person("Jan", "Kowalski", email="jan@firma.pl")
    assert found(query) == {jadwiga.pk}


def test_a_customer_matching_in_many_ways_is_listed_once(jadwiga):
    # By name, by two orders' numbers and by an identity at once.
    store = StoreFactory(code="sklep")
    OrderFactory(customer=jadwiga, store=store, number="ZOLKIEWSKA")
    OrderFactory(customer=jadwiga, number="#zolkiewska")
    CustomerIdentityFactory(customer=jadwiga, store=store, external_id="zolkiewska")
    queryset = Customer.objects.search("zolkiewska")
    assert list(queryset.values_list("pk", flat=True)) == [jadwiga.pk]
    assert queryset.count() == 1


def test_like_wildcards_are_plain_characters():
    person("Anna", "Nowak")
    assert found("%%%") == set()
    assert found("___") == set()


def test_empty_query_leaves_the_queryset_alone():
    person("Anna", "Nowak")
    assert Customer.objects.search("  ").count() == 1


def test_search_keeps_other_filters_and_ordering(jadwiga):
    other = person("Jadwiga", "Żółkiewska", status=Customer.Status.BUYER)
    buyers = Customer.objects.buyers().search("zolkiewska").order_by("pk")
    assert list(buyers) == [other]


def test_name_search_uses_the_folded_trigram_index():
    # Enough rows for the planner to prefer the index on its own (below some 30,000
    # a sequential scan is estimated cheaper, rightly): copies of one customer with
    # other names and emails, made in SQL, which takes a second.
    template = person("Anna", "Nowak", email="wzor@example.pl")
    wanted = person("Jadwiga", "Żółkiewska")
    columns = [
        field.column
        for field in Customer._meta.concrete_fields
        if not field.primary_key
    ]
    generated = {
        "first_name": "(ARRAY['Anna','Maria','Piotr','Łukasz','Zofia'])[1 + n %% 5]",
        "last_name": "(ARRAY['Nowak','Wiśniewski','Wójcik','Dąbrowska'])[1 + n %% 4]",
        "email": "'masowy' || n || '@example.pl'",
    }
    select = ", ".join(generated.get(column, f't."{column}"') for column in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO customers_customer ({', '.join(columns)}) "  # noqa: S608
            f"SELECT {select} FROM customers_customer t, "
            "generate_series(1, 50000) AS n WHERE t.id = %s",
            [template.pk],
        )
        cursor.execute("ANALYZE customers_customer")
    for query in ["zolkiewska", "jadwiga żółk"]:
        queryset = Customer.objects.search(query).order_by()
        plan = queryset.explain()
        assert "customer_search_trgm" in plan, plan
        assert list(queryset.values_list("pk", flat=True)) == [wanted.pk]


# ---------- The live results endpoint ----------


def test_anonymous_users_are_sent_to_log_in(client, db):
    response = client.get(SEARCH, {"q": "anna"}, **HTMX)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_staff_without_the_permission_get_403(client, make_staff):
    client.force_login(make_staff())
    assert client.get(SEARCH, {"q": "anna"}, **HTMX).status_code == 403


def test_support_sees_results_with_links_to_the_customer(client, support, jadwiga):
    AddressFactory(customer=jadwiga, city="Gniezno")
    person("Jan", "Kowalski")
    response = client.get(SEARCH, {"q": "zolkiewska"}, **HTMX)
    assert response.status_code == 200
    content = response.content.decode()
    detail = reverse("customers:detail", args=[jadwiga.pk])
    assert f'href="{detail}"' in content
    assert "Żółkiewska" in content
    # Support sees contacts masked in lists (tests/customers/test_masking.py).
    assert "j•••@example.pl" in content
    assert "••• ••• 567" in content
    assert "Gniezno" in content
    assert "Kowalski" not in content
    assert 'role="listbox"' in content
    assert 'role="option"' in content
    assert f'href="{LIST}?q=zolkiewska"' in content
    assert "no-cache" in response["Cache-Control"]
    assert "HX-Request" in response["Vary"]


def test_results_say_which_order_matched(client, support):
    order = OrderFactory(number="#987001")
    response = client.get(SEARCH, {"q": "987001"}, **HTMX)
    content = response.content.decode()
    assert reverse("customers:detail", args=[order.customer_id]) in content
    assert "#987001" in content


def test_exact_matches_come_first(client, support):
    # Several customers whose emails contain the query, and the one whose it is.
    for n in range(LIVE_SEARCH_LIMIT + 3):
        person("Anna", "Nowak", email=f"x{n}nowak@example.pl")
    wanted = person("Anna", "Nowak", email="nowak@example.pl")
    response = client.get(SEARCH, {"q": "nowak@example.pl"}, **HTMX)
    links = re.findall(rf'href="{LIST}(\d+)/"', response.content.decode())
    assert links[0] == str(wanted.pk)
    assert len(links) == LIVE_SEARCH_LIMIT
    assert len(set(links)) == len(links)


def test_no_match_says_so(client, support, jadwiga):
    response = client.get(SEARCH, {"q": "nikogo takiego"}, **HTMX)
    assert response.status_code == 200
    assert 'role="option"' not in response.content.decode()
    assert "nikogo takiego" in response.content.decode()


def test_query_is_escaped(client, support):
    response = client.get(SEARCH, {"q": "<script>x</script>"}, **HTMX)
    assert "<script>x" not in response.content.decode()


def test_empty_query_gives_an_empty_panel(client, support, jadwiga):
    response = client.get(SEARCH, {"q": "  "}, **HTMX)
    assert response.status_code == 200
    assert response.content.decode().strip() == ""


def test_without_htmx_it_leads_to_the_customer_list(client, support):
    response = client.get(SEARCH, {"q": "anna nowak"})
    assert response.status_code == 302
    assert response.url == f"{LIST}?q=anna+nowak"
    assert client.get(SEARCH).url == LIST


@pytest.mark.parametrize("customers", [1, 12])
def test_a_bounded_number_of_queries(
    client, support, django_assert_max_num_queries, customers
):
    nowaks = [person("Anna", "Nowak") for _ in range(customers)]
    for customer in nowaks:
        AddressFactory(customer=customer)
    # One found by an order too: all three searches run.
    OrderFactory(customer=nowaks[0], number="NOWAK")
    # Session, user, second-factor device, permissions (2), orders and identities
    # resolved, exact
    # matches, partial matches, whatever the number of customers found; plus the
    # partial matches' time budget (savepoint, set, rollback to savepoint) and the
    # savepoint and release of ATOMIC_REQUESTS inside the test's transaction.
    with django_assert_max_num_queries(13):
        response = client.get(SEARCH, {"q": "nowak"}, **HTMX)
    assert response.content.decode().count('role="option"') == min(customers, 8) + 1


def test_no_count_and_no_sort_of_the_matches(client, support):
    for n in range(3):
        person("Anna", "Nowak", email=f"anna{n}@example.pl")
    with CaptureQueriesContext(connection) as queries:
        client.get(SEARCH, {"q": "anna nowak"}, **HTMX)
    customer_queries = [
        q["sql"]
        for q in queries.captured_queries
        if 'FROM "customers_customer"' in q["sql"]
    ]
    assert customer_queries
    for sql in customer_queries:
        assert "COUNT(" not in sql
        assert "LIMIT" in sql
        # Only the one-row address lookup is ordered, never the customers.
        assert sql.count("ORDER BY") == sql.count('FROM "customers_address"')


# ---------- The header box on every page ----------


def test_header_box_asks_for_live_results(client, support):
    content = client.get(LIST).content.decode()
    assert f'hx-get="{SEARCH}"' in content
    assert 'hx-trigger="input changed delay:150ms, search"' in content
    assert 'hx-target="#global-search-panel"' in content
    assert 'id="global-search-panel"' in content
    assert 'role="combobox"' in content
    assert 'aria-owns="global-search-listbox"' in content
    assert "vendor/htmx/htmx.min.js" in content
    assert "js/search.js" in content
    token = re.search(r"hx-headers='\{\"X-CSRFToken\": \"([^\"]+)\"\}'", content)
    assert token
    assert len(token.group(1)) >= 32
    assert "<script>" not in content  # no inline script: a CSP comes


def test_htmx_is_vendored_with_its_licence():
    script = finders.find("vendor/htmx/htmx.min.js")
    assert script
    with open(script, encoding="utf-8") as handle:
        assert 'version:"2.' in handle.read()
    assert finders.find("vendor/htmx/LICENSE")
    assert finders.find("js/search.js")


# ---------- The time budget of the partial matches ----------


def test_a_query_over_the_budget_is_cancelled_and_the_request_goes_on():
    def slow():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(2)")
        return "done"

    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        before = cursor.fetchone()[0]
    started = time.monotonic()
    assert within_budget(slow, ms=50) == (None, True)
    assert time.monotonic() - started < 1
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")  # the transaction is usable
        assert cursor.fetchone()[0] == before
    assert within_budget(lambda: Customer.objects.count(), ms=1000) == (0, False)


def test_the_panel_says_when_names_took_too_long(client, support, jadwiga, monkeypatch):
    monkeypatch.setattr(search_views, "within_budget", lambda fetch, ms: (None, True))
    response = client.get(SEARCH, {"q": "zolkiewska"}, **HTMX)
    content = response.content.decode()
    assert response.status_code == 200
    assert 'role="option"' not in content
    assert 'class="searchresults__note"' in content
    # The exact matches are still shown.
    response = client.get(SEARCH, {"q": "j.zolkiewska@example.pl"}, **HTMX)
    content = response.content.decode()
    assert reverse("customers:detail", args=[jadwiga.pk]) in content
    assert 'class="searchresults__note"' in content


def test_each_result_links_to_the_quick_log(client, support, jadwiga):
    try:
        log_url = reverse("support:quick_log", kwargs={"pk": jadwiga.pk})
    except NoReverseMatch:
        pytest.skip("support:quick_log is not routed yet")
    response = client.get(SEARCH, {"q": "zolkiewska"}, **HTMX)
    assert f'href="{log_url}"' in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("last_name", "typed"),
    [
        ("Żółkiewska", "zolkiewska"),
        ("ŻÓŁKIEWSKA", "Żółk"),
        ("Dvořák", "dvorak"),
        ("Müller-Lüdenscheidt", "ludensch"),
        ("Øster", "oster"),
        ("Đorđević", "dordevic"),
        ("Hétfő", "hetfo"),
    ],
)
def test_letters_fold_the_same_in_python_and_in_the_index(last_name, typed):
    customer = CustomerFactory(last_name=last_name, email=None)
    assert list(Customer.objects.search(typed)) == [customer]
    stored = (
        Customer.objects.annotate(document=search_document())
        .filter(pk=customer.pk)
        .values_list("document", flat=True)
        .get()
    )
    assert search_fold(last_name) in stored
