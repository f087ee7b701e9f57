"""The API benchmarks' real server and load: gunicorn on 127.0.0.1, client threads.

:func:`api_server` starts ``gunicorn config.wsgi`` on a free port of 127.0.0.1 with
production settings (DEBUG off) against the benchmark database the harness made,
and stops it afterwards. :func:`run_load` sends a bounded list of requests from a
few threads, each on its own keep-alive connection, until the list or the time cap
runs out, and reports throughput and latency percentiles. For staff pages it can
also send each connection's own headers (a session cookie), follow redirects like a
browser and check each answer's body, keeping one sample per request so the
caller can group them by page kind.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    workers: int
    worker_class: str
    threads: int
    pid: int

    def describe(self) -> dict:
        return {
            "server": "gunicorn config.wsgi",
            "workers": self.workers,
            "worker_class": self.worker_class,
            "threads": self.threads,
            "debug": False,
        }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _database_env() -> dict[str, str]:
    """The benchmark database as DATABASE_URL (a socket directory goes in PGHOST)."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    user = quote(database.get("USER") or "", safe="")
    password = quote(str(database.get("PASSWORD") or ""), safe="")
    credentials = f"{user}:{password}@" if password else f"{user}@" if user else ""
    host = str(database.get("HOST") or "")
    port = str(database.get("PORT") or "")
    env = {}
    if host.startswith("/"):
        # libpq reads a Unix socket directory from PGHOST; a URL cannot carry it.
        env["PGHOST"], env["PGPORT"] = host, port
        location = ""
    else:
        location = f"{host}:{port}" if port else host
    env["DATABASE_URL"] = f"postgres://{credentials}{location}/{database['NAME']}"
    return env


@contextmanager
def api_server(
    *,
    workers: int = 2,
    worker_class: str = os.environ.get("BENCH_GUNICORN_WORKER_CLASS", "gthread"),
    threads: int = int(os.environ.get("BENCH_GUNICORN_THREADS", "4")),
    extra_env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Run gunicorn with production settings on the benchmark database.

    ``BENCH_GUNICORN_WORKER_CLASS`` (default gthread) and ``BENCH_GUNICORN_THREADS``
    (default 4, per worker) tune it; ``extra_env`` adds to or overrides the
    server's environment (settings read from it).
    """
    port = _free_port()
    env = {
        **os.environ,
        **_database_env(),
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DEBUG": "false",
        "SECRET_KEY": "kartoteka-bench-only-not-a-secret",
        "ALLOWED_HOSTS": HOST,
        "SECURE_SSL_REDIRECT": "false",
        "API_RATE_LIMIT": "1000000/min",
        "CONN_MAX_AGE": "600",
        **(extra_env or {}),
    }
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "config.wsgi",
        f"--bind={HOST}:{port}",
        f"--workers={workers}",
        f"--worker-class={worker_class}",
        f"--threads={threads}",
        "--keep-alive=30",
        "--log-level=warning",
    ]
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in finally
        prefix="kartoteka-bench-gunicorn-", suffix=".log", delete=False
    )
    process = subprocess.Popen(  # noqa: S603 - fixed arguments
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _wait_until_up(process, port, Path(log.name))
        yield Server(HOST, port, workers, worker_class, threads, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        text = Path(log.name).read_text(errors="replace").strip()
        if text:
            print(f"  gunicorn log ({log.name}):\n" + _tail(text), file=sys.stderr)
        else:
            Path(log.name).unlink(missing_ok=True)


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def _wait_until_up(process: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                "gunicorn exited at start:\n" + _tail(log.read_text(errors="replace"))
            )
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=5)
            connection.request("GET", "/api/v1/customers/")
            status = connection.getresponse().status
            connection.close()
        except OSError:
            time.sleep(0.2)
            continue
        if status == 401:  # up, and answering the API (no key sent)
            return
        raise RuntimeError(f"gunicorn answers {status} instead of 401")
    raise RuntimeError("gunicorn did not start within 60 s")


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def cpu_snapshot(server: Server) -> dict[str, float]:
    """CPU seconds used so far by the server, the database backends and this client.

    The database's share counts the client backends connected to the benchmark
    database (the server's, kept open by CONN_MAX_AGE, and this process's); other
    databases on the same cluster, autovacuum and PostgreSQL's background
    processes are left out.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND backend_type = 'client backend'"
        )
        backends = [pid for (pid,) in cursor.fetchall()]
    times = os.times()
    return {
        "server": sum(
            _cpu_seconds(pid) for pid in [server.pid, *_children(server.pid)]
        ),
        "database": sum(_cpu_seconds(pid) for pid in backends),
        "client": times.user + times.system,
    }


def cpu_per_request(
    before: dict[str, float], after: dict[str, float], requests: int
) -> dict[str, float]:
    """Milliseconds of CPU per request, by tier, between two snapshots."""
    return {
        tier: round((after[tier] - before[tier]) * 1000 / max(requests, 1), 1)
        for tier in before
    }


@dataclass(frozen=True)
class Sample:
    """One request as sent by :func:`run_load`: its answer, its time."""

    index: int  # in the list of requests
    seconds: float  # from sending to the last byte of the final answer
    status: int  # of the final answer (after any redirects followed)
    ok: bool  # the expected status, and the check (if any) passed
    redirects: int = 0  # followed
    location: str = ""  # the last redirect's target path, if any


@dataclass
class Load:
    """What a load run measured."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    bodies: list[bytes] = field(default_factory=list)  # of unexpected answers
    samples: list[Sample] = field(default_factory=list)

    @property
    def failures(self) -> int:
        """Requests whose answer had another status or failed the check."""
        return sum(1 for sample in self.samples if not sample.ok)

    @property
    def requests(self) -> int:
        return len(self.latencies)

    def percentile(self, share: float) -> float:
        """Latency in ms at ``share`` (0.5, 0.95), nearest rank."""
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        rank = min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))
        return ordered[rank] * 1000

    def describe(self) -> dict:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 2),
            "latency_ms": {
                "p50": round(self.percentile(0.5), 1),
                "p95": round(self.percentile(0.95), 1),
                "p99": round(self.percentile(0.99), 1),
                "max": round(max(self.latencies, default=0) * 1000, 1),
            },
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


def run_load(
    server: Server,
    requests: Sequence[tuple[str, str, bytes] | tuple[str, str, bytes, dict]],
    *,
    headers: dict[str, str],
    concurrency: int,
    expect: int,
    time_cap: float,
    connection_headers: Sequence[dict[str, str]] | None = None,
    follow_redirects: int = 0,
    check: Callable[[int, bytes], bool] | None = None,
) -> Load:
    """Send ``(method, path, body)`` requests from ``concurrency`` threads.

    Each thread keeps one connection open. Stops when every request is sent or
    ``time_cap`` seconds have passed (requests under way then still finish).

    A request may carry a fourth item, headers of its own. Thread ``i`` also sends
    ``connection_headers[i % len(connection_headers)]`` (its own session cookie,
    say). With ``follow_redirects`` > 0 a redirect to this server is followed with
    a GET on the same connection, up to that many hops, as a browser would: the
    time and the status are then those of the whole chain. ``check(index, body)``,
    if given, must also pass for the answer to count as expected.
    """
    lock = threading.Lock()
    position = iter(range(len(requests)))
    load = Load(seconds=0.0)
    started = time.perf_counter()
    deadline = started + time_cap

    def worker(number: int) -> None:
        connection = http.client.HTTPConnection(server.host, server.port, timeout=120)
        own = (
            connection_headers[number % len(connection_headers)]
            if connection_headers
            else {}
        )
        latencies, statuses, bodies, samples = [], Counter(), [], []
        try:
            while time.perf_counter() < deadline:
                with lock:
                    index = next(position, None)
                if index is None:
                    break
                method, path, body, *extra = requests[index]
                sent = time.perf_counter()
                hops, location = 0, ""
                while True:
                    connection.request(
                        method,
                        path,
                        body=body,
                        headers={
                            **headers,
                            **own,
                            **(extra[0] if extra else {}),
                            "Content-Type": "application/json",
                            "Content-Length": str(len(body)),
                        },
                    )
                    response = connection.getresponse()
                    answer = response.read()
                    if response.getheader("Connection", "").lower() == "close":
                        connection.close()
                        connection = http.client.HTTPConnection(
                            server.host, server.port, timeout=120
                        )
                    target = _local_redirect(response)
                    if target is None or hops >= follow_redirects:
                        break
                    hops += 1
                    method, path, body, location = "GET", target, b"", target
                latencies.append(time.perf_counter() - sent)
                statuses[response.status] += 1
                ok = response.status == expect and (
                    check is None or check(index, answer)
                )
                samples.append(
                    Sample(
                        index=index,
                        seconds=latencies[-1],
                        status=response.status,
                        ok=ok,
                        redirects=hops,
                        location=location,
                    )
                )
                if not ok and len(bodies) < 5:
                    bodies.append(answer[:2000])
        finally:
            connection.close()
            with lock:
                load.latencies.extend(latencies)
                load.statuses.update(statuses)
                load.bodies.extend(bodies)
                load.samples.extend(samples)

    threads = [
        threading.Thread(target=worker, args=(number,)) for number in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    load.seconds = time.perf_counter() - started
    return load


def _local_redirect(response: http.client.HTTPResponse) -> str | None:
    """The path a redirect points to on this server, or None (not a redirect)."""
    if response.status not in (301, 302, 303, 307, 308):
        return None
    location = response.getheader("Location") or ""
    parts = urlsplit(location)
    if parts.netloc and parts.hostname not in (HOST, "localhost"):
        return None
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
