"""A support shift in the browser: sign in, find a customer by phone, open an order."""

import re
import tempfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from customers.models import Customer
from orders.models import Order
from tests.factories.customers import (
    AddressFactory,
    CustomerFactory,
    CustomerIdentityFactory,
    TagFactory,
)
from tests.factories.orders import OrderFactory, OrderLineFactory, ProductFactory
from tests.staff import press_sign_in

pytestmark = pytest.mark.e2e

SHOTS = str(Path(tempfile.gettempdir()) / "e2e-{}.png")


@pytest.fixture
def shop(store):
    """A customer with history, and enough neighbours to fill the list."""
    for index in range(18):
        CustomerFactory(
            status=Customer.Status.BUYER if index % 3 else Customer.Status.LEAD
        )
    customer = CustomerFactory(
        first_name="Anna",
        last_name="Kowalska",
        email="anna.kowalska@example.pl",
        phone="+48601234567",
        status=Customer.Status.BUYER,
        company="Pracownia Kwiatów",
        acquisition_source="google",
        acquisition_medium="cpc",
        acquisition_campaign="wiosna-2025",
        last_device="mobile",
        last_os="Android 14",
        last_browser="Chrome",
        last_seen_at=timezone.now() - timedelta(hours=3),
        preferred_channels=["email", "sms"],
        attributes={"interests": ["ogród", "książki"], "profession": "florystka"},
    )
    customer.tags.add(TagFactory(name="VIP", color="#7c3aed"), TagFactory(name="Hurt"))
    AddressFactory(
        customer=customer, street="ul. Kwiatowa 12", postcode="30-001", city="Kraków"
    )
    CustomerIdentityFactory(customer=customer, store=store, external_id="WC-1042")
    products = [
        ProductFactory(store=store, name=name, sku=sku, price=price)
        for name, sku, price in (
            ("Sekator ogrodowy", "OG-SEK-01", Decimal("89.90")),
            ("Nasiona lawendy", "OG-NAS-17", Decimal("12.50")),
            ("Konewka 10 l", "OG-KON-10", Decimal("54.00")),
        )
    ]
    statuses = [
        Order.Status.DELIVERED,
        Order.Status.SHIPPED,
        Order.Status.PAID,
        Order.Status.CANCELLED,
        Order.Status.NEW,
    ]
    for index, status in enumerate(statuses):
        placed = timezone.now() - timedelta(days=40 * index + 2)
        order = OrderFactory(
            store=store,
            customer=customer,
            number=f"ZAM/2025/{1042 - index:05d}",
            status=status,
            placed_at=placed,
            paid_at=placed + timedelta(minutes=4)
            if status != Order.Status.NEW
            else None,
            shipped_at=placed + timedelta(days=1)
            if status in (Order.Status.SHIPPED, Order.Status.DELIVERED)
            else None,
            delivered_at=placed + timedelta(days=2)
            if status == Order.Status.DELIVERED
            else None,
            cancelled_at=placed + timedelta(hours=2)
            if status == Order.Status.CANCELLED
            else None,
            subtotal=Decimal("244.30"),
            shipping_total=Decimal("14.99"),
            total=Decimal("259.29"),
            payment_method="BLIK",
            shipping_method="InPost Paczkomat",
            billing_address={
                "first_name": "Anna",
                "last_name": "Kowalska",
                "street": "ul. Kwiatowa 12",
                "postcode": "30-001",
                "city": "Kraków",
                "country": "PL",
                "phone": "+48601234567",
            },
            shipping_address={
                "name": "Anna Kowalska",
                "address1": "Paczkomat KRA01M",
                "zip": "30-001",
                "city": "Kraków",
                "country": "PL",
            },
        )
        for position, (product, quantity) in enumerate(
            zip(products, (1, 4, 2), strict=True)
        ):
            OrderLineFactory(
                order=order,
                product=product,
                position=position,
                quantity=Decimal(quantity),
                unit_price=product.price,
                total=product.price * quantity,
            )
    return customer


def test_support_finds_a_customer_by_phone_and_opens_an_order(
    live_server, page, make_staff, shop
):
    make_staff("Support", username="agnieszka")

    page.goto(live_server.url + "/")
    assert "/login/" in page.url
    page.screenshot(path=SHOTS.format("login"), full_page=True)
    page.get_by_label("Nazwa użytkownika").fill("agnieszka")
    page.get_by_label("Hasło").fill("test-pass-123")
    press_sign_in(page, "agnieszka")

    page.wait_for_url(re.compile(r"/customers/$"))
    assert page.get_by_role("heading", level=1).inner_text() == "Klienci"
    page.screenshot(path=SHOTS.format("list-pl"), full_page=True)

    search = page.get_by_role("searchbox", name="Szukaj klientów i zamówień")
    search.fill("601 234 567")
    search.press("Enter")

    page.wait_for_url(re.compile(rf"/customers/{shop.pk}/$"))
    assert "Anna Kowalska" in page.get_by_role("heading", level=1).inner_text()
    orders = page.locator(".orderblock")
    assert orders.count() == 5
    assert "Sekator ogrodowy" in orders.first.inner_text()
    page.screenshot(path=SHOTS.format("customer-pl"), full_page=True)

    page.get_by_role("link", name="ZAM/2025/01042").click()
    page.wait_for_url(re.compile(r"/orders/\d+/$"))
    assert "ZAM/2025/01042" in page.get_by_role("heading", level=1).inner_text()
    lines = page.locator("table.table--rows tbody tr")
    assert lines.count() == 3
    assert "Nasiona lawendy" in lines.nth(1).inner_text()
    page.screenshot(path=SHOTS.format("order-pl"), full_page=True)

    page.get_by_role("button", name="EN").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Lines").is_visible()
    page.screenshot(path=SHOTS.format("order-en"), full_page=True)

    page.goto(f"{live_server.url}/customers/{shop.pk}/")
    assert page.get_by_role("heading", name="Orders").is_visible()
    page.screenshot(path=SHOTS.format("customer-en"), full_page=True)
    page.goto(f"{live_server.url}/customers/")
    page.screenshot(path=SHOTS.format("list-en"), full_page=True)
    page.goto(f"{live_server.url}/orders/?status=paid")
    assert page.locator("table tbody tr").count() == 1
    page.screenshot(path=SHOTS.format("orders-en"), full_page=True)

    page.get_by_text("agnieszka").first.click()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/login/"))
