"""The REST API's shared parts: one error shape, strict input, idempotent POSTs.

Every error is ``{"status", "code", "detail"}`` plus, for 400, ``"errors"``: a flat
map from field path (``email``, ``lines.2.quantity``) to ``[{"code", "message"}]``.
Services raise Django's ValidationError; the handler turns it into the same 400.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from customers.models import ApiKey, IdempotencyRecord


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[dict[str, str]]]:
    """Flatten DRF's nested error details to dotted paths."""
    if isinstance(detail, dict):
        flat: dict[str, list[dict[str, str]]] = {}
        for key, value in detail.items():
            name = api_settings.NON_FIELD_ERRORS_KEY if key == "__all__" else str(key)
            flat.update(_flatten(value, f"{prefix}.{name}" if prefix else name))
        return flat
    if isinstance(detail, list):
        if all(isinstance(item, exceptions.ErrorDetail) for item in detail):
            return {
                prefix or api_settings.NON_FIELD_ERRORS_KEY: [
                    {"code": item.code, "message": str(item)} for item in detail
                ]
            }
        flat = {}
        for index, item in enumerate(detail):
            flat.update(_flatten(item, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    return {
        prefix or api_settings.NON_FIELD_ERRORS_KEY: [
            {"code": getattr(detail, "code", "invalid"), "message": str(detail)}
        ]
    }


def _from_django(error: DjangoValidationError) -> exceptions.ValidationError:
    if hasattr(error, "error_dict"):
        detail = {
            field: [
                exceptions.ErrorDetail(message, code=err.code or "invalid")
                for err in errors
                for message in err.messages
            ]
            for field, errors in error.error_dict.items()
        }
    else:
        detail = [
            exceptions.ErrorDetail(message, code=err.code or "invalid")
            for err in error.error_list
            for message in err.messages
        ]
    return exceptions.ValidationError(detail)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler, with Django's ValidationError as 400 and one body shape."""
    if isinstance(exc, DjangoValidationError):
        exc = _from_django(exc)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, IdempotentReplay):
        return exc.response
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        body = {
            "status": response.status_code,
            "code": "invalid",
            "detail": str(_("The request has invalid fields.")),
            "errors": _flatten(exc.detail),
        }
    else:
        detail = getattr(exc, "detail", "")
        body = {
            "status": response.status_code,
            "code": getattr(detail, "code", None)
            or getattr(exc, "default_code", "error"),
            "detail": str(detail),
        }
    response.data = body
    return response


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = _("The batch is too large.")
    default_code = "too_large"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = _("The request conflicts with an earlier one.")
    default_code = "conflict"


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not declare: no silent mass assignment."""

    def to_internal_value(self, data):
        unknown = (
            {
                name: [
                    exceptions.ErrorDetail(
                        str(_("Unknown field.")), code="unknown_field"
                    )
                ]
                for name in sorted(set(data) - set(self.fields))
            }
            if isinstance(data, dict)
            else {}
        )
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as error:
            if unknown and isinstance(error.detail, dict):
                raise serializers.ValidationError({**error.detail, **unknown}) from None
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


def validated_data(serializer_class, data: Any, **kwargs: Any) -> dict:
    """Validate ``data`` with ``serializer_class``; raise the API's 400 otherwise."""
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class IdempotentReplay(Exception):  # noqa: N818 - not an error: a stored response
    def __init__(self, response: Response):
        self.response = response


IDEMPOTENCY_HEADER = "Idempotency-Key"


class IdempotentPostMixin:
    """``Idempotency-Key`` on POST: a repeat gets the first response; another body, 409.

    The key is claimed by inserting its record in the request's transaction, so a
    concurrent repeat waits on the unique index and then replays the stored answer.
    Responses of 4xx roll back with the request and are not stored: the client can
    fix the body and retry with the same key.
    """

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self._idempotency_record = None
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if request.method != "POST" or not key or not isinstance(request.auth, ApiKey):
            return
        if len(key) > 255:
            raise exceptions.ValidationError(
                {IDEMPOTENCY_HEADER: [str(_("At most 255 characters."))]}
            )
        digest = hashlib.sha256(
            b"POST " + request.path.encode() + b"\n" + request.body
        ).hexdigest()
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    api_key=request.auth,
                    key=key,
                    method="POST",
                    path=request.path[:500],
                    request_hash=digest,
                )
        except IntegrityError:
            record = IdempotencyRecord.objects.get(api_key=request.auth, key=key)
            if record.request_hash != digest:
                raise Conflict(
                    _("This Idempotency-Key was used with another request body.")
                ) from None
            if record.response_status is None:
                raise Conflict(
                    _("A request with this Idempotency-Key is still in progress.")
                ) from None
            response = Response(record.response_body, status=record.response_status)
            response["Idempotent-Replayed"] = "true"
            raise IdempotentReplay(response) from None
        self._idempotency_record = record

    def handle_exception(self, exc):
        if isinstance(exc, IdempotentReplay):
            return exc.response
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        record = getattr(self, "_idempotency_record", None)
        if record is not None and response.status_code < 400:
            IdempotencyRecord.objects.filter(pk=record.pk).update(
                response_status=response.status_code,
                response_body=json.loads(json.dumps(response.data, default=str)),
            )
        return super().finalize_response(request, response, *args, **kwargs)
