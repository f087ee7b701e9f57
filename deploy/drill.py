"""The deployment drill's helpers (deploy/drill.sh runs them; docs/deploy.md).

Each subcommand is one step of the drill, and exits non-zero with a message on
failure:

- ``envfile OUT KEY=VALUE ...``: the guide's env file (deploy/kartoteka.env.example)
  with the drill's values.
- ``exports FILE``: the env file as ``export KEY='value'`` lines for a shell, read
  the way systemd's EnvironmentFile reads it.
- ``commands``: checks that each systemd unit's command line is the Procfile's,
  and prints the Procfile's lines as ``name<TAB>command``.
- ``nginx DIR ROOT WEB_PORT TLS_PORT HTTP_PORT``: deploy/nginx/kartoteka.conf for
  this machine (loopback ports, DIR's self-signed certificate, the checkout's
  static files), in DIR/nginx.conf.
- ``static URL``: a hashed static file from collectstatic's manifest, served with
  far-future caching.
- ``sink DIR``: a real SMTP server (aiosmtpd) on 127.0.0.1; writes its port to
  DIR/port and one JSON line per message to DIR/messages.jsonl.
- ``prepare OUT``: a store, a Manager with Marketing who has set up the second
  factor, and a signed-in session for them (as Django's and django-otp's login
  write it); writes them as JSON to OUT.
- ``import URL STATE``: uploads a customers CSV through the import wizard's pages
  over HTTP, confirms it, and checks the customers and their consents landed.
- ``campaign URL STATE SINK``: a segment of the imported customers and a campaign
  to it (the services the pages call), sent from the campaign's Send page over
  HTTP; checks every message arrived at the SMTP sink.
- ``ready URL LOG``: waits for beat's heartbeat task in the default queue
  worker's LOG, then for /ready/ to answer 200.
- ``tasks LOG PATTERN... -- LOG PATTERN...``: checks which worker ran which task
  from the workers' JSON logs.
- ``counts DB_URL DB_URL``: compares every table's row count in two databases.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CUSTOMERS = 20


def say(text: str) -> None:
    """One line of the drill's report, at once (the shell script interleaves)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


class DrillError(Exception):
    """A failed check: its message is what the drill prints."""


# --- The env file --------------------------------------------------------------------

_LINE = re.compile(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=(.*)$")


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines as systemd's EnvironmentFile reads them (quotes removed)."""
    values = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def envfile(out: str, *assignments: str) -> None:
    """The example env file with these keys set (commented-out ones switched on)."""
    overrides = dict(item.split("=", 1) for item in assignments)
    lines = []
    seen = set()
    for line in (DEPLOY / "kartoteka.env.example").read_text().splitlines():
        match = _LINE.match(line)
        if match and match.group(1) in overrides and match.group(1) not in seen:
            key = match.group(1)
            seen.add(key)
            lines.append(f"{key}={overrides[key]}")
        else:
            lines.append(line)
    lines += [f"{key}={value}" for key, value in overrides.items() if key not in seen]
    Path(out).write_text("\n".join(lines) + "\n")
    os.chmod(out, 0o600)


def exports(path: str) -> None:
    for key, value in read_env_file(Path(path)).items():
        say(f"export {key}={shlex.quote(value)}")


# --- Unit files and the Procfile ---------------------------------------------------


def procfile() -> dict[str, str]:
    """The Procfile's processes: name -> command line."""
    processes = {}
    for line in (DEPLOY / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            processes[name.strip()] = command.strip()
    return processes


def unit_command(unit: str, instance: str = "") -> str:
    """A unit's ExecStart as the Procfile writes it: from the checkout, on PATH."""
    text = (DEPLOY / "systemd" / unit).read_text()
    command = re.search(r"^ExecStart=(.*)$", text, re.MULTILINE).group(1)
    command = command.replace("/srv/kartoteka/.venv/bin/", "")
    if instance:
        values = read_env_file(DEPLOY / "systemd" / f"worker-{instance}.env")
        command = command.replace("%i", instance).replace("%H", "%h")
        command = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], command)
    return command


def commands() -> None:
    processes = procfile()
    expected = {
        "web": unit_command("kartoteka-web.service"),
        "worker_imports": unit_command("kartoteka-worker@.service", "imports"),
        "worker_campaigns": unit_command("kartoteka-worker@.service", "campaigns"),
        "beat": unit_command("kartoteka-beat.service"),
    }
    for name, command in expected.items():
        if processes.get(name) != command:
            raise DrillError(
                f"deploy/Procfile's {name!r} is not its systemd unit's command:\n"
                f"  Procfile: {processes.get(name)}\n  unit:     {command}"
            )
    for name, command in processes.items():
        say(f"{name}\t{command}")


# --- nginx ---------------------------------------------------------------------


def nginx(
    directory: str, root: str, web_port: str, tls_port: str, http_port: str
) -> None:
    """The guide's nginx site with this machine's ports, certificate and paths."""
    folder = Path(directory)
    site = (DEPLOY / "nginx" / "kartoteka.conf").read_text()
    replacements = [
        ("server 127.0.0.1:8000", f"server 127.0.0.1:{web_port}"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{tls_port} ssl http2;"),
        ("/etc/letsencrypt/live/crm.example.pl/fullchain.pem", f"{folder}/cert.pem"),
        ("/etc/letsencrypt/live/crm.example.pl/privkey.pem", f"{folder}/key.pem"),
        ("/etc/nginx/kartoteka_proxy.conf", f"{DEPLOY}/nginx/kartoteka_proxy.conf"),
        ("/var/log/nginx/", f"{folder}/"),
        ("/srv/kartoteka/", f"{root}/"),
    ]
    for old, new in replacements:
        if old not in site:
            raise DrillError(f"deploy/nginx/kartoteka.conf has no {old!r}")
        site = site.replace(old, new)
    # Loopback only: no IPv6 listeners.
    site = "\n".join(line for line in site.splitlines() if "listen [::]" not in line)
    (folder / "site.conf").write_text(site + "\n")
    user = "user root root;\n" if os.geteuid() == 0 else ""
    (folder / "nginx.conf").write_text(
        f"{user}pid {folder}/nginx.pid;\nerror_log {folder}/error.log warn;\n"
        "worker_processes 1;\nevents {}\nhttp {\n"
        "    include /etc/nginx/mime.types;\n"
        f"    client_body_temp_path {folder}/body;\n"
        f"    proxy_temp_path {folder}/proxy;\n"
        f"    include {folder}/site.conf;\n}}\n"
    )


def static(base_url: str) -> None:
    """A file collectstatic hashed answers 200 with far-future caching."""
    django_setup()
    from django.contrib.staticfiles.storage import staticfiles_storage

    path = staticfiles_storage.url("css/kartoteka.css")
    if path == "/static/css/kartoteka.css":
        raise DrillError("collectstatic's manifest did not hash css/kartoteka.css")
    _, headers, data = Browser(base_url, "").request("GET", path)
    cache_control = headers.get("Cache-Control", "")
    if "immutable" not in cache_control or not data:
        raise DrillError(f"{path}: Cache-Control {cache_control!r}, {len(data)} bytes")
    say(f"  {path}: {len(data)} bytes, Cache-Control {cache_control}")


# --- The SMTP sink --------------------------------------------------------------------


def sink(directory: str) -> None:
    import signal
    import threading

    from aiosmtpd.controller import Controller

    folder = Path(directory)
    out = (folder / "messages.jsonl").open("a")
    lock = threading.Lock()

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            import email
            import email.policy

            message = email.message_from_bytes(
                envelope.original_content or envelope.content,
                policy=email.policy.default,
            )
            with lock:
                out.write(
                    json.dumps({"to": envelope.rcpt_tos, "subject": message["Subject"]})
                    + "\n"
                )
                out.flush()
            return "250 Message accepted for delivery"

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    (folder / "port").write_text(str(controller.port))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    controller.stop()


def sink_messages(directory: str) -> list[dict]:
    path = Path(directory) / "messages.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


# --- Django ---------------------------------------------------------------------


def django_setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    import django

    django.setup()


def prepare(out: str) -> None:
    """A store, a staff user with a confirmed TOTP device, and their session."""
    django_setup()
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.auth.models import Group
    from django.contrib.sessions.backends.db import SessionStore
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from customers.models import Store

    store, _ = Store.objects.get_or_create(code="drill", defaults={"name": "Drill"})
    user, _ = get_user_model().objects.get_or_create(
        username="drill-manager", defaults={"is_staff": True}
    )
    user.set_unusable_password()
    user.save()
    user.groups.add(*Group.objects.filter(name__in=["Manager", "Marketing"]))
    device, _ = TOTPDevice.objects.get_or_create(
        user=user, name="drill", defaults={"confirmed": True}
    )
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.create()
    Path(out).write_text(
        json.dumps({"session": session.session_key, "store": store.pk, "user": user.pk})
    )


class Browser:
    """A staff member's browser: cookies, CSRF, the Origin a form sends.

    Given an https:// address it talks to nginx over TLS. Given gunicorn's own
    http:// address (no nginx on the machine) each request carries what nginx
    would add (X-Forwarded-Proto: https, X-Forwarded-For, X-Request-ID), so the
    server sees a secure request as in production.
    """

    def __init__(self, base_url: str, session: str):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.secure = parts.scheme == "https"
        self.origin = f"https://{parts.netloc}"
        self.cookies = {"sessionid": session} if session else {}

    def connect(self) -> http.client.HTTPConnection:
        """Through nginx over TLS (its certificate from DRILL_CA), or to gunicorn."""
        if self.secure:
            import ssl

            context = ssl.create_default_context(cafile=os.environ["DRILL_CA"])
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=60, context=context
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=60)

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        content_type: str = "",
        expect: tuple[int, ...] = (200,),
    ) -> tuple[int, dict[str, str], bytes]:
        connection = self.connect()
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if not self.secure:
            # No nginx on this machine: what it would add.
            headers.update(
                {
                    "X-Forwarded-Proto": "https",
                    "X-Forwarded-For": "203.0.113.7",
                    "X-Request-ID": f"drill-{uuid.uuid4().hex[:12]}",
                }
            )
        if method == "POST":
            headers["Origin"] = self.origin
            headers["Referer"] = self.origin + path
            headers["Content-Type"] = content_type
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        data = response.read()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";", 1)[0]
        connection.close()
        if response.status not in expect:
            raise DrillError(
                f"{method} {path} answered {response.status}"
                f" (expected {expect}): {data[:500]!r}"
            )
        return response.status, dict(response.getheaders()), data

    def csrf(self, path: str) -> str:
        """GET a form page; the token its form carries."""
        _, _, data = self.request("GET", path)
        match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', data)
        if not match:
            raise DrillError(f"GET {path}: no CSRF token in the page")
        return match.group(1).decode()

    def post_form(
        self,
        path: str,
        fields: dict[str, str],
        files: dict | None = None,
        page: str = "",
    ) -> str:
        """POST the form of ``page`` (default: ``path``); the redirect's target."""
        fields = {"csrfmiddlewaretoken": self.csrf(page or path), **fields}
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in fields.items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
                f"\r\n\r\n{value}\r\n".encode()
            )
        for name, (filename, content) in (files or {}).items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}";'
                f' filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'.encode()
                + content
                + b"\r\n"
            )
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        _, headers, _ = self.request(
            "POST",
            path,
            body,
            f"multipart/form-data; boundary={boundary}",
            expect=(302,),
        )
        return headers["Location"]


def poll(what: str, check, timeout: float) -> object:
    """``check()`` until it returns something true; fails the drill after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise DrillError(f"timed out after {timeout:.0f} s waiting for {what}")


def import_customers(base_url: str, state_file: str) -> None:
    """The import wizard over HTTP: upload, wait for the check, confirm, wait."""
    state = json.loads(Path(state_file).read_text())
    browser = Browser(base_url, state["session"])
    rows = ["external_id,email,first_name,last_name,accepts_email_marketing"]
    rows += [
        f"drill-{n},klient{n}@drill.example.pl,Anna{n},Nowak,tak"
        for n in range(1, CUSTOMERS + 1)
    ]
    location = browser.post_form(
        "/imports/new/",
        {
            "kind": "customers",
            "store": str(state["store"]),
            "format": "generic",
            "on_error": "abort",
        },
        files={"file": ("drill-customers.csv", "\n".join(rows).encode())},
    )
    match = re.match(r"^/imports/(\d+)/$", location)
    if not match:
        raise DrillError(f"the upload did not lead to an import's page: {location}")
    job = match.group(1)

    def status() -> dict:
        _, _, data = browser.request("GET", f"/imports/{job}/status/")
        return json.loads(data)

    def settled(*statuses: str):
        def check():
            current = status()
            if current["status"] in ("failed", "cancelled"):
                raise DrillError(f"import {job} {current['status']}: {current}")
            return current if current["status"] in statuses else None

        return check

    checked = poll("the import's check (imports queue)", settled("checked"), 60)
    say(f"  import {job} checked: {checked['counts']}")
    browser.post_form(f"/imports/{job}/confirm/", {}, page=f"/imports/{job}/")
    done = poll("the import's run (imports queue)", settled("done"), 60)
    say(f"  import {job} done: {done['counts']}")
    if done["counts"]["created"] != CUSTOMERS:
        raise DrillError(f"import {job} created {done['counts']}, not {CUSTOMERS}")

    django_setup()
    from consents.models import ConsentState
    from customers.models import Customer

    customers = Customer.objects.filter(email__endswith="@drill.example.pl")
    if customers.count() != CUSTOMERS:
        raise DrillError(f"{customers.count()} customers in the database")
    consenting = (
        ConsentState.objects.granted()
        .filter(purpose__code="email_marketing", customer__in=customers)
        .count()
    )
    if consenting != CUSTOMERS:
        raise DrillError(f"{consenting} of {CUSTOMERS} have the email consent")
    say(f"  {CUSTOMERS} customers with their email consent in the database")


def campaign(base_url: str, state_file: str, sink_dir: str) -> None:
    """A campaign to the imported customers, sent from its page over HTTP."""
    django_setup()
    from django.contrib.auth import get_user_model

    from campaigns.models import Campaign, Channel
    from campaigns.services import campaign_create, template_save
    from customers.models import Customer
    from segments.services import segment_create, segment_members_paste

    state = json.loads(Path(state_file).read_text())
    user = get_user_model().objects.get(pk=state["user"])
    emails = sorted(
        Customer.objects.filter(email__endswith="@drill.example.pl").values_list(
            "email", flat=True
        )
    )
    segment = segment_create(name="Drill", kind="static", actor=user)
    segment_members_paste(segment=segment, text="\n".join(emails), actor=user)
    template = template_save(
        actor=user,
        name="Drill",
        channel=Channel.EMAIL,
        subject="Drill {{ first_name }}",
        html=(
            "<p>Hello {{ first_name }}</p>"
            '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
        ),
    )
    created = campaign_create(
        actor=user, name="Drill", template=template, segment=segment
    )
    browser = Browser(base_url, state["session"])
    location = browser.post_form(f"/campaigns/{created.pk}/send/", {})
    say(f"  campaign {created.pk} sent from its page, back to {location}")

    def sent():
        created.refresh_from_db()
        if created.status not in (Campaign.Status.SENDING, Campaign.Status.SENT):
            raise DrillError(f"campaign {created.pk} is {created.status}")
        return created.status == Campaign.Status.SENT and len(
            sink_messages(sink_dir)
        ) >= len(emails)

    poll("the campaign's messages (campaigns queue)", sent, 90)
    received = sorted(
        address for message in sink_messages(sink_dir) for address in message["to"]
    )
    if received != emails:
        raise DrillError(
            f"the SMTP sink got {len(received)} messages for {len(set(received))}"
            f" addresses, expected one each for {len(emails)}"
        )
    say(f"  {len(received)} messages at the SMTP sink, one per customer")


def up(base_url: str) -> None:
    """/health/ answers 200: gunicorn is up with the production settings."""
    browser = Browser(base_url, "")

    def check():
        try:
            return browser.request("GET", "/health/", expect=(200,))
        except (OSError, DrillError):  # not up yet, or nginx's 502 meanwhile
            return None

    poll("gunicorn's /health/", check, 30)


def ready(base_url: str, worker_log: str, timeout: str = "100") -> None:
    """Beat's heartbeat task ran on the default queue's worker; /ready/ says 200.

    A worker records a heartbeat when it starts too, so /ready/ alone would not
    prove that beat queues its tasks: the default queue's worker log must show
    the heartbeat task that beat sent (every minute).
    """
    heartbeat = "config.observability.worker_heartbeat_task"
    pattern = re.compile(rf"Task {re.escape(heartbeat)}\[[0-9a-f-]+\] succeeded")
    poll(
        f"beat's {heartbeat} on the default queue",
        lambda: pattern.search(Path(worker_log).read_text(errors="replace")),
        float(timeout),
    )
    browser = Browser(base_url, "")

    def check():
        status, _, data = browser.request("GET", "/ready/", expect=(200, 503))
        return data if status == 200 else None

    answer = json.loads(poll("/ready/ to answer 200", check, 30))
    say(f"  beat's heartbeat ran on the default queue; /ready/ {answer['checks']}")


def tasks(*args: str) -> None:
    """``LOG TASK... -- LOG TASK...``: each log ran its tasks, and not the others'."""
    groups, current = [], []
    for arg in [*args, "--"]:
        if arg == "--":
            groups.append(current)
            current = []
        else:
            current.append(arg)
    ran = {}
    for log, *names in groups:
        text = Path(log).read_text(errors="replace")
        ran[log] = set(re.findall(r"Task ([\w.]+)\[[0-9a-f-]+\] succeeded", text))
        missing = set(names) - ran[log]
        if missing:
            raise DrillError(f"{log} shows no success of {sorted(missing)}")
    for log, *names in groups:
        for other, *_ in groups:
            stray = ran[other] & set(names) if other != log else set()
            if stray:
                raise DrillError(f"{other} ran {sorted(stray)}, meant for {log}")
    for log, *_ in groups:
        say(f"  {Path(log).name}: {', '.join(sorted(ran[log]))}")


def counts(first_url: str, second_url: str) -> None:
    """Every table's exact row count in two databases must match."""
    import psycopg

    def table_counts(url: str) -> dict[str, int]:
        with psycopg.connect(url) as connection:
            tables = [
                row[0]
                for row in connection.execute(
                    "SELECT quote_ident(tablename) FROM pg_tables"
                    " WHERE schemaname = 'public' ORDER BY 1"
                )
            ]
            return {
                table: connection.execute(
                    f"SELECT count(*) FROM {table}"  # noqa: S608 - quoted names
                ).fetchone()[0]
                for table in tables
            }

    first, second = table_counts(first_url), table_counts(second_url)
    if first != second:
        differ = {
            table: (first.get(table), second.get(table))
            for table in first.keys() | second.keys()
            if first.get(table) != second.get(table)
        }
        raise DrillError(f"row counts differ after the restore: {differ}")
    say(
        f"  {len(first)} tables, {sum(first.values())} rows: the same in both;"
        f" customers {first.get('customers_customer')},"
        f" deliveries {first.get('campaigns_delivery')}"
    )


COMMANDS = {
    "envfile": envfile,
    "exports": exports,
    "commands": commands,
    "nginx": nginx,
    "static": static,
    "sink": sink,
    "prepare": prepare,
    "import": import_customers,
    "campaign": campaign,
    "up": up,
    "ready": ready,
    "tasks": tasks,
    "counts": counts,
}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.stderr.write(__doc__)
        return 2
    try:
        COMMANDS[sys.argv[1]](*sys.argv[2:])
    except DrillError as error:
        sys.stderr.write(f"DRILL FAILED ({sys.argv[1]}): {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
