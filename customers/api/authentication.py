"""``Authorization: Api-Key <key>``: a store's key, its scopes and its rate limit."""

from __future__ import annotations

from datetime import timedelta
from functools import cache

from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from psycopg import sql
from rest_framework import exceptions, permissions, throttling
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from config import rawsql
from customers.models import ApiKey, Store
from customers.services import api_key_hash

KEYWORD = "api-key"
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiKeyAuthentication(BaseAuthentication):
    """Only the header is read: a key in a query string would end up in logs."""

    def authenticate(self, request):
        header = get_authorization_header(request).decode("latin-1")
        scheme, _sep, raw_key = header.partition(" ")
        if scheme.lower() != KEYWORD:
            return None
        raw_key = raw_key.strip()
        if not raw_key:
            raise exceptions.AuthenticationFailed(_("The API key is missing."))
        now = timezone.now()
        api_key = _active_key(api_key_hash(raw_key), now)
        if api_key is None:
            raise exceptions.AuthenticationFailed(_("The API key is wrong or revoked."))
        if (
            api_key.last_used_at is None
            or now - api_key.last_used_at > LAST_USED_RESOLUTION
        ):
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        return AnonymousUser(), api_key

    def authenticate_header(self, request) -> str:
        return 'Api-Key realm="api"'


@cache
def _active_key_query() -> str:
    return rawsql.compiled(
        sql.SQL(
            "SELECT {key}, {store} FROM {keys} k JOIN {stores} s ON s.id = k.store_id"
            " WHERE k.key_hash = %s AND k.revoked_at IS NULL"
            " AND (k.expires_at IS NULL OR k.expires_at > %s)"
        ).format(
            key=rawsql.columns(ApiKey, "k"),
            store=rawsql.columns(Store, "s"),
            keys=rawsql.table(ApiKey),
            stores=rawsql.table(Store),
        )
    )


def _active_key(key_hash: str, now) -> ApiKey | None:
    """``ApiKey.objects.active().select_related("store")`` by hash, precompiled.

    Every API request runs this lookup; see config.rawsql for why it is hand-written.
    """
    with connection.cursor() as cursor:
        cursor.execute(_active_key_query(), [key_hash, now])
        row = cursor.fetchone()
    if row is None:
        return None
    split = rawsql.column_count(ApiKey)
    api_key = rawsql.from_row(ApiKey, row[:split])
    api_key.store = rawsql.from_row(Store, row[split:])
    return api_key


class HasApiKeyScope(permissions.BasePermission):
    """Reads need the read scope, writes the write scope."""

    message = _("This API key may not do that: it lacks the needed scope.")

    def has_permission(self, request, view) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return False
        scope = "read" if request.method in permissions.SAFE_METHODS else "write"
        return api_key.has_scope(scope)


class ApiKeyRateThrottle(throttling.SimpleRateThrottle):
    """A rate per API key (API_RATE_LIMIT), answered with 429 and Retry-After."""

    scope = "api_key"

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, ApiKey):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Tells drf-spectacular how ApiKeyAuthentication appears in the schema."""

    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`",
        }
