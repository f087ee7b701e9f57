"""``Authorization: Api-Key <key>``: a store's key, its scopes and its rate limit."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, permissions, throttling
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from customers.models import ApiKey
from customers.services import api_key_authenticate

KEYWORD = "api-key"


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
        api_key = api_key_authenticate(raw_key)
        if api_key is None:
            raise exceptions.AuthenticationFailed(_("The API key is wrong or revoked."))
        return AnonymousUser(), api_key

    def authenticate_header(self, request) -> str:
        return 'Api-Key realm="api"'


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
    """A rate per API key (API_RATE_LIMIT), answered with 429 and Retry-After.

    Requests are counted in fixed windows of the rate's period, with one atomic
    increment of a counter in the cache. DRF's own throttle keeps a timestamp per
    request and re-pickles the whole list on every request, a cost that grows with
    the rate. Across a window boundary a key may briefly reach twice its rate.
    """

    scope = "api_key"

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, ApiKey):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_ends = (window + 1) * self.duration
        counter = f"{key}:{window}"
        try:
            count = self.cache.incr(counter)
        except ValueError:  # the window's first request
            count = 1 if self.cache.add(counter, 1, self.duration + 1) else None
            if count is None:  # another process was first
                count = self.cache.incr(counter)
        return count <= self.num_requests

    def wait(self) -> float:
        return max(self.window_ends - self.now, 1.0)


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
