import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from consents.models import ConsentEvent
from consents.services import consent_grant, consent_text_current, consent_withdraw
from customers import selectors
from customers.models import Event, Interaction
from customers.selectors import TimelineSource, customer_timeline, timeline_rows
from tests.factories.customers import CustomerFactory, InteractionFactory
from tests.factories.orders import CategoryFactory, OrderFactory, ProductFactory

WARSAW = ZoneInfo("Europe/Warsaw")


@pytest.fixture
def support(client, make_staff):
    user = make_staff("Support")
    client.force_login(user)
    return user


@pytest.fixture
def english():
    with translation.override("en"):
        yield


def ago(**kwargs):
    return timezone.now() - dt.timedelta(**kwargs)


def make_events(customer, store, kind, count, at, **fields):
    Event.objects.bulk_create(
        Event(
            store=store,
            customer=customer,
            kind=kind,
            occurred_at=at - dt.timedelta(seconds=index),
            **fields,
        )
        for index in range(count)
    )


def sources(page):
    return [entry.source for entry in page.entries]


def detail_url(customer, **params):
    url = reverse("customers:detail", args=[customer.pk])
    if params:
        url += "?" + "&".join(f"{key}={value}" for key, value in params.items())
    return url


# ---------- The selector ----------


def test_everything_in_one_list_newest_first(customer, store, purposes, english):
    order = OrderFactory(customer=customer, store=store, placed_at=ago(days=3))
    consent, _ = consent_withdraw(
        customer=customer,
        purpose="email_marketing",
        source="unsubscribe_link",
        occurred_at=ago(days=2),
    )
    interaction = InteractionFactory(customer=customer, occurred_at=ago(days=1))
    make_events(customer, store, Event.Kind.PAGE_VIEW, 4, ago(hours=2))
    other = CustomerFactory()
    OrderFactory(customer=other, store=store, placed_at=ago(hours=1))
    InteractionFactory(customer=other)

    page = customer_timeline(customer)

    assert sources(page) == ["behaviour", "interactions", "consents", "orders"]
    assert [entry.object for entry in page.entries[1:]] == [interaction, consent, order]
    assert page.entries[0].summary == "viewed 4 pages"
    assert page.entries[0].count == 4
    assert not page.has_next


def test_filter_by_kind(customer, store):
    OrderFactory(customer=customer, store=store, placed_at=ago(days=3))
    InteractionFactory(customer=customer, occurred_at=ago(days=1))
    make_events(customer, store, Event.Kind.SEARCH, 2, ago(hours=2), keyword="karma")

    assert sources(customer_timeline(customer, kinds=["orders"])) == ["orders"]
    assert sources(customer_timeline(customer, kinds=["interactions", "orders"])) == [
        "interactions",
        "orders",
    ]
    assert sources(customer_timeline(customer, kinds=["behaviour"])) == ["behaviour"]
    # Nothing known asked for: everything.
    assert len(customer_timeline(customer, kinds=["nonsense"]).entries) == 3


def test_pages_without_overlap_and_whether_there_are_more(customer, store):
    orders = [
        OrderFactory(customer=customer, store=store, placed_at=ago(hours=5 * i))
        for i in range(20)
    ]
    interactions = [
        InteractionFactory(customer=customer, occurred_at=ago(hours=5 * i + 2))
        for i in range(10)
    ]

    first = customer_timeline(customer, per_page=25)
    second = customer_timeline(customer, page=2, per_page=25)
    third = customer_timeline(customer, page=3, per_page=25)

    assert len(first.entries) == 25
    assert first.has_next
    assert not first.has_previous
    assert len(second.entries) == 5
    assert not second.has_next
    assert second.has_previous
    assert third.entries == []
    assert not third.has_next
    moments = [entry.at for entry in [*first.entries, *second.entries]]
    assert moments == sorted(moments, reverse=True)
    shown = {(entry.source, entry.object.pk) for entry in [*first, *second]}
    assert shown == {("orders", o.pk) for o in orders} | {
        ("interactions", i.pk) for i in interactions
    }
    # Junk page numbers mean the first page.
    assert customer_timeline(customer, page="x").number == 1
    assert customer_timeline(customer, page="-3").number == 1


def test_behaviour_summarised_per_day_kind_and_category(customer, store, english):
    pet_food = CategoryFactory(store=store, name="Pet food")
    toys = CategoryFactory(store=store, name="Toys")
    kibble = ProductFactory(store=store, sku="KIB-1", category=pet_food)
    cans = ProductFactory(store=store, sku="CAN-1", category=pet_food)
    ball = ProductFactory(store=store, sku="BALL-1", category=toys)
    loose = ProductFactory(store=store, sku="LOOSE-1", category=None)
    day = dt.datetime(2025, 3, 10, 15, 0, tzinfo=WARSAW)
    make_events(customer, store, Event.Kind.PRODUCT_VIEW, 9, day, product_sku="KIB-1")
    make_events(
        customer,
        store,
        Event.Kind.PRODUCT_VIEW,
        5,
        day - dt.timedelta(hours=1),
        product_sku=cans.sku,
    )
    make_events(customer, store, Event.Kind.PRODUCT_VIEW, 2, day, product_sku=ball.sku)
    # Unknown SKU and a product without a category: the category is unknown.
    make_events(customer, store, Event.Kind.PRODUCT_VIEW, 2, day, product_sku="NOPE")
    make_events(customer, store, Event.Kind.PRODUCT_VIEW, 1, day, product_sku=loose.sku)
    make_events(customer, store, Event.Kind.ADD_TO_CART, 1, day, product_sku=kibble.sku)
    make_events(customer, store, Event.Kind.SEARCH, 3, day, keyword="karma dla psa")
    make_events(customer, store, Event.Kind.SEARCH, 1, day, keyword="smycz")
    make_events(customer, store, Event.Kind.CHECKOUT_STARTED, 1, day)
    # The day before, in Warsaw: 23:30 local is 22:30 UTC of that same day.
    make_events(
        customer,
        store,
        Event.Kind.PRODUCT_VIEW,
        3,
        dt.datetime(2025, 3, 9, 23, 30, tzinfo=WARSAW),
        product_sku="KIB-1",
    )
    # Another store's product with the same SKU does not lend its category.
    other_store_category = CategoryFactory(name="Garden")
    ProductFactory(
        store=other_store_category.store, sku="NOPE", category=other_store_category
    )

    summaries = {
        (entry.day, entry.summary) for entry in customer_timeline(customer).entries
    }

    march_10, march_9 = dt.date(2025, 3, 10), dt.date(2025, 3, 9)
    assert summaries == {
        (march_10, "viewed 14 products in Pet food"),
        (march_10, "viewed 2 products in Toys"),
        (march_10, "viewed 3 products"),
        (march_10, "added 1 product from Pet food to the cart"),
        (march_10, "searched 4 times: “karma dla psa”, “smycz”"),
        (march_10, "started checkout 1 time"),
        (march_9, "viewed 3 products in Pet food"),
    }


def test_interactions_are_left_out_for_staff_who_may_not_see_them(
    customer, store, make_staff
):
    InteractionFactory(customer=customer)
    OrderFactory(customer=customer, store=store)
    user = make_staff()
    user.user_permissions.add(
        Permission.objects.get(
            codename="view_customer", content_type__app_label="customers"
        )
    )
    user = type(user).objects.get(pk=user.pk)  # fresh permission cache

    page = customer_timeline(customer, user=user)

    assert sources(page) == ["orders"]
    assert sources(customer_timeline(customer, kinds=["interactions"], user=user)) == [
        "orders"
    ]


def test_a_later_app_adds_its_own_source(customer, monkeypatch):
    # How the campaigns app will add the messages it sent (issue 8).
    note = InteractionFactory(customer=customer, kind=Interaction.Kind.NOTE)
    InteractionFactory(customer=customer, occurred_at=ago(days=1))
    monkeypatch.setattr(selectors, "_SOURCES", dict(selectors._SOURCES))
    selectors.timeline_source_register(
        TimelineSource(
            key="notes",
            label="Notes",
            rows=lambda c: timeline_rows(
                c.interactions.filter(kind="note"),
                source="notes",
                ref=F("pk"),
                at=F("occurred_at"),
            ),
            fetch=lambda c, ids: c.interactions.in_bulk(ids),
            template="customers/support/timeline/_interaction.html",
        )
    )

    page = customer_timeline(customer, kinds=["notes"])

    assert [(entry.source, entry.object) for entry in page.entries] == [("notes", note)]


# ---------- The customer page ----------


def test_customer_page_shows_the_timeline_newest_first(
    client, support, customer, store, purposes, english
):
    OrderFactory(customer=customer, store=store, number="ZAM/1", placed_at=ago(days=5))
    consent_grant(
        customer=customer,
        purpose="email_marketing",
        text=consent_text_current(purpose=purposes["email_marketing"], language="pl"),
        source="newsletter_form",
        occurred_at=ago(days=4),
    )
    InteractionFactory(
        customer=customer, subject="Gdzie paczka?", occurred_at=ago(days=1)
    )
    make_events(customer, store, Event.Kind.PAGE_VIEW, 2, ago(hours=1))

    response = client.get(detail_url(customer))

    content = response.content.decode()
    assert response.context["timeline"].entries[0].source == "behaviour"
    assert 'href="/static/css/support.css"' in content
    assert "/static/js/quick_log.js" in content
    # The quick log above it lists the order too: look in the timeline only.
    timeline = content[content.index('<div id="timeline"') :]
    positions = [
        timeline.index(text)
        for text in (
            'data-source="behaviour"',
            "Gdzie paczka?",
            'data-source="consents"',
            "ZAM/1",
        )
    ]
    assert positions == sorted(positions)


def test_customer_page_filter_and_pages_by_plain_links(
    client, support, customer, store
):
    OrderFactory.create_batch(30, customer=customer, store=store)
    InteractionFactory(customer=customer, subject="Reklamacja butów")

    everything = client.get(detail_url(customer))
    only_orders = client.get(detail_url(customer, timeline="orders"))
    older = client.get(detail_url(customer, timeline="orders", tpage=2))

    assert "Reklamacja butów" in everything.content.decode()
    assert "Reklamacja butów" not in only_orders.content.decode()
    assert len(only_orders.context["timeline"].entries) == 25
    assert f'href="{detail_url(customer)}?timeline=orders&amp;tpage=2#timeline"' in (
        only_orders.content.decode()
    )
    assert len(older.context["timeline"].entries) == 5
    assert older.context["timeline"].entries[0].source == "orders"


def test_htmx_gets_only_the_timeline(client, support, customer, store):
    from consents.models import AccessLog

    OrderFactory.create_batch(3, customer=customer, store=store)
    InteractionFactory(customer=customer, subject="Zwrot kurtki")

    response = client.get(
        detail_url(customer, timeline="interactions"),
        headers={"HX-Request": "true", "HX-Target": "timeline"},
    )

    content = response.content.decode()
    assert response.status_code == 200
    assert content.lstrip().startswith('<div id="timeline"')
    assert "<html" not in content
    assert "Zwrot kurtki" in content
    assert 'data-source="orders"' not in content
    assert "HX-Request" in response["Vary"]
    # Still the customer's data on screen: logged.
    assert AccessLog.objects.filter(customer=customer, action="view").count() == 1
    # Another target (or none) gets the page.
    page = client.get(detail_url(customer), headers={"HX-Request": "true"})
    assert "<html" in page.content.decode()


def fill_history(customer, store, purposes, *, orders, events, interactions, consents):
    for i in range(orders):
        OrderFactory(customer=customer, store=store, placed_at=ago(hours=i * 13 + 5))
    category = CategoryFactory(store=store, name="Pet food")
    products = [
        ProductFactory(store=store, category=category if i % 2 else None)
        for i in range(5)
    ]
    Event.objects.bulk_create(
        Event(
            store=store,
            customer=customer,
            kind=Event.Kind.values[i % len(Event.Kind.values)],
            occurred_at=ago(hours=i * 3),
            product_sku=products[i % len(products)].sku,
            keyword=f"szukane {i % 7}",
        )
        for i in range(events)
    )
    for i in range(interactions):
        InteractionFactory(
            customer=customer,
            occurred_at=ago(hours=i * 7 + 1),
            complaint=bool(i % 2),
            order=None,
        )
    text = consent_text_current(purpose=purposes["email_marketing"], language="pl")
    for i in range(consents):
        if i % 2:
            consent_withdraw(
                customer=customer,
                purpose="email_marketing",
                source="unsubscribe_link",
                occurred_at=ago(hours=i * 11 + 2),
            )
        else:
            consent_grant(
                customer=customer,
                purpose="email_marketing",
                text=text,
                source="newsletter_form",
                occurred_at=ago(hours=i * 11 + 2),
            )


def page_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries.captured_queries), response


def test_customer_page_queries_stay_bounded_with_a_long_history(
    client, support, store, purposes, django_assert_max_num_queries
):
    small = CustomerFactory()
    fill_history(small, store, purposes, orders=1, events=3, interactions=1, consents=1)
    big = CustomerFactory()
    fill_history(
        big, store, purposes, orders=100, events=500, interactions=40, consents=12
    )
    assert ConsentEvent.objects.filter(customer=big).count() == 12

    small_count, _ = page_queries(client, detail_url(small))
    with django_assert_max_num_queries(25):
        big_count, response = page_queries(client, detail_url(big))

    assert big_count == small_count
    timeline = response.context["timeline"]
    assert len(timeline.entries) == 25
    assert timeline.has_next
    assert {entry.source for entry in timeline.entries} == {
        "orders",
        "interactions",
        "consents",
        "behaviour",
    }
    # Deeper pages and one kind alone cost no more.
    deep_count, _ = page_queries(client, detail_url(big, tpage=9))
    assert deep_count <= big_count
    behaviour_count, response = page_queries(
        client, detail_url(big, timeline="behaviour")
    )
    assert behaviour_count <= big_count
    assert {entry.source for entry in response.context["timeline"].entries} == {
        "behaviour"
    }
    # The htmx fragment alone: session, user, second-factor device, permissions,
    # customer, the timeline, the access log.
    with CaptureQueriesContext(connection) as queries:
        client.get(
            detail_url(big, tpage=2),
            headers={"HX-Request": "true", "HX-Target": "timeline"},
        )
    assert len(queries.captured_queries) <= 13
