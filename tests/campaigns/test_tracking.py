"""Opens and clicks: signed tokens, the pixel, tracked links (no open redirect)."""

import datetime as dt
import threading

import pytest
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from campaigns.models import DeliveryEvent
from campaigns.public_views import PIXEL
from campaigns.tracking import (
    CLICK_SALT,
    click_url,
    delivery_allowed_urls,
    delivery_clicked,
    delivery_opened,
    open_url,
    read_click_token,
    read_open_token,
)
from consents.links import unsubscribe_token
from segments.models import Segment
from tests.factories.campaigns import (
    CampaignFactory,
    DeliveryFactory,
    EmailTemplateFactory,
    FlowFactory,
)
from tests.factories.orders import ProductFactory

pytestmark = pytest.mark.django_db

PUBLIC = "https://crm.sklep.pl"
PROMO = "https://sklep.example.pl/promocja"
ELSEWHERE = "https://phishing.example.com/login"


@pytest.fixture(autouse=True)
def public_url(settings):
    settings.PUBLIC_URL = PUBLIC


@pytest.fixture
def campaign(purposes):
    segment = Segment.objects.create(name="Wszyscy", kind=Segment.Kind.STATIC)
    return CampaignFactory(segment=segment)


@pytest.fixture
def delivery(campaign):
    return DeliveryFactory(campaign=campaign, message_id="<kartoteka.1@sklep.pl>")


def path_of(url):
    assert url.startswith(PUBLIC)
    return url.removeprefix(PUBLIC)


def events(delivery, kind):
    return list(DeliveryEvent.objects.filter(delivery=delivery, kind=kind))


# --- Tokens -----------------------------------------------------------------------


def test_tokens_round_trip_and_urls_are_absolute():
    url = click_url(42, PROMO + "?utm_source=newsletter&x=ą")
    assert url.startswith(f"{PUBLIC}/t/c/")
    assert url.endswith("/")
    token = url.removeprefix(f"{PUBLIC}/t/c/").removesuffix("/")
    assert reverse("campaigns:click", args=[token]) == path_of(url)
    assert read_click_token(token) == (42, PROMO + "?utm_source=newsletter&x=ą")

    pixel = open_url(42)
    assert pixel.startswith(f"{PUBLIC}/t/o/")
    assert pixel.endswith(".gif")
    assert (
        read_open_token(pixel.removeprefix(f"{PUBLIC}/t/o/").removesuffix(".gif")) == 42
    )


def test_urls_follow_the_secret_key(settings):
    before = click_url(7, PROMO)
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    after = click_url(7, PROMO)
    assert after != before
    token = after.removeprefix(f"{PUBLIC}/t/c/").removesuffix("/")
    assert read_click_token(token) == (7, PROMO)
    old = before.removeprefix(f"{PUBLIC}/t/c/").removesuffix("/")
    with pytest.raises(ValidationError):
        read_click_token(old)
    # A rotated key keeps old links working.
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-third-secret-key-" + "y" * 40
    assert read_click_token(token) == (7, PROMO)


def tampered(token):
    head, _sep, signature = token.rpartition(":")
    flipped = "A" if signature[0] != "A" else "B"
    return f"{head}:{flipped}{signature[1:]}"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "nonsense",
        "abc:def",
        # Another kind of token, validly signed: not a click token.
        "open",
        "unsubscribe",
        # Our salt, but not our payload.
        "list",
        "no-url",
        "bool-delivery",
    ],
)
def test_foreign_and_tampered_click_tokens_are_refused(token, customer, purposes):
    click = click_url(5, PROMO).removeprefix(f"{PUBLIC}/t/c/").removesuffix("/")
    signer = signing.Signer(salt=CLICK_SALT)
    token = {
        "open": open_url(5).removeprefix(f"{PUBLIC}/t/o/").removesuffix(".gif"),
        "unsubscribe": unsubscribe_token(customer, "email_marketing"),
        "list": signer.sign_object([5, PROMO]),
        "no-url": signer.sign_object({"d": 5}),
        "bool-delivery": signer.sign_object({"d": True, "u": PROMO}),
    }.get(token, token)
    with pytest.raises(ValidationError) as caught:
        read_click_token(token)
    assert caught.value.error_dict["token"][0].code == "invalid"
    with pytest.raises(ValidationError):
        read_click_token(tampered(click))


def test_an_open_token_is_not_a_click_token_nor_the_reverse():
    click = click_url(5, PROMO).removeprefix(f"{PUBLIC}/t/c/").removesuffix("/")
    with pytest.raises(ValidationError):
        read_open_token(click)
    with pytest.raises(ValidationError):
        read_open_token("5:abc")


# --- Where a click may lead -------------------------------------------------------


def test_allowed_urls_are_the_templates_links(delivery, purposes):
    assert delivery_allowed_urls(delivery) == {PROMO}
    template = EmailTemplateFactory(
        html='<p><a href="https://sklep.example.pl/lato">Lato</a></p>'
    )
    flow_delivery = DeliveryFactory(flow=FlowFactory(template=template), trigger="x:1")
    assert delivery_allowed_urls(flow_delivery) == {"https://sklep.example.pl/lato"}


# --- Services ---------------------------------------------------------------------


def test_first_open_sets_opened_at_and_repeats_within_a_minute_add_nothing(delivery):
    moment = timezone.now() - dt.timedelta(hours=1)
    assert delivery_opened(delivery_id=delivery.pk, at=moment) is True
    assert not delivery_opened(
        delivery_id=delivery.pk, at=moment + dt.timedelta(seconds=30)
    )
    later = moment + dt.timedelta(minutes=2)
    assert delivery_opened(delivery_id=delivery.pk, at=later) is True
    delivery.refresh_from_db()
    assert delivery.opened_at == moment
    assert delivery.clicked_at is None
    assert [event.at for event in events(delivery, "open")] == [moment, later]


def test_open_rate_limit_counts_the_first_open(delivery):
    moment = timezone.now()
    assert delivery_opened(delivery_id=delivery.pk, at=moment)
    assert not delivery_opened(delivery_id=delivery.pk, at=moment)
    assert len(events(delivery, "open")) == 1


def test_a_missing_delivery_is_a_no_op(delivery):
    assert delivery_opened(delivery_id=delivery.pk + 1000) is False
    assert delivery_clicked(delivery_id=delivery.pk + 1000, url=PROMO) is False
    assert not DeliveryEvent.objects.exists()


def test_a_click_sets_clicked_at_and_opened_at_once(delivery):
    first = timezone.now() - dt.timedelta(minutes=10)
    second = first + dt.timedelta(minutes=1)
    assert delivery_clicked(delivery_id=delivery.pk, url=PROMO, at=first) is True
    assert delivery_clicked(delivery_id=delivery.pk, url=PROMO, at=second) is True
    delivery.refresh_from_db()
    assert delivery.clicked_at == first
    assert delivery.opened_at == first
    assert [(e.url, e.at) for e in events(delivery, "click")] == [
        (PROMO, first),
        (PROMO, second),
    ]


def test_a_click_keeps_an_earlier_open(delivery):
    opened = timezone.now() - dt.timedelta(hours=2)
    delivery_opened(delivery_id=delivery.pk, at=opened)
    delivery_clicked(delivery_id=delivery.pk, url=PROMO)
    delivery.refresh_from_db()
    assert delivery.opened_at == opened
    assert delivery.clicked_at > opened


@pytest.mark.django_db(transaction=True)
def test_concurrent_opens_record_one_event(purposes):
    segment = Segment.objects.create(name="Wszyscy", kind=Segment.Kind.STATIC)
    delivery = DeliveryFactory(campaign=CampaignFactory(segment=segment))
    delivery_opened(delivery_id=delivery.pk)  # opened_at set: repeats go the slow way
    moment = timezone.now() + dt.timedelta(minutes=5)
    barrier = threading.Barrier(4)
    results = []

    def fetch():
        try:
            barrier.wait()
            results.append(delivery_opened(delivery_id=delivery.pk, at=moment))
        finally:
            connection.close()

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, False, True]
    assert DeliveryEvent.objects.filter(delivery=delivery, kind="open").count() == 2


# --- The open pixel ---------------------------------------------------------------


@pytest.mark.parametrize("valid", [True, False])
def test_the_pixel_is_always_a_gif(client, delivery, valid):
    path = path_of(open_url(delivery.pk))
    if not valid:
        path = path.replace("/o/", "/o/x")
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"
    assert response.content == PIXEL
    assert len(PIXEL) == 43
    assert PIXEL.startswith(b"GIF89a\x01\x00\x01\x00")
    assert "no-store" in response["Cache-Control"]
    assert not response.cookies
    delivery.refresh_from_db()
    assert (delivery.opened_at is not None) is valid
    assert len(events(delivery, "open")) == int(valid)


def test_the_pixel_of_a_missing_delivery_is_a_gif_too(client):
    response = client.get(path_of(open_url(999_999)))
    assert response.status_code == 200
    assert response.content == PIXEL


def test_the_pixel_records_repeated_fetches_once(client, delivery):
    path = path_of(open_url(delivery.pk))
    for _ in range(3):
        assert client.get(path).content == PIXEL
    assert len(events(delivery, "open")) == 1


def test_the_pixel_takes_no_post(client, delivery):
    assert client.post(path_of(open_url(delivery.pk))).status_code == 405


# --- Tracked links ----------------------------------------------------------------


def test_a_click_records_and_redirects(client, delivery):
    response = client.get(path_of(click_url(delivery.pk, PROMO)))
    assert response.status_code == 302
    assert response["Location"] == PROMO
    assert "no-store" in response["Cache-Control"]
    delivery.refresh_from_db()
    assert delivery.clicked_at is not None
    assert delivery.opened_at == delivery.clicked_at
    assert [e.url for e in events(delivery, "click")] == [PROMO]


def test_head_redirects_without_recording(client, delivery):
    response = client.head(path_of(click_url(delivery.pk, PROMO)))
    assert response.status_code == 302
    assert response["Location"] == PROMO
    delivery.refresh_from_db()
    assert delivery.clicked_at is None
    assert not DeliveryEvent.objects.exists()


def assert_refused(response):
    assert response.status_code == 400
    assert "Location" not in response
    assert response["Content-Type"].startswith("text/html")
    assert "no-store" in response["Cache-Control"]
    assert not DeliveryEvent.objects.exists()


def test_a_tampered_token_is_refused(client, delivery, settings):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    token = path_of(click_url(delivery.pk, PROMO)).split("/")[3]
    response = client.get(reverse("campaigns:click", args=[tampered(token)]))
    assert_refused(response)
    assert "This link is not valid" in response.content.decode()


def test_a_valid_signature_with_the_url_swapped_is_refused(client, delivery):
    token = path_of(click_url(delivery.pk, PROMO)).split("/")[3]
    # Re-sign nothing: the payload changes, the signature stays.
    signer = signing.Signer(salt=CLICK_SALT)
    _payload, _sep, signature = token.rpartition(":")
    swapped = signing.b64_encode(
        signing.JSONSerializer().dumps({"d": delivery.pk, "u": ELSEWHERE})
    ).decode()
    assert signer.unsign_object(token) == {"d": delivery.pk, "u": PROMO}
    response = client.get(reverse("campaigns:click", args=[f"{swapped}:{signature}"]))
    assert_refused(response)


def test_a_url_the_message_does_not_contain_is_refused(client, delivery):
    # Validly signed (as a bug or a leaked key would make it), but not in the template.
    response = client.get(path_of(click_url(delivery.pk, ELSEWHERE)))
    assert_refused(response)
    delivery.refresh_from_db()
    assert delivery.clicked_at is None


@pytest.mark.parametrize("url", ["javascript:alert(1)", "//phishing.example.com/"])
def test_a_url_that_is_not_http_is_refused(client, delivery, url):
    assert_refused(client.get(path_of(click_url(delivery.pk, url))))


def test_a_token_of_a_deleted_delivery_is_refused(client, delivery):
    path = path_of(click_url(delivery.pk, PROMO))
    delivery.delete()
    assert_refused(client.get(path))


def test_a_product_page_is_allowed(client, delivery):
    product = ProductFactory(url="https://sklep.example.pl/p/buty-zimowe")
    response = client.get(path_of(click_url(delivery.pk, product.url)))
    assert response.status_code == 302
    assert response["Location"] == product.url
    assert [e.url for e in events(delivery, "click")] == [product.url]


def test_the_refusal_speaks_the_customers_language(client, delivery):
    delivery.customer.language = "en"
    delivery.customer.save(update_fields=["language"])
    response = client.get(path_of(click_url(delivery.pk, ELSEWHERE)))
    assert response.status_code == 400
    assert response["Content-Language"] == "en"
    assert "This link is not valid" in response.content.decode()
