"""A counting SMTP sink for benchmarks, in a process of its own.

``python bench/_smtp_sink.py`` listens on 127.0.0.1 (a free port, printed on the
first line of stdout), accepts every message without parsing it, and on SIGTERM
prints how many messages and distinct recipients it accepted, then exits. Its own
process keeps it from competing for the sender's interpreter.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading

from aiosmtpd.controller import Controller


class Counter:
    def __init__(self) -> None:
        self.messages = 0
        self.recipients: set[str] = set()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd
        self.messages += 1
        self.recipients.update(envelope.rcpt_tos)
        return "250 OK"


def main() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    counter = Counter()
    controller = Controller(counter, hostname="127.0.0.1", port=port)
    controller.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print(port, flush=True)
    done.wait()
    controller.stop()
    print(counter.messages, len(counter.recipients), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
