"""``make run``: migrate, seed the demo once, and run web, Celery worker and beat.

With ``DATABASE_URL`` unset the settings start the embedded PostgreSQL; with
``CELERY_BROKER_URL`` unset this starts an embedded Redis and hands its socket to the
worker, beat and web processes. Ctrl-C stops them all, and the embedded servers this
run started. The first run writes a ``.env`` with ``DEBUG=true`` and a fresh
``SECRET_KEY``: ``make run`` is for a developer's or evaluator's machine, production
runs gunicorn with its own environment (see README).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from config import embedded
from config.celery import QUEUES

BASE_DIR = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, str(BASE_DIR / "manage.py")]
DEMO_CUSTOMERS = int(os.environ.get("DEMO_CUSTOMERS", "5000"))


def ensure_env_file() -> None:
    env_file = BASE_DIR / ".env"
    if env_file.exists():
        return
    env_file.write_text(
        "# Written by `make install` for local use; production sets its own.\n"
        "DEBUG=true\n"
        f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
    )
    print(f"Wrote {env_file} (DEBUG=true, a new SECRET_KEY).")


def free_port(preferred: int) -> int:
    for port in range(preferred, preferred + 50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise SystemExit(f"No free port between {preferred} and {preferred + 49}.")


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    """Return once the web server accepts connections (or has died, or timed out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)


def manage(*args: str) -> None:
    subprocess.run([*MANAGE, *args], check=True, cwd=BASE_DIR)  # noqa: S603


def main() -> int:
    ensure_env_file()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    import environ

    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

    started_pg = False
    if "DATABASE_URL" not in os.environ:
        started_pg = not (embedded.PG_DIR / "postmaster.pid").exists()
        embedded.database_settings()
        print(f"Embedded PostgreSQL: {embedded.PG_DIR}")
    redis_client = None  # keeps the embedded Redis alive while we run
    if "CELERY_BROKER_URL" not in os.environ:
        redis_client, broker_url = embedded.start_redis()
        os.environ["CELERY_BROKER_URL"] = broker_url
        print(f"Embedded Redis: {broker_url}")

    manage("migrate", "--noinput")
    manage("seed_demo", "--customers", str(DEMO_CUSTOMERS), "--if-empty")

    import django

    django.setup()
    from customers.demo import DEMO_PASSWORD, DEMO_USERNAME

    port = free_port(int(os.environ.get("PORT", "8000")))
    commands = {
        "web": [*MANAGE, "runserver", f"127.0.0.1:{port}", "--noreload"],
        "worker": [
            *(sys.executable, "-m", "celery", "-A", "config", "worker"),
            *("--loglevel", "INFO", "--concurrency", "2"),
            *("--queues", ",".join(QUEUES)),
        ],
        "beat": [
            *(sys.executable, "-m", "celery", "-A", "config", "beat"),
            *("--loglevel", "INFO"),
        ],
    }
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    processes: dict[str, subprocess.Popen] = {}
    exit_code = 0
    try:
        for name, command in commands.items():
            # Own process groups: Ctrl-C reaches us once and we stop each child.
            processes[name] = subprocess.Popen(  # noqa: S603
                command, cwd=BASE_DIR, start_new_session=True
            )
        wait_for_port(port, processes["web"])
        print(
            "\n"
            f"  Kartoteka is running at http://127.0.0.1:{port}/\n"
            f"  Log in as {DEMO_USERNAME} / {DEMO_PASSWORD}"
            f"  (admin: http://127.0.0.1:{port}/admin/)\n"
            "  The first sign-in sets up two-step sign-in: scan the QR code with an\n"
            "  authenticator app (or type its key into any TOTP tool).\n"
            "  Press Ctrl-C to stop web, worker and beat.\n",
            flush=True,
        )
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    print(
                        f"{name} exited with {process.returncode}; stopping the rest."
                    )
                    exit_code = process.returncode or 1
                    stopping = True
            time.sleep(0.5)
    finally:
        print("Stopping…", flush=True)
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        if redis_client is not None:
            embedded.stop_redis(redis_client)
        if started_pg:
            embedded.stop_database()
    print("Stopped.")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
