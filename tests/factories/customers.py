import factory
from factory.django import DjangoModelFactory

from customers.models import Address, Customer, CustomerIdentity, Store, Tag


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
