from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from segments.models import CustomerMetrics
from tests.factories.customers import CustomerFactory


class CustomerMetricsFactory(DjangoModelFactory):
    """A buyer's overall figures (``store`` empty): one order of 100 PLN, 10 days ago.

    Scores and segment come together (a check constraint): pass all four or none.
    """

    class Meta:
        model = CustomerMetrics

    customer = factory.SubFactory(CustomerFactory)
    store = None
    orders_count = 1
    revenue = Decimal("100.00")
    average_order_value = factory.LazyAttribute(
        lambda o: (Decimal(o.revenue) / o.orders_count).quantize(Decimal("0.01"))
    )
    last_order_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=10))
    first_order_at = factory.SelfAttribute("last_order_at")
    clv = factory.SelfAttribute("revenue")
    updated_at = factory.LazyFunction(timezone.now)
