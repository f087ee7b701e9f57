from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from orders.models import Category, Order, OrderLine, Product
from tests.factories.customers import CustomerFactory, StoreFactory


class CategoryFactory(DjangoModelFactory):
    class Meta:
        model = Category

    store = factory.SubFactory(StoreFactory)
    external_id = factory.Sequence(lambda n: f"CAT{n}")
    name = factory.Sequence(lambda n: f"Kategoria {n}")


class ProductFactory(DjangoModelFactory):
    class Meta:
        model = Product

    store = factory.SubFactory(StoreFactory)
    external_id = factory.Sequence(lambda n: f"P{n}")
    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    name = factory.Sequence(lambda n: f"Produkt {n}")
    category = factory.SubFactory(
        CategoryFactory, store=factory.SelfAttribute("..store")
    )
    price = Decimal("49.99")


class OrderFactory(DjangoModelFactory):
    class Meta:
        model = Order

    store = factory.SubFactory(StoreFactory)
    customer = factory.SubFactory(CustomerFactory)
    external_id = factory.Sequence(lambda n: f"O{n:07d}")
    number = factory.Sequence(lambda n: f"ZAM/{n:06d}")
    status = Order.Status.PAID
    placed_at = factory.Sequence(lambda n: timezone.now() - timedelta(days=n % 900))
    currency = "PLN"
    subtotal = Decimal("100.00")
    shipping_total = Decimal("12.99")
    total = Decimal("112.99")


class OrderLineFactory(DjangoModelFactory):
    class Meta:
        model = OrderLine

    order = factory.SubFactory(OrderFactory)
    product = factory.SubFactory(
        ProductFactory, store=factory.SelfAttribute("..order.store")
    )
    sku = factory.SelfAttribute("product.sku")
    name = factory.SelfAttribute("product.name")
    category = factory.SelfAttribute("product.category")
    quantity = Decimal("2")
    unit_price = Decimal("50.00")
    total = Decimal("100.00")
