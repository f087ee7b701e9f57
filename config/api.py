"""The REST API's shared parts: one error shape, strict input, idempotent POSTs.

Every error is ``{"status", "code", "detail"}`` plus, for 400, ``"errors"``: a flat
map from field path (``email``, ``lines.2.quantity``) to ``[{"code", "message"}]``.
Services raise Django's ValidationError; the handler turns it into the same 400.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from typing import Any, ClassVar

import django_filters
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import set_rollback

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
                    {"code": item.code or "invalid", "message": str(item)}
                    for item in detail
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
    """DRF's rules, with Django's ValidationError as 400 and one body shape."""
    if isinstance(exc, DjangoValidationError):
        exc = _from_django(exc)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, IdempotentReplay):
        return exc.response
    if not isinstance(exc, exceptions.APIException):
        return None  # a server error: Django answers 500 (and rolls back)
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = f"{int(exc.wait)}"
    response = Response(status=exc.status_code, headers=headers)
    if not isinstance(context.get("view"), ServiceTransactionsMixin):
        # ATOMIC_REQUESTS: the request's transaction must not commit a failure.
        set_rollback()
    if isinstance(exc, exceptions.ValidationError):
        body = {
            "status": response.status_code,
            "code": "invalid",
            "detail": str(_("The request has invalid fields.")),
            "errors": _flatten(exc.detail),
        }
    else:
        detail = getattr(exc, "detail", "")
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        body = {"status": response.status_code, "code": code, "detail": str(detail)}
        if response.status_code == status.HTTP_400_BAD_REQUEST:  # e.g. malformed JSON
            body["errors"] = {
                api_settings.NON_FIELD_ERRORS_KEY: [
                    {"code": code, "message": str(detail)}
                ]
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


class PrebuiltFieldsMixin:
    """A serializer whose fields are built once per class, not once per instance.

    DRF builds every serializer's fields afresh for each instance: it deep-copies
    each declared field (re-running its ``__init__``) and, for a ModelSerializer,
    introspects the model again. For a small request that is most of its CPU. Here
    the fields are built once, on a prototype instance of the class, and shared.

    Sharing is safe because the fields hold no per-request state, and a field
    reaches its parent only for what is the same on every instance (a
    SerializerMethodField's method, which must not read the instance's state).
    A serializer whose root has a context or ``partial=True`` builds its own
    fields, since fields read those through their root.
    """

    _prototypes: ClassVar[dict[type, Any]] = {}
    _prototypes_lock = threading.Lock()

    @cached_property
    def fields(self):
        cls = type(self)
        root = self.root
        if root._context or getattr(root, "partial", False):
            return super().fields
        prototype = self._prototypes.get(cls)
        if prototype is None:
            with self._prototypes_lock:
                prototype = self._prototypes.get(cls)
                if prototype is None:
                    prototype = cls()
                    super(PrebuiltFieldsMixin, prototype).fields  # noqa: B018 - build
                    self._prototypes[cls] = prototype
        return prototype.__dict__["fields"]


class ReadSerializer(PrebuiltFieldsMixin, serializers.ModelSerializer):
    """A model's representation in answers: read-only, its fields built once."""


class StrictSerializer(PrebuiltFieldsMixin, serializers.Serializer):
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


class StrictCharField(serializers.CharField):
    """A CharField that takes only strings: 0 is not a name, nor true a SKU."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 time, compared in UTC (PostgreSQL refuses offsets over 15:59)."""

    def filter(self, qs, value):
        if value is not None:
            try:
                value = value.astimezone(dt.UTC)
            except OverflowError:  # year 1 or 9999 pushed past the calendar's end
                value = (
                    dt.datetime.min.replace(tzinfo=dt.UTC)
                    if value.year == 1
                    else dt.datetime.max.replace(tzinfo=dt.UTC)
                )
        return super().filter(qs, value)


PAGINATION_PARAMS = frozenset({"cursor", "page_size"})


class StrictFilterSet(django_filters.FilterSet):
    """An API FilterSet: an empty or unknown query parameter is a 400, not ignored."""

    def is_valid(self) -> bool:
        valid = super().is_valid()
        unknown = sorted(set(self.data) - set(self.filters) - PAGINATION_PARAMS)
        if unknown:
            self.form.add_error(
                None,
                DjangoValidationError(
                    _("Unknown query parameters: %(names)s."),
                    code="unknown_parameter",
                    params={"names": ", ".join(unknown)},
                ),
            )
            valid = False
        for name in self.filters:
            if name in self.data and self.data.get(name) == "":
                self.form.add_error(
                    name,
                    DjangoValidationError(
                        _("This filter may not be empty."), code="blank"
                    ),
                )
                valid = False
        return valid


class SyncCursorPagination(CursorPagination):
    """Oldest change first, so a client syncs with ``updated_since`` and the cursor.

    A ``page_size`` that is not a whole number from 1 to 1,000 is a 400, not
    silently replaced by the default.
    """

    ordering = ("updated_at", "id")
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size:
            raise exceptions.ValidationError(
                {
                    self.page_size_query_param: [
                        exceptions.ErrorDetail(
                            str(_("Give a whole number from 1 to 1000.")),
                            code="invalid",
                        )
                    ]
                }
            )
        return int(raw)


def validated_data(serializer_class, data: Any, **kwargs: Any) -> dict:
    """Validate ``data`` with ``serializer_class``; raise the API's 400 otherwise."""
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class IdempotentReplay(Exception):  # noqa: N818 - not an error: a stored response
    def __init__(self, response: Response):
        self.response = response


IDEMPOTENCY_HEADER = "Idempotency-Key"


class ServiceTransactionsMixin:
    """The view runs outside ATOMIC_REQUESTS: each service it calls is atomic.

    A request holds no transaction (nor its locks) while it authenticates, parses
    and renders, and the services' own atomic blocks need no savepoints.
    """

    @classmethod
    def as_view(cls, *args, **kwargs):
        return transaction.non_atomic_requests(super().as_view(*args, **kwargs))


class IdempotentPostMixin:
    """``Idempotency-Key`` on POST: a repeat gets the first response; another body, 409.

    The key is claimed by inserting its record in the request's transaction, so a
    concurrent repeat waits on the unique index and then replays the stored answer.
    Responses of 4xx roll back with the request and are not stored: the client can
    fix the body and retry with the same key. Such a request runs in one
    transaction, also in a view that otherwise leaves transactions to its services.
    """

    def dispatch(self, request, *args, **kwargs):
        if request.method == "POST" and IDEMPOTENCY_HEADER in request.headers:
            with transaction.atomic():
                response = super().dispatch(request, *args, **kwargs)
                if response.status_code >= 400:
                    transaction.set_rollback(True)  # the key stays unclaimed
                return response
        return super().dispatch(request, *args, **kwargs)

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


ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "status": {"type": "integer"},
        "code": {"type": "string"},
        "detail": {"type": "string"},
    },
    "required": ["status", "code", "detail"],
}
VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        **ERROR_SCHEMA["properties"],
        "errors": {
            "type": "object",
            "description": "Field path (e.g. `lines.2.quantity`) to its errors.",
            "additionalProperties": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                    },
                    "required": ["code", "message"],
                },
            },
        },
    },
    "required": ["status", "code", "detail", "errors"],
}
ERROR_RESPONSES = {
    "400": ("ValidationError", "Invalid input: every bad field, by its path."),
    "401": ("Error", "No API key, or a wrong or revoked one."),
    "403": ("Error", "The API key lacks the scope (read or write) this needs."),
    "404": ("Error", "Not found in the API key's store."),
    "429": ("Error", "Too many requests for this API key; see Retry-After."),
}


def add_error_responses(result, generator, request, public):
    """drf-spectacular hook: document the one error shape on every operation."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    components["ValidationError"] = VALIDATION_ERROR_SCHEMA
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            codes = dict(ERROR_RESPONSES)
            if method == "post":
                codes["409"] = (
                    "Error",
                    "The Idempotency-Key was used with another body, or is in use.",
                )
                codes["413"] = ("Error", "More items than one request may carry.")
            for code, (schema_name, description) in codes.items():
                response = {
                    "description": description,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{schema_name}"}
                        }
                    },
                }
                if code == "429":
                    response["headers"] = {
                        "Retry-After": {
                            "description": "Seconds to wait before trying again.",
                            "schema": {"type": "integer"},
                        }
                    }
                responses.setdefault(code, response)
            if method == "post":
                operation.setdefault("parameters", []).append(
                    {
                        "name": IDEMPOTENCY_HEADER,
                        "in": "header",
                        "required": False,
                        "description": (
                            "Repeat a POST safely: the same key and body return the "
                            "first response; the same key with another body is 409."
                        ),
                        "schema": {"type": "string", "maxLength": 255},
                    }
                )
    return result
