"""Previews and test sends: as one customer would see it, to staff only."""

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from campaigns.models import Campaign, CampaignEvent
from campaigns.previews import message_preview, message_test_send
from consents.models import AccessLog, ConsentState
from segments.models import Segment
from tests.factories.campaigns import (
    CampaignFactory,
    EmailTemplateFactory,
    SmsTemplateFactory,
)
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db


def test_preview_with_sample_values_has_no_working_unsubscribe_link(client):
    preview = message_preview(template=EmailTemplateFactory())
    assert "Anna" in preview.subject
    assert "/c/unsubscribe/preview/" in preview.html
    # The link leads to the invalid-link page and changes nothing.
    response = client.post("/c/unsubscribe/preview/")
    assert response.status_code in (400, 404)


def test_preview_as_a_customer_is_access_logged(make_staff, purposes):
    staff = make_staff("Marketing")
    customer = CustomerFactory(first_name="Zofia", language="pl")
    preview = message_preview(
        template=EmailTemplateFactory(), customer=customer, actor=staff
    )
    assert "Zofia" in preview.subject
    log = AccessLog.objects.get(customer=customer)
    assert log.user == staff
    assert log.action == AccessLog.Action.VIEW


def test_template_code_in_a_template_is_never_run(purposes):
    template = EmailTemplateFactory.build(
        subject="{{ settings.SECRET_KEY }}",
        html="<p>{% debug %}{{ first_name.__class__ }}</p>"
        '<p><a href="{{ unsubscribe_url }}">x</a></p>',
    )
    template.save()
    preview = message_preview(template=template)
    assert "kartoteka-tests-only" not in preview.subject + preview.html
    assert "{{ settings.SECRET_KEY }}" in preview.subject
    assert "{% debug %}" in preview.html
    assert "&lt;class" not in preview.html


def test_test_send_goes_to_the_staff_member_only(make_staff, purposes):
    staff = make_staff("Marketing")
    staff.email = "marta@sklep.example.pl"
    staff.save()
    customer = CustomerFactory(first_name="Zofia")
    segment = Segment.objects.create(name="S", kind=Segment.Kind.STATIC)
    campaign = CampaignFactory(segment=segment)
    address = message_test_send(
        template=campaign.template, actor=staff, customer=customer, campaign=campaign
    )
    assert address == "marta@sklep.example.pl"
    (message,) = mail.outbox
    assert message.to == ["marta@sklep.example.pl"]
    assert message.subject.startswith("[Test]")
    assert "Zofia" in message.subject
    assert message.extra_headers["List-Unsubscribe"].endswith("/preview/>")
    event = CampaignEvent.objects.get(campaign=campaign, kind="test_sent")
    assert event.actor == staff
    assert campaign.status == Campaign.Status.DRAFT
    # Nobody's consent moved.
    assert not ConsentState.objects.exists()


def test_sms_test_send_arrives_as_an_email(make_staff, purposes):
    staff = make_staff("Marketing")
    staff.email = "marta@sklep.example.pl"
    staff.save()
    message_test_send(template=SmsTemplateFactory(), actor=staff)
    (message,) = mail.outbox
    assert "-20%" in message.body


def test_test_send_needs_an_address(make_staff, purposes):
    staff = make_staff("Marketing")
    staff.email = ""
    staff.save()
    with pytest.raises(ValidationError) as error:
        message_test_send(template=EmailTemplateFactory(), actor=staff)
    assert error.value.code == "no_email"
