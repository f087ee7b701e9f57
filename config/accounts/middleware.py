"""Idle sessions and the second factor, for every request.

Both run after django-otp's ``OTPMiddleware`` (``request.user.is_verified()``) and
Django's messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import SESSION_KEY, logout
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject
from django.utils.translation import ngettext

# When the session last saw a request, and when it began (seconds since the epoch).
LAST_SEEN_KEY = "accounts_last_seen"
STARTED_KEY = "accounts_started"
# A request within this many seconds of the stored time does not store it again:
# a session is written about once a minute, not on every request.
LAST_SEEN_RESOLUTION = 60


def session_started(request: HttpRequest) -> None:
    """Start the clocks at sign-in (``user_logged_in``): no extra session write."""
    now = int(time.time())
    request.session[STARTED_KEY] = now
    request.session[LAST_SEEN_KEY] = now


class IdleSessionMiddleware:
    """Signs out a session idle for ``SESSION_IDLE_MINUTES`` or older than the limit.

    A session ends after ``SESSION_IDLE_MINUTES`` without a request, and
    ``SESSION_MAX_HOURS`` after it began however busy it was (each save of a
    session pushes its cookie's expiry on, so the cookie alone would never end an
    active one). The request then goes on as an anonymous one: a staff page sends
    it to the sign-in page, which says why.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = request.session
        if SESSION_KEY in session:
            now = int(time.time())
            last_seen = session.get(LAST_SEEN_KEY)
            started = session.setdefault(STARTED_KEY, now)
            idle = settings.SESSION_IDLE_MINUTES
            if isinstance(last_seen, int) and now - last_seen > idle * 60:
                logout(request)
                messages.info(
                    request,
                    ngettext(
                        "You were signed out after %(minutes)d minute without "
                        "activity. Please sign in again.",
                        "You were signed out after %(minutes)d minutes without "
                        "activity. Please sign in again.",
                        idle,
                    )
                    % {"minutes": idle},
                )
            elif now - started > settings.SESSION_MAX_HOURS * 3600:
                logout(request)
                messages.info(
                    request,
                    ngettext(
                        "You were signed out %(hours)d hour after signing in. "
                        "Please sign in again.",
                        "You were signed out %(hours)d hours after signing in. "
                        "Please sign in again.",
                        settings.SESSION_MAX_HOURS,
                    )
                    % {"hours": settings.SESSION_MAX_HOURS},
                )
            elif not isinstance(last_seen, int) or (
                now - last_seen >= LAST_SEEN_RESOLUTION
            ):
                session[LAST_SEEN_KEY] = now
        return self.get_response(request)


class SecondFactorMiddleware:
    """A user who gave the password but not yet the second factor is anonymous.

    Every staff page, the admin and every other view that checks ``request.user``
    then refuses them exactly as it refuses a stranger, so no page can forget the
    check. :func:`unverified_user` gives the pages that ask for the second factor
    (and sign-in, which sends them there) the user behind it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        signed_in = request.user
        request._accounts_signed_in = signed_in

        def verified_user():
            if signed_in.is_authenticated and signed_in.is_verified():
                return signed_in
            return AnonymousUser()

        request.user = SimpleLazyObject(verified_user)
        request.auser = sync_to_async(verified_user)
        return self.get_response(request)


def unverified_user(request: HttpRequest):
    """The user signed in with the password alone, or None."""
    signed_in = getattr(request, "_accounts_signed_in", None)
    if signed_in is not None and signed_in.is_authenticated:
        if not signed_in.is_verified():
            return signed_in
    return None
