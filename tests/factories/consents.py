import factory

from consents.models import DataSubjectRequest


class DataSubjectRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DataSubjectRequest

    customer = factory.SubFactory("tests.factories.customers.CustomerFactory")
    kind = DataSubjectRequest.Kind.ACCESS
    channel = "email"
