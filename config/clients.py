"""Who is on the other end of a request: the one place that reads it.

Without proxies (``TRUSTED_PROXY_COUNT = 0``) the address is REMOTE_ADDR, as the
server saw it, and X-Forwarded-For is ignored: anyone can send that header. Behind
N trusted proxies, each appending the address it saw to X-Forwarded-For, the client
is the N-th address from the right: whatever the client put on the left is its own
word and is never read. The consent ledger's evidence, the access log, the sign-in
lock-out (django-axes) and tracking all take the address from here.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings

USER_AGENT_LIMIT = 500


def client_ip(request: Any) -> str | None:
    """The client's address, or None."""
    proxies = settings.TRUSTED_PROXY_COUNT
    address = request.META.get("REMOTE_ADDR") or None
    if proxies > 0:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        # Fewer entries than proxies: the chain is not what the settings say, and
        # the nearest proxy's own address is the only one known to be true.
        if len(forwarded) >= proxies:
            address = forwarded[-proxies]
    return valid_ip(address)


def valid_ip(value: str | None) -> str | None:
    """The address if it is one (normalised), else None: odd input breaks nothing."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_evidence(request: Any) -> dict[str, str | None]:
    """The address and browser a consent or a confirmation came from."""
    return {
        "ip_address": client_ip(request),
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_LIMIT],
    }
