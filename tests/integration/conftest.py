"""A real Celery worker in a subprocess, on a real broker and the test database.

The broker is CELERY_BROKER_URL when set (CI sets the machine's Redis or RabbitMQ),
else an embedded Redis started here, as `make run` does.
"""

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from config import celery_app, embedded
from config.celery import QUEUES

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def broker_url():
    if os.environ.get("CELERY_BROKER_URL"):
        yield os.environ["CELERY_BROKER_URL"]
        return
    client, url = embedded.start_redis()
    yield url
    embedded.stop_redis(client)


def _database_url(settings_dict) -> str:
    host, port = settings_dict["HOST"], settings_dict["PORT"] or "5432"
    user = quote(settings_dict["USER"] or "", safe="")
    name = settings_dict["NAME"]
    if host.startswith("/"):  # a Unix socket directory, as the embedded server uses
        return f"postgres://{user}@/{name}?host={quote(host)}&port={port}"
    password = quote(settings_dict["PASSWORD"] or "", safe="")
    return f"postgres://{user}:{password}@{host}:{port}/{name}"


def _start(env: dict, broker_url: str, tmp_path: Path, name: str):
    """A worker subprocess that answers a ping; fails the test otherwise."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--pool",
        "solo",
        "--loglevel",
        "INFO",
        "--hostname",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
        "--queues",
        ",".join(QUEUES),
    ]
    # In the full suite the first worker of the session has been seen ready yet
    # never answering (CI, three runs in a row; never alone or in any subset): a
    # second start answers. Both logs go into the failure.
    logs = []
    for attempt in range(2):
        log = tmp_path / f"{name}-{attempt}.log"
        logs.append(log)
        with log.open("w") as out:
            worker = subprocess.Popen(  # noqa: S603
                command,
                cwd=BASE_DIR,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if _answers(worker, broker_url, seconds=30):
            return worker
        _stop(worker)
    pytest.fail(
        "The Celery worker did not start:\n"
        + "\n".join(log.read_text() for log in logs)
    )


@pytest.fixture
def start_worker(transactional_db, broker_url, tmp_path):
    """Start workers on the test database: ``start_worker(**extra_environment)``.

    Each call starts one more (with a hostname of its own); all are stopped when
    the test ends.
    """
    base_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(connection.settings_dict),
        "CELERY_BROKER_URL": broker_url,
    }
    previous = celery_app.conf.broker_url
    celery_app.conf.broker_url = broker_url
    # Connections an earlier test opened (a page that queued a task) still go to
    # the previous broker: the ping would never reach this worker.
    celery_app.close()
    workers = []

    def start(**extra_env: str):
        name = f"test{len(workers)}"
        worker = _start({**base_env, **extra_env}, broker_url, tmp_path, name)
        workers.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in workers:
            if worker.poll() is None:
                _stop(worker)
        celery_app.conf.broker_url = previous
        celery_app.close()


@pytest.fixture
def celery_worker(start_worker):
    """One worker on the test database, answering a ping."""
    return start_worker()


def _answers(worker, broker_url: str, *, seconds: float) -> bool:
    """Whether ``worker`` answers a ping within ``seconds`` (over its own broker)."""
    deadline = time.monotonic() + seconds
    with celery_app.connection_for_write(broker_url) as broker:
        while not celery_app.control.ping(timeout=1, connection=broker):
            if worker.poll() is not None or time.monotonic() > deadline:
                return False
    return True


def _stop(worker) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False
