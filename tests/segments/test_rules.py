"""segments.rules: validating, compiling and describing segment rule trees.

One small shop, five customers with everything the rules look at, and ``now``
fixed at 10 March 2025, 10:00 in Warsaw. Every condition is checked twice: what it
selects, and that NOT of it selects exactly everyone else (NULLs included).
"""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.utils import formats, timezone, translation

from consents.services import consent_grant, consent_text_current, consent_withdraw
from customers.models import Address, AttributeDefinition, Customer, Event
from orders.models import Cart, Order
from segments.rules import (
    MAX_CONDITIONS,
    RuleError,
    builder_schema,
    compile_rules,
    describe_rules,
    validate_rules,
)
from tests.factories.customers import (
    AddressFactory,
    CustomerFactory,
    CustomerIdentityFactory,
    StoreFactory,
    TagFactory,
)
from tests.factories.orders import (
    CategoryFactory,
    OrderFactory,
    OrderLineFactory,
    ProductFactory,
)
from tests.factories.segments import CustomerMetricsFactory

WARSAW = ZoneInfo("Europe/Warsaw")
NOW = dt.datetime(2025, 3, 10, 10, 0, tzinfo=WARSAW)
TODAY = NOW.date()
ALL = {"Ala", "Bartek", "Celina", "Darek", "Ewa"}


def at(days_ago: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    """Local time on the day ``days_ago`` days before TODAY."""
    day = TODAY - dt.timedelta(days=days_ago)
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=WARSAW)


def day(days_ago: int) -> str:
    return (TODAY - dt.timedelta(days=days_ago)).isoformat()


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


@pytest.fixture
def shop(db, purposes):
    """The shop: two stores, a category tree, five customers."""
    a = StoreFactory(code="rules-a", name="Sklep A")
    b = StoreFactory(code="rules-b", name="Sklep B")
    karma = CategoryFactory(store=a, name="Karma")
    dry = CategoryFactory(store=a, name="Karma sucha", parent=karma)
    toys = CategoryFactory(store=a, name="Zabawki")
    p_dry = ProductFactory(store=a, category=dry, brand="Acana")
    p_karma = ProductFactory(store=a, category=karma, brand="Brit")
    p_toy = ProductFactory(store=a, category=toys, brand="Kong")
    vip = TagFactory(name="VIP")
    hurt = TagFactory(name="Hurt")
    definitions = {
        "interests": AttributeDefinition.objects.create(
            code="rt_interests",
            label="Interests",
            kind="choice",
            multiple=True,
            choices=["sport", "moda", "gotowanie", "podróże"],
        ),
        "size": AttributeDefinition.objects.create(
            code="rt_size", label="Size", kind="choice", choices=["S", "M", "L"]
        ),
        "count": AttributeDefinition.objects.create(
            code="rt_count", label="Pets", kind="number"
        ),
        "since": AttributeDefinition.objects.create(
            code="rt_since", label="Club member since", kind="date"
        ),
        "vegan": AttributeDefinition.objects.create(
            code="rt_vegan", label="Vegan", kind="boolean"
        ),
        "note": AttributeDefinition.objects.create(
            code="rt_note", label="Note", kind="text"
        ),
        # A code of digits: it must stay a key, never become an array index.
        "digits": AttributeDefinition.objects.create(
            code="2024", label="Survey 2024", kind="text"
        ),
        "retired": AttributeDefinition.objects.create(
            code="rt_retired", label="Retired", kind="text", is_active=False
        ),
    }

    def customer(name, *, created, seen, **fields):
        fields.setdefault("email", f"{name.lower()}@example.pl")
        fields.setdefault("phone", "")
        made = CustomerFactory(first_name=name, **fields)
        Customer.objects.filter(pk=made.pk).update(
            created_at=created, last_seen_at=seen
        )
        return made

    def paid(who, product, placed_at, status=Order.Status.PAID):
        order = OrderFactory(customer=who, store=a, status=status, placed_at=placed_at)
        OrderLineFactory(order=order, product=product)

    def grant(who, purpose, days_ago=2):
        consent_grant(
            customer=who,
            purpose=purpose,
            text=consent_text_current(purpose=purposes[purpose], language="pl"),
            source="newsletter_form",
            occurred_at=timezone.now() - dt.timedelta(days=days_ago),
        )

    ala = customer(
        "Ala",
        created=at(400),
        seen=at(1),
        last_name="Kowalska",
        phone="+48601000001",
        company="Zoo Kraków",
        gender="female",
        language="pl",
        status="buyer",
        birth_date=dt.date(1990, 5, 1),
        acquisition_source="google",
        acquisition_medium="cpc",
        acquisition_campaign="Wiosna 2025",
        attributes={
            "rt_interests": ["sport", "moda"],
            "rt_size": "M",
            "rt_count": "12.5",
            "rt_since": "2025-03-01",
            "rt_vegan": True,
            "rt_note": "Lubi koty",
            "2024": "tak",
        },
    )
    AddressFactory(customer=ala, city="Kraków", postcode="30-001", region="małopolskie")
    ala.tags.add(vip)
    CustomerMetricsFactory(
        customer=ala,
        orders_count=5,
        revenue=Decimal("1000"),
        average_order_value=Decimal("200"),
        first_order_at=at(300),
        last_order_at=at(5),
        average_days_between_orders=Decimal("73.8"),
        clv=Decimal("1200"),
        recency_score=5,
        frequency_score=5,
        monetary_score=5,
        rfm_segment="champions",
        favourite_category=dry,
        favourite_brand="Acana",
        predicted_next_order_on=TODAY + dt.timedelta(days=3),
    )
    paid(ala, p_dry, at(10))
    CustomerIdentityFactory(customer=ala, store=a)
    Event.objects.create(
        store=a, customer=ala, kind=Event.Kind.PRODUCT_VIEW, occurred_at=at(2)
    )
    grant(ala, "email_marketing")

    # A lead: no email, no address, no overall metrics (only a stray store row).
    bartek = customer(
        "Bartek",
        created=at(10),
        seen=None,
        email=None,
        last_name="Nowak",
        gender="male",
        language="en",
        status="lead",
        attributes={
            "rt_interests": "sport",  # stored before the attribute allowed several
            "rt_size": "L",
            "rt_count": 7,  # a JSON number, not a string
            "rt_since": "not a date",
            "rt_vegan": False,
        },
    )
    CustomerMetricsFactory(customer=bartek, store=a, orders_count=9)
    CustomerIdentityFactory(customer=bartek, store=b)
    Cart.objects.create(
        store=a,
        external_id="cart-bartek",
        customer=bartek,
        value=Decimal("50"),
        updated_at=at(2),
    )
    grant(bartek, "email_marketing", days_ago=3)
    consent_withdraw(
        customer=bartek,
        purpose="email_marketing",
        source="unsubscribe_link",
        occurred_at=timezone.now() - dt.timedelta(days=1),
    )

    # One order, exactly 90 days ago late in the (local) evening.
    celina = customer(
        "Celina",
        created=at(200),
        seen=at(100),
        last_name="Wiśniewska",
        gender="female",
        language="pl",
        status="buyer",
        birth_date=dt.date(1985, 12, 24),
        attributes={"rt_interests": ["gotowanie"], "rt_size": "S", "rt_count": "abc"},
    )
    AddressFactory(
        customer=celina, city="Warszawa", postcode="00-001", region="mazowieckie"
    )
    AddressFactory(
        customer=celina,
        kind=Address.Kind.BILLING,
        city="Berlin",
        postcode="10115",
        country="DE",
    )
    celina.tags.add(vip, hurt)
    CustomerMetricsFactory(
        customer=celina,
        orders_count=1,
        revenue=Decimal("50"),
        last_order_at=at(90, 23, 30),
    )
    paid(celina, p_karma, at(90, 23, 30))
    CustomerIdentityFactory(customer=celina, store=a)
    Event.objects.create(
        store=a, customer=celina, kind=Event.Kind.ADD_TO_CART, occurred_at=at(40)
    )
    Cart.objects.create(
        store=a,
        external_id="cart-celina",
        customer=celina,
        value=Decimal("80"),
        updated_at=at(2),
        converted_at=at(2, 13),
    )

    # A new lead whose only order was cancelled and whose cart is minutes old.
    darek = customer(
        "Darek",
        created=at(0, 8),
        seen=at(0, 9),
        last_name="Zieliński",
        gender="",
        language="pl",
        status="lead",
    )
    paid(darek, p_dry, at(3), status=Order.Status.CANCELLED)
    CustomerIdentityFactory(customer=darek, store=a)
    CustomerIdentityFactory(customer=darek, store=b)
    Cart.objects.create(
        store=a,
        external_id="cart-darek",
        customer=darek,
        value=Decimal("30"),
        updated_at=NOW - dt.timedelta(minutes=30),
    )
    grant(darek, "sms_marketing")

    # Last order 89 days ago just after local midnight (still the day before in UTC).
    ewa = customer(
        "Ewa",
        created=at(50),
        seen=at(200),
        last_name="Kowalczyk",
        gender="other",
        language="pl",
        status="buyer",
        attributes={"rt_interests": ["sport", "podróże"], "rt_count": 3},
    )
    # Upper case only in ASCII: the embedded server's upper() may know no more.
    AddressFactory(customer=ewa, city="KRAKów", postcode="31-000")
    ewa.tags.add(hurt)
    CustomerMetricsFactory(
        customer=ewa,
        orders_count=3,
        revenue=Decimal("300"),
        first_order_at=at(200),
        last_order_at=at(89, 0, 10),
        average_days_between_orders=Decimal("55.5"),
        clv=Decimal("300"),
        recency_score=2,
        frequency_score=3,
        monetary_score=3,
        rfm_segment="need_attention",
        favourite_category=karma,
        favourite_brand="Brit",
        predicted_next_order_on=TODAY - dt.timedelta(days=2),
    )
    paid(ewa, p_toy, at(89, 0, 10))
    paid(ewa, p_karma, at(200))
    Event.objects.create(
        store=a, customer=ewa, kind=Event.Kind.PRODUCT_VIEW, occurred_at=at(40)
    )

    return {
        "a": a.pk,
        "b": b.pk,
        "karma": karma.pk,
        "dry": dry.pk,
        "toys": toys.pk,
        "p_toy": p_toy.pk,
        "vip": vip.pk,
        "hurt": hurt.pk,
        "definitions": definitions,
    }


def match(tree, now=NOW) -> set[str]:
    customers = Customer.objects.filter(compile_rules(tree, now=now))
    return set(customers.values_list("first_name", flat=True))


def rule(field, operator, value=None, **extra):
    node = {"field": field, "operator": operator, **extra}
    if value is not None:
        node["value"] = value
    return node


def tree(*rules, op="and"):
    return {"op": op, "rules": list(rules)}


# (rule, who matches). Ids are filled in from the shop: "@karma" is its id.
CASES = [
    # Profile
    (rule("first_name", "equals", "ala"), {"Ala"}),
    (rule("last_name", "starts_with", "kow"), {"Ala", "Ewa"}),
    (rule("last_name", "ends_with", "SKI"), {"Darek"}),
    (rule("email", "not_equals", "ALA@example.pl"), ALL - {"Ala"}),
    (rule("email", "is_not_set"), {"Bartek"}),
    (rule("email", "contains", "EXAMPLE"), ALL - {"Bartek"}),
    (rule("email", "not_contains", "celina"), ALL - {"Celina"}),
    (rule("phone", "is_set"), {"Ala"}),
    (rule("company", "contains", "zoo"), {"Ala"}),
    (rule("company", "is_not_set"), ALL - {"Ala"}),
    (rule("gender", "in", ["female"]), {"Ala", "Celina"}),
    (rule("gender", "not_in", ["female", "male"]), {"Darek", "Ewa"}),
    (rule("gender", "in", [""]), {"Darek"}),
    (rule("language", "in", ["en"]), {"Bartek"}),
    (rule("status", "in", ["buyer"]), {"Ala", "Celina", "Ewa"}),
    (rule("birth_date", "before", "1990-01-01"), {"Celina"}),
    (rule("birth_date", "after", "1985-12-24"), {"Ala"}),
    (rule("birth_date", "on", "1985-12-24"), {"Celina"}),
    (rule("birth_date", "between", ["1985-12-24", "1990-05-01"]), {"Ala", "Celina"}),
    (rule("birth_date", "is_not_set"), {"Bartek", "Darek", "Ewa"}),
    (rule("created_at", "in_last_days", 10), {"Bartek", "Darek"}),
    (rule("created_at", "not_in_last_days", 50), {"Ala", "Celina"}),
    (rule("created_at", "on", day(50)), {"Ewa"}),
    (rule("created_at", "before", day(200)), {"Ala"}),
    (rule("last_seen_at", "is_not_set"), {"Bartek"}),
    (rule("last_seen_at", "in_last_days", 1), {"Ala", "Darek"}),
    (rule("last_seen_at", "not_in_last_days", 30), {"Celina", "Ewa"}),
    # Location: any address
    (rule("city", "equals", "kraków"), {"Ala", "Ewa"}),
    (rule("city", "not_equals", "Kraków"), {"Bartek", "Celina", "Darek"}),
    (rule("city", "is_not_set"), {"Bartek", "Darek"}),
    (rule("postcode", "starts_with", "30-"), {"Ala"}),
    (rule("region", "is_set"), {"Ala", "Celina"}),
    (rule("country", "in", ["de"]), {"Celina"}),
    (rule("country", "not_in", ["PL"]), {"Bartek", "Darek"}),
    # Tags
    (rule("tags", "has_any", ["@vip"]), {"Ala", "Celina"}),
    (rule("tags", "has_all", ["@vip", "@hurt"]), {"Celina"}),
    (rule("tags", "has_all", ["@hurt"]), {"Celina", "Ewa"}),
    (rule("tags", "has_none", ["@hurt"]), {"Ala", "Bartek", "Darek"}),
    # Custom attributes
    (rule("attribute.rt_interests", "in", ["sport"]), {"Ala", "Bartek", "Ewa"}),
    (rule("attribute.rt_interests", "in", ["gotowanie", "moda"]), {"Ala", "Celina"}),
    (rule("attribute.rt_interests", "not_in", ["sport"]), {"Celina", "Darek"}),
    (rule("attribute.rt_size", "in", ["M", "L"]), {"Ala", "Bartek"}),
    (rule("attribute.rt_size", "not_in", ["S"]), ALL - {"Celina"}),
    (rule("attribute.rt_count", "gt", 5), {"Ala", "Bartek"}),
    (rule("attribute.rt_count", "lte", 3), {"Ewa"}),
    (rule("attribute.rt_count", "eq", 12.5), {"Ala"}),
    (rule("attribute.rt_count", "neq", 7), ALL - {"Bartek"}),
    (rule("attribute.rt_count", "between", [3, 10]), {"Bartek", "Ewa"}),
    (rule("attribute.rt_count", "is_set"), {"Ala", "Bartek", "Ewa"}),
    (rule("attribute.rt_since", "after", "2025-02-28"), {"Ala"}),
    (rule("attribute.rt_since", "in_last_days", 10), {"Ala"}),
    (rule("attribute.rt_since", "in_last_days", 8), set()),
    (rule("attribute.rt_since", "is_set"), {"Ala"}),
    (rule("attribute.rt_vegan", "is_true"), {"Ala"}),
    (rule("attribute.rt_vegan", "is_false"), ALL - {"Ala"}),
    (rule("attribute.rt_note", "contains", "KOTY"), {"Ala"}),
    (rule("attribute.rt_note", "not_equals", "lubi koty"), ALL - {"Ala"}),
    (rule("attribute.rt_note", "is_not_set"), ALL - {"Ala"}),
    (rule("attribute.rt_note", "contains", "x' OR '1'='1"), set()),
    (rule("attribute.2024", "equals", "TAK"), {"Ala"}),
    # Metrics: the overall row, and its defaults for customers without one
    (rule("orders_count", "gte", 3), {"Ala", "Ewa"}),
    (rule("orders_count", "lt", 2), {"Bartek", "Celina", "Darek"}),
    (rule("orders_count", "eq", 0), {"Bartek", "Darek"}),
    (rule("orders_count", "gt", 4.5), {"Ala"}),
    (rule("orders_count", "lt", 1.5), {"Bartek", "Celina", "Darek"}),
    (rule("orders_count", "eq", 2.5), set()),
    (rule("orders_count", "neq", 5), ALL - {"Ala"}),
    (rule("orders_count", "between", [1, 3]), {"Celina", "Ewa"}),
    (rule("revenue", "lte", 100), {"Bartek", "Celina", "Darek"}),
    (rule("revenue", "gt", 500), {"Ala"}),
    (rule("revenue", "between", [0, 0.5]), {"Bartek", "Darek"}),
    (rule("average_order_value", "lt", 100), {"Celina"}),
    (rule("average_order_value", "is_not_set"), {"Bartek", "Darek"}),
    (rule("average_days_between_orders", "is_not_set"), {"Bartek", "Celina", "Darek"}),
    (rule("average_days_between_orders", "gt", 60), {"Ala"}),
    (rule("clv", "gte", 1000), {"Ala"}),
    (rule("clv", "eq", 0), {"Bartek", "Darek"}),
    (rule("last_order_at", "in_last_days", 7), {"Ala"}),
    (rule("first_order_at", "before", day(250)), {"Ala"}),
    (rule("predicted_next_order_on", "in_next_days", 7), {"Ala"}),
    (rule("predicted_next_order_on", "in_last_days", 7), {"Ewa"}),
    (rule("predicted_next_order_on", "is_not_set"), {"Bartek", "Celina", "Darek"}),
    (rule("days_since_last_order", "gte", 90), {"Celina"}),
    (rule("days_since_last_order", "lt", 90), {"Ala", "Ewa"}),
    (rule("days_since_last_order", "eq", 89), {"Ewa"}),
    (rule("days_since_last_order", "lte", 5), {"Ala"}),
    (rule("days_since_last_order", "between", [80, 95]), {"Celina", "Ewa"}),
    (rule("days_since_last_order", "gt", 10**12), set()),
    (rule("days_since_last_order", "is_not_set"), {"Bartek", "Darek"}),
    (rule("favourite_category", "in", ["@dry"]), {"Ala"}),
    (rule("favourite_category", "not_in", ["@karma"]), ALL - {"Ewa"}),
    (rule("favourite_brand", "equals", "acana"), {"Ala"}),
    (rule("favourite_brand", "is_not_set"), {"Bartek", "Celina", "Darek"}),
    # RFM
    (rule("r_score", "gte", 4), {"Ala"}),
    (rule("r_score", "is_not_set"), {"Bartek", "Celina", "Darek"}),
    (rule("f_score", "eq", 3), {"Ewa"}),
    (rule("m_score", "lt", 4), {"Ewa"}),
    (rule("rfm_segment", "in", ["champions", "loyal"]), {"Ala"}),
    (rule("rfm_segment", "not_in", ["champions"]), ALL - {"Ala"}),
    # Purchases: paid, shipped or delivered orders; categories with subcategories
    (rule("bought_category", "ever", "@karma"), {"Ala", "Celina", "Ewa"}),
    (rule("bought_category", "ever", "@dry"), {"Ala"}),
    (rule("bought_category", "within_days", "@karma", days=30), {"Ala"}),
    (rule("bought_category", "within_days", "@karma", days=90), {"Ala", "Celina"}),
    (rule("bought_category", "not_within_days", "@karma", days=30), ALL - {"Ala"}),
    (rule("bought_category", "never", "@toys"), ALL - {"Ewa"}),
    (rule("bought_brand", "ever", "acana"), {"Ala"}),
    (rule("bought_brand", "ever", "BRIT"), {"Celina", "Ewa"}),
    (rule("bought_product", "ever", "@p_toy"), {"Ewa"}),
    (rule("bought_product", "within_days", "@p_toy", days=88), set()),
    # Behaviour
    (rule("viewed_product", "within_days", 7), {"Ala"}),
    (rule("viewed_product", "within_days", 60), {"Ala", "Ewa"}),
    (rule("viewed_product", "not_within_days", 7), ALL - {"Ala"}),
    (rule("added_to_cart", "within_days", 60), {"Celina"}),
    (rule("abandoned_cart", "within_days", 7), {"Bartek"}),
    (rule("abandoned_cart", "within_days", 1), set()),
    # Consent: the current state
    (rule("consent", "granted", "email_marketing"), {"Ala"}),
    (rule("consent", "not_granted", "email_marketing"), ALL - {"Ala"}),
    (rule("consent", "granted", "sms_marketing"), {"Darek"}),
    # Acquisition
    (rule("acquisition_source", "equals", "GOOGLE"), {"Ala"}),
    (rule("acquisition_campaign", "contains", "wiosna"), {"Ala"}),
    (rule("acquisition_medium", "is_not_set"), ALL - {"Ala"}),
    # Store
    (rule("store", "in", ["@a"]), {"Ala", "Celina", "Darek"}),
    (rule("store", "in", ["@b"]), {"Bartek", "Darek"}),
    (rule("store", "not_in", ["@a", "@b"]), {"Ewa"}),
]


def resolve(node, ids):
    """``node`` with "@name" values replaced by the shop's ids."""

    def one(value):
        if isinstance(value, str) and value.startswith("@"):
            return ids[value[1:]]
        return value

    node = dict(node)
    value = node.get("value")
    node["value"] = [one(v) for v in value] if isinstance(value, list) else one(value)
    if node["value"] is None:
        del node["value"]
    return node


@pytest.mark.parametrize(
    ("condition", "expected"),
    CASES,
    ids=[f"{c['field']}-{c['operator']}-{i}" for i, (c, _e) in enumerate(CASES)],
)
def test_condition_selects_and_not_selects_the_rest(shop, condition, expected):
    condition = resolve(condition, shop)
    assert match(tree(condition)) == expected
    assert match(tree(condition, op="not")) == ALL - expected


def test_every_field_of_the_builder_is_covered_by_a_case(shop):
    covered = {condition["field"] for condition, _expected in CASES}
    offered = {
        field["code"]
        for group in builder_schema()["groups"]
        for field in group["fields"]
        if not field["code"].startswith("attribute.")
    }
    assert offered <= covered


def test_the_empty_tree_is_every_customer(shop):
    assert match({}) == ALL
    assert match(tree()) == ALL
    assert compile_rules({}) == compile_rules(tree())


def test_or_group(shop):
    either = tree(rule("orders_count", "gte", 3), rule("city", "equals", "Warszawa"))
    either["op"] = "or"
    assert match(either) == {"Ala", "Celina", "Ewa"}


def test_not_group_is_not_all_of_its_rules(shop):
    neither = tree(
        rule("status", "in", ["buyer"]), rule("city", "equals", "Kraków"), op="not"
    )
    assert match(neither) == {"Bartek", "Celina", "Darek"}


def test_not_of_a_negative_is_the_positive_with_nulls_left_out(shop):
    assert match(tree(rule("email", "not_equals", "ala@example.pl"), op="not")) == {
        "Ala"
    }
    assert match(tree(tree(rule("email", "is_set"), op="not"), op="not")) == (
        ALL - {"Bartek"}
    )


def test_nested_groups_as_marketing_writes_them(shop):
    rules = tree(
        rule("orders_count", "gte", 3),
        {
            "op": "or",
            "rules": [
                rule("rfm_segment", "in", ["champions", "loyal"]),
                rule("bought_category", "within_days", shop["karma"], days=90),
            ],
        },
    )
    assert match(rules) == {"Ala"}
    rules["rules"][0] = rule("orders_count", "gte", 1)
    assert match(rules) == {"Ala", "Celina"}


def test_six_levels_of_groups_are_allowed(shop):
    node = rule("first_name", "equals", "Ala")
    for _level in range(6):
        node = tree(node)
    assert match(node) == {"Ala"}


def test_periods_move_with_now(shop):
    condition = tree(rule("bought_category", "within_days", shop["karma"], days=30))
    assert match(condition) == {"Ala"}
    assert match(condition, now=NOW + dt.timedelta(days=30)) == set()
    later = NOW + dt.timedelta(days=1)
    assert match(tree(rule("days_since_last_order", "gte", 90)), now=later) == {
        "Celina",
        "Ewa",
    }


def test_a_cart_is_abandoned_an_hour_after_its_last_change(shop):
    condition = tree(rule("abandoned_cart", "within_days", 1))
    assert match(condition) == set()
    assert match(condition, now=NOW + dt.timedelta(minutes=31)) == {"Darek"}


def test_an_inactive_attribute_is_not_a_field(shop):
    with pytest.raises(ValidationError) as error:
        validate_rules(tree(rule("attribute.rt_retired", "is_set")))
    assert error.value.messages == [
        'rules.0.field: unknown field "attribute.rt_retired"'
    ]


# --- Validation --------------------------------------------------------------------


def test_validate_returns_the_tree_cleaned(shop):
    cleaned = validate_rules(
        tree(
            rule("first_name", "equals", "  Ala "),
            rule("country", "in", [" de", "PL", "DE"]),
            rule("tags", "has_any", [shop["vip"], shop["vip"]]),
            rule("orders_count", "gte", 3),
            rule("revenue", "gte", 2.5),
            rule("email", "is_set", None),
            rule("bought_category", "within_days", shop["karma"], days=30),
        )
    )
    assert cleaned == tree(
        rule("first_name", "equals", "Ala"),
        rule("country", "in", ["DE", "PL"]),
        rule("tags", "has_any", [shop["vip"]]),
        rule("orders_count", "gte", 3),
        rule("revenue", "gte", 2.5),
        rule("email", "is_set"),
        rule("bought_category", "within_days", shop["karma"], days=30),
    )
    assert isinstance(cleaned["rules"][3]["value"], int)
    assert validate_rules({}) == tree()


def messages(tree_) -> list[str]:
    with pytest.raises(ValidationError) as error:
        validate_rules(tree_)
    assert isinstance(error.value, RuleError)
    return error.value.messages


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (
            rule("password", "equals", "x"),
            'rules.0.field: unknown field "password"',
        ),
        (
            rule("first_name", "gt", 3),
            'rules.0.operator: "gt" is not an operator for first name',
        ),
        (
            rule("orders_count", "gte", "abc"),
            'rules.0.value: "abc" is not a number for orders',
        ),
        (
            rule("orders_count", "gte", "5"),
            'rules.0.value: "5" is not a number for orders',
        ),
        (
            rule("orders_count", "gte", True),
            "rules.0.value: true is not a number for orders",
        ),
        (
            rule("orders_count", "is_set"),
            'rules.0.operator: "is_set" is not an operator for orders',
        ),
        (
            rule("r_score", "gte", 6),
            "rules.0.value: 6 is out of range for R score (1 to 5)",
        ),
        (
            rule("revenue", "between", [10, 5]),
            "rules.0.value: [10, 5]: the first must not be greater than the second",
        ),
        (
            rule("revenue", "between", [10]),
            "rules.0.value: [10] is not a pair of numbers [from, to] for revenue",
        ),
        (
            rule("birth_date", "before", "2024-02-30"),
            'rules.0.value: "2024-02-30" is not a date (YYYY-MM-DD) for birth date',
        ),
        (
            rule("birth_date", "before", "20240101"),
            'rules.0.value: "20240101" is not a date (YYYY-MM-DD) for birth date',
        ),
        (
            rule("birth_date", "before", "0001-01-01"),
            'rules.0.value: "0001-01-01" is out of range for birth date'
            " (1800-01-01 to 2999-12-31)",
        ),
        (
            rule("birth_date", "between", ["2024-01-01", "oops"]),
            'rules.0.value.1: "oops" is not a date (YYYY-MM-DD) for birth date',
        ),
        (
            rule("created_at", "in_last_days", 0),
            "rules.0.value: 0 is not a number of days (1 to 3650)",
        ),
        (
            rule("created_at", "in_last_days", 3651),
            "rules.0.value: 3651 is not a number of days (1 to 3650)",
        ),
        (
            rule("viewed_product", "within_days", 7.0),
            "rules.0.value: 7.0 is not a number of days (1 to 3650)",
        ),
        (
            rule("first_name", "equals", "   "),
            "rules.0.value: a text is needed for first name",
        ),
        (
            rule("first_name", "equals", "x" * 201),
            'rules.0.value: "' + "x" * 60 + '…" is longer than 200 characters',
        ),
        (
            rule("first_name", "equals", 5),
            "rules.0.value: 5 is not a text for first name",
        ),
        (
            rule("first_name", "equals"),
            "rules.0.value: a value is needed for first name",
        ),
        (
            rule("first_name", "is_set", "x"),
            'rules.0.value: "is_set" takes no value',
        ),
        (
            rule("gender", "in", ["robot"]),
            'rules.0.value.0: "robot" is not a choice for gender',
        ),
        (
            rule("gender", "in", []),
            "rules.0.value: choose at least one value for gender",
        ),
        (
            rule("gender", "in", "female"),
            'rules.0.value: "female" is not a list of values for gender',
        ),
        (
            rule("attribute.rt_size", "in", ["XL"]),
            'rules.0.value.0: "XL" is not a choice for Size',
        ),
        (
            rule("tags", "has_any", [10**9]),
            "rules.0.value.0: no tag with id 1000000000",
        ),
        (
            rule("tags", "has_any", ["1"]),
            'rules.0.value.0: "1" is not an id for tags',
        ),
        (rule("store", "in", [10**9]), "rules.0.value.0: no store with id 1000000000"),
        (
            rule("bought_category", "ever", 10**9),
            "rules.0.value: no category with id 1000000000",
        ),
        (
            rule("bought_product", "ever", 10**9),
            "rules.0.value: no product with id 1000000000",
        ),
        (
            rule("consent", "granted", "spam"),
            'rules.0.value: no consent purpose "spam"',
        ),
        (
            rule("bought_category", "within_days", 1),
            "rules.0.days: a number of days is needed for bought category",
        ),
        (
            rule("bought_brand", "ever", "Acana", days=30),
            'rules.0.days: "days" is not used with "ever"',
        ),
        (
            rule("first_name", "equals", "Ala", days=30),
            'rules.0.days: "days" is not used with "equals"',
        ),
        (
            {"field": "first_name", "operator": "equals", "value": "A", "sql": "1"},
            'rules.0: unknown key "sql"',
        ),
        ({"operator": "equals", "value": "A"}, "rules.0.field: a field is needed"),
        ({"field": "email", "value": "A"}, "rules.0.operator: an operator is needed"),
    ],
)
def test_error_names_the_path_and_the_offender(shop, condition, message):
    assert messages(tree(condition)) == [message]


def test_every_problem_is_reported_with_its_own_path(shop):
    bad = tree(
        rule("first_name", "equals", "Ala"),
        {"op": "xor", "rules": [rule("email", "is_set")]},
        rule("password", "equals", "x"),
        {"op": "or", "rules": []},
        tree(rule("orders_count", "gt", "abc"), rule("city", "gt", 1)),
        42,
    )
    assert messages(bad) == [
        'rules.1.op: "xor" is not a group operator (and, or, not)',
        'rules.2.field: unknown field "password"',
        "rules.3.rules: a group needs at least one rule",
        'rules.4.rules.0.value: "abc" is not a number for orders',
        'rules.4.rules.1.operator: "gt" is not an operator for city',
        'rules.5: 42 is not a rule: an object with "field" and "operator",'
        ' or a group with "op" and "rules"',
    ]


def test_the_top_level_is_a_group(shop):
    assert messages(rule("email", "is_set")) == [
        'rules: the top level must be a group: {"op": "and", "rules": […]}'
    ]
    assert messages({"op": "or", "rules": []}) == [
        "rules: a group needs at least one rule"
    ]
    assert messages({"op": "and"}) == ["rules: null is not a list of rules"]


HOSTILE_FIELDS = [
    "email'; DROP TABLE customers_customer;--",
    "attributes__foo__bar",
    "attributes__rt_note",
    "attribute.x'--",
    "attribute.rt_note'",
    "attribute.rt_note__contains",
    "attribute.",
    "ATTRIBUTE.rt_note",
    "id",
    "pk",
    "password",
    "__class__",
    "__init__",
    "column",
    "tags__name",
    " email",
    "email\x00",
    "",
]


@pytest.mark.parametrize("field", HOSTILE_FIELDS)
def test_hostile_field_codes_are_unknown_fields(
    shop, field, django_assert_max_num_queries
):
    hostile = tree(rule(field, "equals", "x"))
    with django_assert_max_num_queries(1):  # the attribute definitions, at most
        with pytest.raises(ValidationError) as error:
            compile_rules(hostile)
    [message] = error.value.messages
    assert message.startswith("rules.0.field: unknown field ")


def nested(depth):
    node = rule("email", "is_set")
    for _level in range(depth):
        node = tree(node)
    return node


@pytest.mark.parametrize(
    ("hostile", "message"),
    [
        (nested(7), "rules.0.rules.0.rules.0.rules.0.rules.0.rules.0: groups nest"),
        (nested(100), "rules.0.rules.0.rules.0.rules.0.rules.0.rules.0: groups nest"),
        ([rule("email", "is_set")], "rules: [{…}] is not a rule"),
        ("email", 'rules: "email" is not a rule'),
        (None, "rules: null is not a rule"),
        (tree("email"), 'rules.0: "email" is not a rule'),
        (tree([]), "rules.0: [] is not a rule"),
        (tree({}), "rules.0: {…} is not a rule"),
        ({"op": "and", "rules": "x"}, 'rules: "x" is not a list of rules'),
        (
            tree(rule("gender", "in", ["female"] * 10_000)),
            "rules.0.value: at most 1000",
        ),
        (tree(rule("first_name", "equals", {"$ne": 1})), "rules.0.value: {…} is not"),
        (tree(rule("first_name", "equals", ["a"])), 'rules.0.value: ["a"] is not'),
        (tree(rule("orders_count", "gt", float("nan"))), "rules.0.value: NaN is not"),
        (tree(rule("revenue", "gt", float("inf"))), "rules.0.value: Infinity is not"),
        (tree(rule("revenue", "gt", 10**13)), "rules.0.value: 10000000000000 is out"),
        (tree(rule("revenue", "gt", -(10**13))), "rules.0.value: -10000000000000 is"),
        (tree(rule("revenue", "gt", 10**400)), "rules.0.value: a huge number is out"),
        (tree(rule("tags", "has_any", [10**30])), "rules.0.value.0: a huge number is"),
        (tree(rule("tags", "has_any", [True])), "rules.0.value.0: true is not an id"),
        (tree(rule("first_name", "equals", "A\x00")), 'rules.0.value: "A\\u0000"'),
        (tree(rule("consent", "granted", "a\x00")), "rules.0.value: "),
        (tree(rule("email", "is_set", days=float("nan"))), "rules.0.days: "),
        (
            {"op": "and", "rules": [rule("email", "is_set")] * (MAX_CONDITIONS + 1)},
            "rules: at most 60 conditions in a tree",
        ),
        (
            tree(*[tree(*[rule("email", "is_set")] * 10)] * 7),
            "rules: at most 60 conditions in a tree",
        ),
        ({"op": "and", "rules": [], "extra": 1}, 'rules: unknown key "extra"'),
    ],
)
def test_hostile_trees_are_clean_validation_errors(shop, hostile, message):
    for function in (validate_rules, compile_rules, describe_rules):
        with pytest.raises(ValidationError) as error:
            function(hostile)
        assert error.value.messages[0].startswith(message), error.value.messages


def test_a_tree_of_many_empty_groups_stops_early(shop):
    hostile = tree(*[tree(*[{"op": "and", "rules": []}] * 60)] * 60)
    with pytest.raises(ValidationError) as error:
        validate_rules(hostile)
    assert len(error.value.messages) <= 100


def test_unknown_keys_are_listed_few_at_a_time(shop):
    hostile = {f"key{n}": n for n in range(10_000)} | tree(rule("email", "is_set"))
    assert len(messages(hostile)) == 5


def test_values_in_messages_are_shortened(shop):
    [message] = messages(tree(rule("x" * 10_000, "equals", "a")))
    assert len(message) < 120


# --- Describing --------------------------------------------------------------------


def test_describe_reads_like_the_builder(shop):
    rules = tree(
        rule("orders_count", "gte", 3),
        {
            "op": "or",
            "rules": [
                rule("rfm_segment", "in", ["champions", "loyal"]),
                rule("bought_category", "within_days", shop["karma"], days=90),
            ],
        },
    )
    assert describe_rules(rules) == (
        "orders ≥ 3 AND (RFM segment is one of Champions, Loyal"
        " OR bought category Karma in the last 90 days)"
    )


def short(*date):
    return formats.date_format(dt.date(*date), "SHORT_DATE_FORMAT")


def test_describe_every_kind_of_condition(shop):
    rules = tree(
        rule("email", "not_equals", "a@b.pl"),
        rule("birth_date", "between", ["1980-01-01", "1989-12-31"]),
        rule("last_seen_at", "not_in_last_days", 30),
        rule("gender", "in", ["female"]),
        rule("tags", "has_all", [shop["vip"], shop["hurt"]]),
        rule("attribute.rt_vegan", "is_false"),
        rule("bought_category", "never", shop["dry"]),
        rule("bought_brand", "not_within_days", "Acana", days=1),
        rule("abandoned_cart", "within_days", 3),
        rule("consent", "not_granted", "email_marketing"),
        rule("store", "in", [shop["a"], shop["b"]]),
        rule("favourite_brand", "is_not_set"),
        tree(rule("city", "equals", "Kraków"), rule("revenue", "lt", 2.5), op="not"),
    )
    assert describe_rules(rules) == (
        "email is not “a@b.pl”"
        f" AND birth date between {short(1980, 1, 1)} and {short(1989, 12, 31)}"
        " AND last seen more than 30 days ago"
        " AND gender is Female"
        " AND has all of the tags VIP, Hurt"
        " AND Vegan is no or not given"
        " AND never bought category Karma › Karma sucha"
        " AND did not buy brand “Acana” in the last 1 day"
        " AND abandoned a cart in the last 3 days"
        " AND consent “Email marketing” not granted"
        " AND is a customer of Sklep A, Sklep B"
        " AND favourite brand is empty"
        " AND NOT (city is “Kraków” AND revenue < 2.5)"
    )


def test_describe_the_empty_tree_and_in_polish(shop):
    assert describe_rules({}) == "every customer"
    with translation.override("pl"):
        assert describe_rules(tree(rule("orders_count", "gte", 2.5))) == (
            f"{translation.gettext('orders')} ≥ 2,5"
        )


def test_describe_refuses_an_invalid_tree(shop):
    with pytest.raises(ValidationError):
        describe_rules(tree(rule("password", "equals", "x")))


# --- The builder -------------------------------------------------------------------


def test_builder_schema(shop, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        schema = builder_schema()
    groups = {group["label"]: group for group in schema["groups"]}
    assert list(groups) == [
        "Profile",
        "Location",
        "Tags",
        "Custom attributes",
        "Metrics",
        "RFM",
        "Purchases",
        "Behaviour",
        "Consent",
        "Acquisition",
        "Store",
    ]
    fields = {
        field["code"]: field for group in schema["groups"] for field in group["fields"]
    }
    assert fields["first_name"]["label"] == "First name"
    assert fields["first_name"]["choices"] is None
    assert [o["code"] for o in fields["first_name"]["operators"]] == [
        "equals",
        "not_equals",
        "contains",
        "not_contains",
        "starts_with",
        "ends_with",
        "is_set",
        "is_not_set",
    ]
    within = fields["bought_category"]["operators"][2]
    assert within == {
        "code": "within_days",
        "label": "in the last … days",
        "needs_value": True,
        "value_kind": "choice",
        "needs_days": True,
    }
    assert {"value": shop["dry"], "label": "Karma › Karma sucha"} in fields[
        "bought_category"
    ]["choices"]
    assert (
        fields["favourite_category"]["choices"] == fields["bought_category"]["choices"]
    )
    assert {o["value_kind"] for o in fields["revenue"]["operators"]} == {
        "number",
        "pair",
    }
    assert fields["created_at"]["operators"][4]["value_kind"] == "days"
    assert fields["bought_product"]["choices"] is None
    assert {"value": shop["vip"], "label": "VIP"} in fields["tags"]["choices"]
    assert {"value": shop["a"], "label": "Sklep A"} in fields["store"]["choices"]
    assert {"value": "email_marketing", "label": "Email marketing"} in fields[
        "consent"
    ]["choices"]
    assert {"value": "champions", "label": "Champions"} in fields["rfm_segment"][
        "choices"
    ]
    assert {"value": "DE", "label": "Germany"} in fields["country"]["choices"]
    assert {"value": "en", "label": "English"} in fields["language"]["choices"]
    assert {"value": "", "label": "Not given"} in fields["gender"]["choices"]
    assert fields["status"]["choices"] == [
        {"value": "lead", "label": "Lead"},
        {"value": "buyer", "label": "Buyer"},
    ]
    assert fields["attribute.rt_size"]["choices"] == [
        {"value": "S", "label": "S"},
        {"value": "M", "label": "M"},
        {"value": "L", "label": "L"},
    ]
    assert fields["attribute.rt_vegan"]["type"] == "boolean"
    assert "attribute.rt_retired" not in fields
    assert fields["consent"]["operators"][0]["value_kind"] == "choice"
    assert fields["viewed_product"]["operators"][0]["value_kind"] == "days"
    assert not any(o["needs_value"] for o in fields["attribute.rt_vegan"]["operators"])


def test_every_field_and_operator_of_the_builder_compiles(shop):
    samples = {
        "text": "x",
        "number": 1,
        "pair": [1, 2],
        "date": "2025-01-01",
        "date_pair": ["2025-01-01", "2025-02-01"],
        "days": 7,
        "none": None,
    }
    for group in builder_schema()["groups"]:
        for field in group["fields"]:
            choices = [c["value"] for c in field["choices"] or []]
            for operator in field["operators"]:
                kind = operator["value_kind"]
                if kind == "choices":
                    value = choices[:2]
                elif kind == "choice":
                    value = choices[0]
                elif field["code"] == "bought_product":
                    value = shop["p_toy"]
                else:
                    value = samples[kind]
                extra = {"days": 30} if operator["needs_days"] else {}
                node = rule(field["code"], operator["code"], value, **extra)
                # Compiles, runs, and NOT of it is the rest.
                assert match(tree(node)) | match(tree(node, op="not")) == ALL, node


def test_categories_name_their_store_when_several_stores_have_some(shop):
    other = CategoryFactory(store=StoreFactory(code="rules-c", name="Sklep C"))
    other.name = "Karma"
    other.save(update_fields=["name"])
    choices = {
        field["code"]: field["choices"]
        for group in builder_schema()["groups"]
        for field in group["fields"]
    }["bought_category"]
    assert {"value": other.pk, "label": "Karma (Sklep C)"} in choices
    assert {"value": shop["dry"], "label": "Karma › Karma sucha (Sklep A)"} in choices
    assert describe_rules(tree(rule("bought_category", "ever", other.pk))) == (
        "bought category Karma (Sklep C)"
    )
