"""Who is on the other end of a request: the one place that reads it.

The address is REMOTE_ADDR as the server saw it. Behind a reverse proxy the proxy
must set it (X-Forwarded-For is whatever the client says unless a trusted proxy
rewrites it); trusted-proxy handling belongs here when it comes.
"""

from __future__ import annotations

from typing import Any

USER_AGENT_LIMIT = 500


def client_ip(request: Any) -> str | None:
    """The client's address, or None."""
    return request.META.get("REMOTE_ADDR") or None


def client_evidence(request: Any) -> dict[str, str | None]:
    """The address and browser a consent or a confirmation came from."""
    return {
        "ip_address": client_ip(request),
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_LIMIT],
    }
