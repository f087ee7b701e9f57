"""Consents over the API: grants and withdrawals, the state and the ledger, sign-ups.

Thin: the rules are consents.services' and consents.double_opt_in's.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import IdempotentPostMixin, ServiceTransactionsMixin, validated_data
from consents.api.serializers import (
    ConsentEventSerializer,
    ConsentInputSerializer,
    CustomerConsentsSerializer,
    NewsletterInputSerializer,
    NewsletterResultSerializer,
)
from consents.double_opt_in import newsletter_sign_up
from consents.models import ConsentEvent, ConsentPurpose, ConsentState
from consents.services import consent_record
from customers.models import Customer
from customers.signals import personal_data_accessed_send

EXTERNAL_ID = OpenApiParameter(
    "external_id",
    str,
    OpenApiParameter.PATH,
    description="The store's customer id.",
)
CONSENT_GRANT_EXAMPLE = OpenApiExample(
    "A grant ticked at checkout",
    value={
        "purpose": "email_marketing",
        "action": "grant",
        "text_version": 1,
        "language": "pl",
        "occurred_at": "2026-03-01T12:30:00+01:00",
        "source": "checkout_form",
        "ip": "83.12.44.123",
        "user_agent": "Mozilla/5.0 (Android 14; Mobile)",
        "evidence": {"form": "checkout", "checkbox": "newsletter", "order": "1001"},
    },
    request_only=True,
)
CONSENT_WITHDRAW_EXAMPLE = OpenApiExample(
    "A withdrawal in the account settings",
    value={
        "purpose": "sms_marketing",
        "action": "withdraw",
        "occurred_at": "2026-03-02T08:00:00+01:00",
        "source": "account_form",
        "ip": "83.12.44.123",
        "user_agent": "Mozilla/5.0 (Windows NT 10.0)",
    },
    request_only=True,
)
NEWSLETTER_EXAMPLE = OpenApiExample(
    "A footer newsletter form",
    value={
        "email": "anna.nowak@example.pl",
        "first_name": "Anna",
        "language": "pl",
        "purpose": "email_marketing",
        "ip": "83.12.44.123",
        "user_agent": "Mozilla/5.0 (Android 14; Mobile)",
        "evidence": {"form": "footer", "page": "https://sklep.example.pl/"},
    },
    request_only=True,
)


class CustomerConsentsView(ServiceTransactionsMixin, IdempotentPostMixin, APIView):
    """A customer's consents, by the calling store's customer id."""

    def _customer(self, external_id: str) -> Customer:
        return get_object_or_404(
            Customer.objects.not_erased(),
            identities__store=self.request.auth.store,
            identities__external_id=external_id,
        )

    @extend_schema(
        parameters=[EXTERNAL_ID],
        responses={200: CustomerConsentsSerializer},
        summary="Get a customer's consents and their history",
        description=(
            "`consents`: every purpose and whether it is granted now (the newest "
            "event wins). `history`: the ledger those follow from, newest first, "
            "from every store."
        ),
    )
    def get(self, request, external_id: str):
        customer = self._customer(external_id)
        personal_data_accessed_send(
            sender=type(self),
            request=request,
            customer_ids=[customer.pk],
            action="api_read",
            purpose="consents",
        )
        states = {
            state.purpose_id: state
            for state in ConsentState.objects.filter(customer=customer).select_related(
                "event__text"
            )
        }
        purposes = ConsentPurpose.objects.filter(
            Q(is_active=True) | Q(pk__in=list(states))
        )
        consents = []
        for purpose in purposes:
            state = states.get(purpose.pk)
            text = state.event.text if state else None
            consents.append(
                {
                    "purpose": purpose.code,
                    "granted": bool(state and state.granted),
                    "changed_at": state.changed_at if state else None,
                    "text_version": text.version if text else None,
                    "language": text.language if text else None,
                }
            )
        history = (
            ConsentEvent.objects.filter(customer=customer)
            .select_related("purpose", "text", "store")
            .order_by("-occurred_at", "-id")
        )
        return Response(
            CustomerConsentsSerializer(
                {"external_id": external_id, "consents": consents, "history": history}
            ).data
        )

    @extend_schema(
        parameters=[EXTERNAL_ID],
        request=ConsentInputSerializer,
        responses={201: ConsentEventSerializer, 200: ConsentEventSerializer},
        examples=[CONSENT_GRANT_EXAMPLE, CONSENT_WITHDRAW_EXAMPLE],
        summary="Record a consent given or withdrawn, with its evidence",
        description=(
            "A grant needs `text_version` (and `language`, if not Polish): the "
            "version of the text the person agreed to. A withdrawal takes effect "
            "at once. 201 when recorded; 200 when it repeats the newest event "
            "(same purpose, action, text, source and `occurred_at`), which "
            "records nothing. A contact erased on request can consent again only "
            "through a double opt-in (`POST /newsletter/`)."
        ),
    )
    def post(self, request, external_id: str):
        customer = self._customer(external_id)
        data = validated_data(ConsentInputSerializer, request.data)
        text = None
        if data.get("text_version") is not None:
            text = {
                "version": data["text_version"],
                "language": data.get("language") or settings.LANGUAGE_CODE,
            }
        event, created = consent_record(
            customer=customer,
            purpose=data["purpose"],
            action=data["action"],
            source=data["source"],
            text=text,
            occurred_at=data["occurred_at"],
            store=request.auth.store,
            api_key=request.auth,
            evidence=data.get("evidence"),
            ip_address=data.get("ip") or None,
            user_agent=data.get("user_agent", ""),
        )
        return Response(
            ConsentEventSerializer(event).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class NewsletterSignUpView(ServiceTransactionsMixin, IdempotentPostMixin, APIView):
    """Newsletter sign-ups: the consent is recorded once the person confirms."""

    @extend_schema(
        request=NewsletterInputSerializer,
        responses={202: NewsletterResultSerializer, 200: NewsletterResultSerializer},
        examples=[NEWSLETTER_EXAMPLE],
        summary="Sign someone up for the newsletter (double opt-in)",
        description=(
            "Finds or creates the customer by email (and `external_id`, if given) "
            "and emails them a link to confirm; the consent is recorded only when "
            "they do. 202 `pending` with the sign-up's id. 200 `already_confirmed` "
            "when the consent is already granted: nothing is sent. Repeating a "
            "sign-up within minutes returns the pending one without a second "
            "email."
        ),
    )
    def post(self, request):
        data = validated_data(NewsletterInputSerializer, request.data)
        signup = newsletter_sign_up(
            store=request.auth.store,
            api_key=request.auth,
            email=data["email"],
            purpose=data["purpose"],
            first_name=data.get("first_name") or None,
            language=data.get("language") or None,
            external_id=data.get("external_id") or None,
            ip_address=data.get("ip") or None,
            user_agent=data.get("user_agent", ""),
            evidence=data.get("evidence"),
        )
        if signup is None:
            result = {
                "id": None,
                "status": "already_confirmed",
                "purpose": data["purpose"],
                "requested_at": None,
            }
            return Response(NewsletterResultSerializer(result).data)
        result = {
            "id": signup.pk,
            "status": "pending",
            "purpose": data["purpose"],
            "requested_at": signup.requested_at,
        }
        return Response(
            NewsletterResultSerializer(result).data, status=status.HTTP_202_ACCEPTED
        )
