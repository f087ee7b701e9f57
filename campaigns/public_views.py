"""Public endpoints under /t/: the open pixel, tracked links, the provider webhook.

No login and no session: the pixel and the links carry signed tokens
(``campaigns.tracking``), the webhook an HMAC of its body. None of them is cached.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import render
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST
from rest_framework import serializers

from campaigns.models import Delivery
from campaigns.tracking import (
    click_url_allowed,
    delivery_clicked,
    delivery_opened,
    email_events_record,
    read_click_token,
    read_open_token,
)
from customers.validators import normalize_email

# A transparent 1x1 GIF (43 bytes), the smallest image every mail client shows.
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00"
    b"!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
SIGNATURE_HEADER = "X-Kartoteka-Signature"
MAX_EVENTS = 1000
# How far ahead of our clock a provider's time may be before it is refused.
CLOCK_SKEW = dt.timedelta(minutes=5)


def _invalid_link(request: HttpRequest, *, language: str | None = None) -> HttpResponse:
    language = language or translation.get_language()
    with translation.override(language):
        response = render(
            request,
            "campaigns/public/invalid_link.html",
            {"page_language": language},
            status=400,
        )
    response["Content-Language"] = language
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


# --- Opens and clicks -------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "HEAD"])
def open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    """The open pixel: always the same GIF, so an invalid token is not told apart."""
    try:
        delivery_id = read_open_token(token)
    except ValidationError:
        delivery_id = None
    if delivery_id is not None and request.method == "GET":
        delivery_opened(delivery_id=delivery_id)
    response = HttpResponse(PIXEL, content_type="image/gif")
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


@never_cache
@require_http_methods(["GET", "HEAD"])
def click(request: HttpRequest, token: str) -> HttpResponse:
    """Record the click and lead on to the address, if the message links there.

    HEAD (link scanners, previews) is answered alike but records nothing.
    """
    try:
        delivery_id, url = read_click_token(token)
    except ValidationError:
        return _invalid_link(request)
    delivery = (
        Delivery.objects.select_related(
            "customer", "campaign__template", "flow__template"
        )
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None:
        return _invalid_link(request)
    if not click_url_allowed(delivery=delivery, url=url):
        return _invalid_link(request, language=delivery.customer.language)
    if request.method == "GET":
        delivery_clicked(delivery_id=delivery.pk, url=url)
    response = HttpResponseRedirect(url)
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


# --- The mail provider's bounces and complaints -----------------------------------


class EmailEventSerializer(serializers.Serializer):
    """One bounce or complaint as the mail provider reports it."""

    type = serializers.ChoiceField(choices=["bounce", "complaint"])
    email = serializers.EmailField(max_length=254)
    message_id = serializers.CharField(
        max_length=255, required=False, allow_blank=True, default=""
    )
    bounce_type = serializers.ChoiceField(choices=["hard", "soft"], required=False)
    at = serializers.DateTimeField(required=False)

    def validate_email(self, value: str) -> str:
        try:
            return normalize_email(value)
        except ValidationError as error:
            raise serializers.ValidationError(error.messages, code="invalid") from None

    def validate_at(self, value: dt.datetime) -> dt.datetime:
        if value > timezone.now() + CLOCK_SKEW:
            raise serializers.ValidationError(
                _("The time is in the future."), code="future"
            )
        return value

    def validate(self, attrs: dict) -> dict:
        if attrs["type"] == "bounce" and not attrs.get("bounce_type"):
            raise serializers.ValidationError(
                {
                    "bounce_type": serializers.ErrorDetail(
                        _("A bounce needs its type: hard or soft."), code="required"
                    )
                }
            )
        return attrs


class EmailEventsSerializer(serializers.Serializer):
    events = EmailEventSerializer(many=True, max_length=MAX_EVENTS)


def _signature_valid(request: HttpRequest, secret: str) -> bool:
    given = request.headers.get(SIGNATURE_HEADER, "")
    scheme, _sep, digest = given.partition("=")
    if scheme.strip().lower() != "sha256":
        return False
    expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    # Bytes: compare_digest refuses non-ASCII text, and a header may hold anything.
    return hmac.compare_digest(
        expected.encode(), digest.strip().lower().encode("utf-8", "replace")
    )


@csrf_exempt  # The provider signs the body instead: it has no session or token.
@never_cache
@require_POST
def email_events(request: HttpRequest) -> JsonResponse:
    """Bounces and complaints, signed with EMAIL_WEBHOOK_SECRET; off while it is unset.

    All events are checked before any is applied: one invalid event and nothing
    is written (400, ``{"events": {"<position>": {"<field>": [errors]}}}``).
    """
    secret = settings.EMAIL_WEBHOOK_SECRET
    if not secret:
        raise Http404
    if not _signature_valid(request, secret):
        return JsonResponse(
            {"detail": _("The signature is missing or wrong.")}, status=403
        )
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return JsonResponse({"detail": _("The body is not valid JSON.")}, status=400)
    serializer = EmailEventsSerializer(data=body)
    if not serializer.is_valid():
        return JsonResponse(serializer.errors, status=400)
    try:
        counts = email_events_record(events=serializer.validated_data["events"])
    except ValidationError as error:
        return JsonResponse({"detail": error.messages}, status=400)
    return JsonResponse(counts)
