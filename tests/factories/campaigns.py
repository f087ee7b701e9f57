import factory
from factory.django import DjangoModelFactory

from campaigns.models import Campaign, Channel, Delivery, Flow, MessageTemplate
from consents.models import ConsentPurpose
from tests.factories.customers import CustomerFactory


def purpose(code: str) -> ConsentPurpose:
    """The seeded purpose (the ``purposes`` fixture creates them)."""
    return ConsentPurpose.objects.get(code=code)


class EmailTemplateFactory(DjangoModelFactory):
    class Meta:
        model = MessageTemplate

    name = factory.Sequence(lambda n: f"Newsletter {n}")
    channel = Channel.EMAIL
    subject = "Cześć {{ first_name }}!"
    html = (
        "<p>Dzień dobry {{ first_name }},</p>"
        '<p><a href="https://sklep.example.pl/promocja">Zobacz promocję</a></p>'
        '<p><a href="{{ unsubscribe_url }}">Wypisz się</a></p>'
    )


class SmsTemplateFactory(DjangoModelFactory):
    class Meta:
        model = MessageTemplate

    name = factory.Sequence(lambda n: f"SMS {n}")
    channel = Channel.SMS
    text = "Hej {{ first_name }}, -20% tylko dziś! Rezygnacja: {{ unsubscribe_url }}"


class CampaignFactory(DjangoModelFactory):
    """A draft email campaign; needs the ``purposes`` fixture and a segment."""

    class Meta:
        model = Campaign

    name = factory.Sequence(lambda n: f"Kampania {n}")
    template = factory.SubFactory(EmailTemplateFactory)
    channel = factory.SelfAttribute("template.channel")
    purpose = factory.LazyAttribute(
        lambda o: purpose(
            "sms_marketing" if o.template.channel == Channel.SMS else "email_marketing"
        )
    )


class FlowFactory(DjangoModelFactory):
    """One of the five flows (the migration seeds them), set up as given."""

    class Meta:
        model = Flow

    kind = Flow.Kind.ABANDONED_CART
    template = factory.SubFactory(EmailTemplateFactory)
    purpose = factory.LazyFunction(lambda: purpose("email_marketing"))
    delay_hours = 4

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        kind = kwargs.pop("kind")
        flow, _created = model_class.objects.update_or_create(
            kind=kind, defaults=kwargs
        )
        return flow


class DeliveryFactory(DjangoModelFactory):
    class Meta:
        model = Delivery

    customer = factory.SubFactory(CustomerFactory)
    channel = Channel.EMAIL
