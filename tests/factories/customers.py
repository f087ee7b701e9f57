import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from customers.interactions import answer_due
from customers.models import (
    Address,
    Customer,
    CustomerIdentity,
    Interaction,
    Store,
    Tag,
)


class StoreFactory(DjangoModelFactory):
    class Meta:
        model = Store
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"store{n}")
    name = factory.LazyAttribute(lambda o: f"Sklep {o.code}")
    domain = factory.LazyAttribute(lambda o: f"{o.code}.example.pl")


class TagFactory(DjangoModelFactory):
    class Meta:
        model = Tag

    name = factory.Sequence(lambda n: f"tag-{n}")


class CustomerFactory(DjangoModelFactory):
    class Meta:
        model = Customer

    first_name = factory.Faker("first_name", locale="pl_PL")
    last_name = factory.Faker("last_name", locale="pl_PL")
    email = factory.Sequence(lambda n: f"klient{n}@example.pl")
    phone = factory.Sequence(lambda n: f"+48601{n % 1000000:06d}")


class CustomerIdentityFactory(DjangoModelFactory):
    class Meta:
        model = CustomerIdentity

    store = factory.SubFactory(StoreFactory)
    customer = factory.SubFactory(CustomerFactory)
    external_id = factory.Sequence(lambda n: f"C{n:06d}")


class AddressFactory(DjangoModelFactory):
    class Meta:
        model = Address

    customer = factory.SubFactory(CustomerFactory)
    kind = Address.Kind.SHIPPING
    is_default = True
    first_name = factory.SelfAttribute("customer.first_name")
    last_name = factory.SelfAttribute("customer.last_name")
    street = factory.Faker("street_address", locale="pl_PL")
    postcode = factory.Faker("postcode", locale="pl_PL")
    city = factory.Faker("city", locale="pl_PL")
    country = "PL"


class InteractionFactory(DjangoModelFactory):
    """A logged phone call; ``complaint=True``: an open complaint due in 14 days."""

    class Meta:
        model = Interaction

    class Params:
        complaint = factory.Trait(
            kind=Interaction.Kind.COMPLAINT,
            status=Interaction.Status.OPEN,
            due_at=factory.LazyAttribute(lambda o: answer_due(o.occurred_at)),
        )

    customer = factory.SubFactory(CustomerFactory)
    kind = Interaction.Kind.CONVERSATION
    channel = Interaction.Channel.PHONE
    subject = factory.Sequence(lambda n: f"Rozmowa {n}")
    body = "Klientka pyta o termin dostawy."
    occurred_at = factory.LazyFunction(timezone.now)
