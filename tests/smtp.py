"""A real SMTP server for tests and benchmarks: aiosmtpd on 127.0.0.1, in a thread.

It keeps every message it accepts. With ``delay`` it holds each message that long
before accepting it, and with ``gate`` cleared until it is set again; a client
that vanishes meanwhile (a killed worker) has not delivered it, as with a real
server: aiosmtpd cancels the handler when the connection is lost, so the message
is never recorded.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from email.message import EmailMessage

from aiosmtpd.controller import Controller


class _Handler:
    def __init__(self, sink: SmtpSink):
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd
        if not self.sink.gate.is_set():
            self.sink.holding.set()
            try:
                while not self.sink.gate.is_set():
                    await asyncio.sleep(0.01)
            finally:
                self.sink.holding.clear()
        if self.sink.delay:
            # Not "holding": a client killed now may already be past its send.
            await asyncio.sleep(self.sink.delay)
        message = email.message_from_bytes(
            envelope.original_content or envelope.content, policy=email.policy.default
        )
        with self.sink.lock:
            self.sink.messages.append(message)
            self.sink.envelopes.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


class SmtpSink:
    """Start with ``with SmtpSink() as sink:``; ``sink.port``, ``sink.messages``."""

    def __init__(self, *, delay: float = 0.0, port: int = 0):
        self.delay = delay
        self.messages: list[EmailMessage] = []
        self.envelopes: list[list[str]] = []
        self.lock = threading.Lock()
        # Cleared, every message waits at the gate (``holding`` is set meanwhile)
        # until it is set again: a test can kill the sender while one is in hand,
        # and know that every message before it was answered and recorded.
        self.gate = threading.Event()
        self.gate.set()
        self.holding = threading.Event()
        self.controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=port or _free_port()
        )

    @property
    def port(self) -> int:
        return self.controller.port

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

    def received_by(self) -> dict[str, int]:
        """How many messages each address received."""
        counts: dict[str, int] = {}
        with self.lock:
            for recipients in self.envelopes:
                for address in recipients:
                    counts[address] = counts.get(address, 0) + 1
        return counts

    def wait_for(self, count: int, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return True
            time.sleep(0.05)
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
