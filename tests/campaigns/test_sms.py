"""SMS length (Python and the browser counter) and the sending backends.

The SMSAPI backend talks real HTTP to a small gateway look-alike on 127.0.0.1.
"""

import io
import json
import random
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.utils import translation

from campaigns import sms
from campaigns.sms import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    ConsoleBackend,
    FileBackend,
    LocmemBackend,
    SmsapiBackend,
    SmsMessage,
    SmsResult,
    get_sms_backend,
    sms_counter_attrs,
    sms_non_gsm7,
    sms_parts,
    sms_transliterate,
)

COUNTER_JS = Path(settings.BASE_DIR) / "static" / "js" / "sms-counter.js"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")

POLISH = "Zażółć gęślą jaźń"


@pytest.fixture(autouse=True)
def _empty_outbox():
    sms.outbox.clear()
    LocmemBackend.rejected.clear()
    yield
    sms.outbox.clear()
    LocmemBackend.rejected.clear()


# --- Length ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parts", "per_part"),
    [
        ("a" * 160, 1, 160),
        ("a" * 161, 2, 153),
        ("a" * 306, 2, 153),
        ("a" * 307, 3, 153),
        ("a" * 459, 3, 153),
        ("a" * 460, 4, 153),
        ("ą" * 70, 1, 70),
        ("ą" * 71, 2, 67),
        ("ą" * 134, 2, 67),
        ("ą" * 135, 3, 67),
    ],
)
def test_parts_at_the_limits(text, parts, per_part):
    length = sms_parts(text)
    assert (length.parts, length.per_part) == (parts, per_part)
    assert length.characters == len(text)
    assert length.encoding == ("GSM-7" if text[0] == "a" else "UCS-2")


def test_the_gsm_tables():
    assert len(GSM7_BASIC) == len(set(GSM7_BASIC)) == 127
    assert set(GSM7_EXTENSION) == set("^{}\\[~]|€\f")
    assert not set(GSM7_BASIC) & set(GSM7_EXTENSION)
    assert "\x1b" not in GSM7_BASIC


def test_extension_characters_count_two():
    assert sms_parts("€").characters == 2
    assert sms_parts(GSM7_EXTENSION).characters == 20
    assert sms_parts("€" * 80).parts == 1
    assert sms_parts("€" * 81).parts == 2
    assert sms_parts("Cena: 10 €").encoding == "GSM-7"


def test_the_gsm_alphabet_has_these_accents_and_no_polish_letter():
    assert sms_parts("éöüäñàèùìòÇØøÅåÆæßÉÄÖÑÜ§¿¡ΔΦΓΛΩΠΨΣΘΞ£¥¤@_").encoding == "GSM-7"
    assert sms_parts("Zażółć").encoding == "UCS-2"
    for letter in "ąćęłńóśźżĄĆĘŁŃÓŚŹŻ":
        assert sms_parts(f"Dzień dobry {letter}").encoding == "UCS-2", letter
    # The table's C cedilla is the capital one.
    assert sms_parts("ç").encoding == "UCS-2"
    assert sms_parts("„cytat”").encoding == "UCS-2"


def test_one_polish_letter_makes_the_whole_message_ucs2():
    text = "a" * 100 + "ś"
    length = sms_parts(text)
    assert (length.encoding, length.parts, length.characters) == ("UCS-2", 2, 101)


def test_ucs2_counts_utf16_units():
    assert sms_parts("😀").characters == 2
    assert sms_parts("😀" * 35).parts == 1
    assert sms_parts("😀" * 36).parts == 2
    assert sms_non_gsm7("Zażółć 😀 ż") == ["ż", "ó", "ł", "ć", "😀"]


def test_a_pair_never_straddles_two_parts():
    # 306 septets, yet 3 parts: the euro does not fit in the first part's last septet.
    length = sms_parts("a" * 152 + "€" + "a" * 152)
    assert (length.characters, length.parts, length.remaining) == (306, 3, 152)
    length = sms_parts("a" * 152 + "€" + "a" * 8)
    assert (length.characters, length.parts, length.remaining) == (162, 2, 143)
    # The same for an emoji at the end of a UCS-2 part.
    length = sms_parts("ą" * 66 + "😀" + "ą" * 3)
    assert (length.characters, length.parts, length.remaining) == (71, 2, 62)


def test_remaining_and_limit():
    assert sms_parts("a" * 84) == sms.SmsLength("GSM-7", 84, 1, 160, 76)
    length = sms_parts("a" * 161)
    assert (length.remaining, length.limit) == (145, 306)
    empty = sms_parts("")
    assert (empty.parts, empty.remaining, empty.limit) == (0, 160, 160)
    assert sms_parts("a\r\nb").characters == 4


def test_merge_tags_count_as_the_tag_length():
    text = "Cześć {{ first_name }}, kod {{coupon}}"
    assert sms_parts(text).characters == len(text)
    assert sms_parts(text, tag_length=10).characters == len("Cześć , kod ") + 20
    assert sms_parts("Hej {{ first_name }}", tag_length=0).characters == 4
    # What campaigns.rendering leaves as it is counts as written.
    literal = "{{ customer.email }} {{ first_name|upper }}"
    assert sms_parts(literal, tag_length=10) == sms_parts(literal)


def test_transliterate_polish():
    assert sms_transliterate(POLISH) == "Zazolc gesla jazn"
    assert sms_transliterate("ĄĆĘŁŃÓŚŹŻ ąćęłńóśźż") == "ACELNOSZZ acelnoszz"
    text = sms_transliterate("„Wyprzedaż” – do 50% taniej… już dziś!\u00a0Sklep")
    assert text == '"Wyprzedaz" - do 50% taniej... juz dzis! Sklep'
    assert sms_parts(text).encoding == "GSM-7"


def test_transliterate_keeps_gsm_and_what_has_no_gsm_form():
    assert sms_transliterate("Café Müller, 10 € {x}") == "Café Müller, 10 € {x}"
    assert sms_transliterate("Dvořák čeká") == "Dvorak ceka"
    assert sms_transliterate("Hej 😀") == "Hej 😀"


def test_counter_attrs_in_english():
    with translation.override("en"):
        attrs = sms_counter_attrs()
    assert (
        attrs["data-format-one"] == "{characters} / {limit} · {parts} SMS · {encoding}"
    )
    assert attrs["data-tag-length"] == "10"
    assert "10 characters" in attrs["data-label-tags"]
    assert "{chars}" in attrs["data-label-unicode"]
    assert {"data-format", "data-format-few", "data-format-many"} <= set(attrs)
    with translation.override("en"):
        assert "1 character;" in sms_counter_attrs(tag_length=1)["data-label-tags"]


# --- The browser counter agrees -----------------------------------------------------

NODE_PARTS = """
const counter = require(process.argv[1]);
const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = cases.map(([text, tagLength]) => {
  const r = counter.smsParts(text, tagLength);
  return [r.encoding, r.characters, r.parts, r.perPart, r.remaining, r.limit,
          counter.nonGsm7(text)];
});
process.stdout.write(JSON.stringify(out));
"""


def node(script, *args, stdin):
    done = subprocess.run(  # noqa: S603 - our own script and file
        [NODE, "-e", script, *map(str, args)],
        input=json.dumps(stdin),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def agreement_cases():
    fixed = [
        "",
        "a" * 160,
        "a" * 161,
        "a" * 306,
        "a" * 307,
        "ą" * 70,
        "ą" * 71,
        "ą" * 134,
        "€",
        "€" * 80,
        "€" * 81,
        "a" * 152 + "€" + "a" * 152,
        "ą" * 66 + "😀" + "ą" * 3,
        POLISH,
        "Zażółć",
        "Cena: 10 € [promocja] {kod} ~ | ^ \\",
        "a\r\nb\fc",
        "😀" * 36,
        "👨‍👩‍👧 rodzina",
        "a\ud800b",  # a lone surrogate: one unit on both sides
        "tab\there, nbsp\u00a0there",
        "ÇçØøÅå",
    ]
    cases = [[text, None] for text in fixed]
    cases += [
        ["Cześć {{ first_name }}!", 10],
        ["Hi {{ first_name }}, {{coupon}}", 12],
        ["Hi {{ first_name }}", 0],
        ["{{ a }}" * 30, 10],
        ["{{ customer.email }} {{x}} {{ 1x }}", 10],
    ]
    # Random texts around the part boundaries, mixing every kind of character.
    alphabet = ["a", "Z", " ", "€", "[", "é", "ą", "ł", "😀", "\n", "„", "ç"]
    rng = random.Random(8)
    for _ in range(300):
        size = rng.choice([60, 68, 70, 72, 134, 140, 152, 160, 162, 306, 308, 460])
        weights = [40, 5, 10, 2, 2, 3, 1, 1, 1, 1, 1, 1]
        if rng.random() < 0.5:
            weights = [*weights[:6], 0, 0, 0, 0, 0, 0]  # GSM-7 only
        text = "".join(rng.choices(alphabet, weights=weights, k=size))
        cases.append([text, None])
    return cases


@needs_node
def test_javascript_counts_like_python():
    cases = agreement_cases()
    results = node(NODE_PARTS, COUNTER_JS, stdin=cases)
    assert len(results) == len(cases)
    for (text, tag_length), result in zip(cases, results, strict=True):
        length = sms_parts(text, tag_length=tag_length)
        expected = [
            length.encoding,
            length.characters,
            length.parts,
            length.per_part,
            length.remaining,
            length.limit,
            sms_non_gsm7(text),
        ]
        assert result == expected, (text, tag_length)


# A page just big enough for the counter: one textarea, one output element, the
# events the script listens to. Each step sets the text and fires "input".
NODE_PAGE = """
const fs = require("fs");
const vm = require("vm");
const spec = JSON.parse(fs.readFileSync(0, "utf8"));
function element(attrs) {
  return {
    attrs: Object.assign({}, attrs), textContent: "", value: "",
    getAttribute(name) { return name in this.attrs ? this.attrs[name] : null; },
    setAttribute(name, value) { this.attrs[name] = String(value); },
    querySelector() { return null; },
    closest(selector) { return selector === "[lang]" ? html : null; },
    matches(selector) {
      return this.textarea && selector === "textarea[data-sms-counter]";
    },
  };
}
const html = element({lang: spec.lang});
const output = element(spec.output);
const textarea = element(spec.textarea);
textarea.textarea = true;
textarea.value = spec.steps[0];
const listeners = {};
const document = {
  readyState: "complete",
  documentElement: html,
  getElementById(id) { return id === "sms-count" ? output : null; },
  querySelectorAll(selector) {
    return selector === "textarea[data-sms-counter]" ? [textarea] : [];
  },
  addEventListener(type, listener) {
    (listeners[type] = listeners[type] || []).push(listener);
  },
};
vm.runInNewContext(fs.readFileSync(process.argv[1], "utf8"), {document});
const seen = [];
spec.steps.forEach((text, index) => {
  if (index) {
    textarea.value = text;
    listeners.input.forEach((listener) => listener({target: textarea}));
  }
  seen.push({text: output.textContent, encoding: output.attrs["data-encoding"],
             parts: output.attrs["data-parts"], tags: output.attrs["data-tags"]});
});
process.stdout.write(JSON.stringify(seen));
"""


def run_page(steps, *, output, textarea=None, lang="en"):
    spec = {
        "lang": lang,
        "output": output,
        "textarea": {"data-sms-counter": "sms-count", **(textarea or {})},
        "steps": steps,
    }
    return node(NODE_PAGE, COUNTER_JS, stdin=spec)


@needs_node
def test_counter_writes_the_summary_and_notes():
    with translation.override("en"):
        attrs = sms_counter_attrs()
    seen = run_page(
        ["a" * 84, "Zażółć\u00a0x", "Hej {{ first_name }}", "a" * 200],
        output=attrs,
    )
    assert seen[0] == {
        "text": "84 / 160 · 1 SMS · GSM-7",
        "encoding": "GSM-7",
        "parts": "1",
        "tags": "0",
    }
    assert seen[1]["text"] == (
        "8 / 70 · 1 SMS · UCS-2 Not in the GSM alphabet: ż ó ł ć U+00A0. "
        "One SMS then holds 70 characters instead of 160."
    )
    assert seen[1]["encoding"] == "UCS-2"
    assert seen[2]["text"] == (
        "14 / 160 · 1 SMS · GSM-7 Each merge tag is counted as 10 characters; "
        "the real length depends on the customer."
    )
    assert seen[2]["tags"] == "1"
    assert seen[3]["text"] == "200 / 306 · 2 SMS · GSM-7"
    assert seen[3]["parts"] == "2"


@needs_node
def test_counter_picks_the_plural_form_and_the_tag_length():
    output = {
        "data-format": "{characters} / {limit} · SMS: {parts}",
        "data-format-one": "{parts} SMS",
        "data-format-few": "{parts} SMS-y",
        "data-format-many": "{parts} SMS-ów (zostało {remaining})",
        "data-label-tags": "Znacznik = {length} znaków.",
        "data-tag-length": "10",
    }
    seen = run_page(
        ["", "a", "a" * 161, "a" * 153 * 5, "{{ imie }}"],
        output=output,
        textarea={"data-tag-length": "12"},
        lang="pl",
    )
    assert [step["text"] for step in seen] == [
        "0 SMS-ów (zostało 160)",
        "1 SMS",
        "2 SMS-y",
        "5 SMS-ów (zostało 0)",
        "1 SMS Znacznik = 12 znaków.",
    ]
    # Without the plural forms, the plain format.
    seen = run_page(["a" * 161], output={"data-format": "{characters}/{limit}"})
    assert seen[0]["text"] == "161/306"


# --- Backends: console, file, locmem ------------------------------------------------


def test_get_sms_backend_builds_the_configured_class():
    with override_settings(SMS_BACKEND="campaigns.sms.LocmemBackend"):
        assert isinstance(get_sms_backend(), LocmemBackend)
    stream = io.StringIO()
    backend = get_sms_backend("campaigns.sms.ConsoleBackend", stream=stream)
    assert isinstance(backend, ConsoleBackend)
    assert backend.stream is stream
    with pytest.raises(ImportError):
        get_sms_backend("campaigns.sms.NoSuchBackend")


def test_console_backend_prints():
    stream = io.StringIO()
    results = ConsoleBackend(stream=stream).send_messages(
        [SmsMessage(to="+48600100200", text=POLISH, reference="d-1")]
    )
    assert results[0].ok
    assert results[0].message_id
    out = stream.getvalue()
    assert "+48600100200" in out
    assert "d-1" in out
    assert POLISH in out
    assert "UCS-2" in out


def test_file_backend_appends_json_lines(tmp_path):
    path = tmp_path / "sms" / "out.jsonl"
    with override_settings(SMS_FILE_PATH=str(path)):
        first = get_sms_backend("campaigns.sms.FileBackend").send_messages(
            [SmsMessage(to="+48600100200", text=POLISH, reference="d-1")]
        )
        with FileBackend() as backend:
            second = backend.send_messages(
                [
                    SmsMessage(to="+48600100201", text="Hej", reference="d-2"),
                    SmsMessage(to="600100202", text="Hej", reference="d-3"),
                ]
            )
    lines = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert [line["reference"] for line in lines] == ["d-1", "d-2"]
    assert lines[0]["text"] == POLISH
    assert (lines[0]["encoding"], lines[0]["parts"]) == ("UCS-2", 1)
    assert lines[0]["id"] == first[0].message_id
    assert lines[1]["id"] == second[0].message_id
    assert lines[0]["sent_at"].endswith("+00:00")
    assert not second[1].ok


def test_locmem_backend_keeps_messages_and_refuses_bad_ones():
    LocmemBackend.rejected.add("+48600100203")
    messages = [
        SmsMessage(to="+48600100200", text="Jeden", reference="d-1"),
        SmsMessage(to="600100201", text="Bez kierunkowego", reference="d-2"),
        SmsMessage(to="+48600100202", text="   ", reference="d-3"),
        SmsMessage(to="+48600100203", text="Odrzucony", reference="d-4"),
        SmsMessage(to="+48600100204", text="Dwa", reference="d-5"),
    ]
    results = get_sms_backend("campaigns.sms.LocmemBackend").send_messages(messages)
    assert [r.ok for r in results] == [True, False, False, False, True]
    assert "600100201" in results[1].error
    assert results[2].error
    assert "+48600100203" in results[3].error
    assert sms.outbox == [messages[0], messages[4]]
    assert results[0].message_id != results[4].message_id
    assert LocmemBackend().send_messages([]) == []


# --- Backends: the SMSAPI gateway ----------------------------------------------------


class Gateway:
    """An SMSAPI look-alike: records each request and answers with ``respond``."""

    def __init__(self, url):
        self.url = url
        self.requests = []
        self.seen_idx = set()
        self.respond = self.accept

    def accept(self, fields):
        if fields.get("check_idx") == "1" and fields.get("idx") in self.seen_idx:
            return 200, {"error": 53, "message": "Not unique idx"}, 0
        self.seen_idx.add(fields.get("idx"))
        item = {
            "id": f"6{len(self.requests):017d}",
            "points": 0.16,
            "number": fields["to"],
            "status": "QUEUE",
        }
        return 200, {"count": 1, "list": [item]}, 0


class GatewayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a session reuses its connection

    def do_POST(self):
        gateway = self.server.gateway
        raw = self.rfile.read(int(self.headers["Content-Length"])).decode()
        fields = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        gateway.requests.append(
            {
                "path": self.path,
                "headers": dict(self.headers),
                "fields": fields,
                "client": self.client_address,
            }
        )
        status, body, delay = gateway.respond(fields)
        time.sleep(delay)
        payload = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


class GatewayServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the client gave up on a slow answer (the timeout test)


@pytest.fixture
def gateway():
    server = GatewayServer(("127.0.0.1", 0), GatewayHandler)
    server.gateway = Gateway(f"http://127.0.0.1:{server.server_port}/sms.do")
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield server.gateway
    server.shutdown()
    server.server_close()


ONE = SmsMessage(to="+48600100200", text="x", reference="d-1")


@pytest.fixture
def backend(gateway):
    return SmsapiBackend(url=gateway.url, token="secret-token", sender="Sklep")


def test_smsapi_sends_the_fields_and_the_token(gateway, backend):
    results = backend.send_messages(
        [SmsMessage(to="+48600100200", text=POLISH, reference="kartoteka-d-12")]
    )
    assert results == [SmsResult(ok=True, message_id="600000000000000001")]
    [request] = gateway.requests
    assert request["path"] == "/sms.do"
    assert request["headers"]["Authorization"] == "Bearer secret-token"
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert request["fields"] == {
        "to": "48600100200",
        "message": POLISH,
        "from": "Sklep",
        "format": "json",
        "encoding": "utf-8",
        "idx": "kartoteka-d-12",
        "check_idx": "1",
    }
    assert backend.session is None  # opened for the call, closed after it


def test_smsapi_reads_its_settings(gateway):
    with override_settings(
        SMS_BACKEND="campaigns.sms.SmsapiBackend",
        SMS_GATEWAY_URL=gateway.url,
        SMS_GATEWAY_TOKEN="from-settings",
        SMS_SENDER_NAME="",
    ):
        backend = get_sms_backend()
    assert isinstance(backend, SmsapiBackend)
    [result] = backend.send_messages(
        [SmsMessage(to="+48600100200", text="Hej", reference="")]
    )
    assert result.ok
    [request] = gateway.requests
    assert request["headers"]["Authorization"] == "Bearer from-settings"
    assert "from" not in request["fields"]
    assert "idx" not in request["fields"]
    assert "check_idx" not in request["fields"]


def test_smsapi_needs_a_token():
    with (
        override_settings(SMS_GATEWAY_TOKEN=""),
        pytest.raises(ImproperlyConfigured),
    ):
        get_sms_backend("campaigns.sms.SmsapiBackend")


def test_smsapi_one_connection_per_open(gateway, backend):
    with backend:
        session = backend.session
        backend.send_messages([SmsMessage(to="+48600100200", text="1", reference="a")])
        backend.send_messages([SmsMessage(to="+48600100201", text="2", reference="b")])
        assert backend.session is session
    assert backend.session is None
    backend.send_messages(
        [
            SmsMessage(to="+48600100202", text="3", reference="c"),
            SmsMessage(to="+48600100203", text="4", reference="d"),
        ]
    )
    clients = [request["client"] for request in gateway.requests]
    assert clients[0] == clients[1]
    assert clients[2] == clients[3]
    assert clients[1] != clients[2]


def test_smsapi_error_for_one_number_does_not_stop_the_others(gateway, backend):
    def respond(fields):
        if fields["to"] == "48500000000":
            return 200, {"error": 13, "message": "No correct phone numbers"}, 0
        return gateway.accept(fields)

    gateway.respond = respond
    results = backend.send_messages(
        [
            SmsMessage(to="+48600100200", text="1", reference="a"),
            SmsMessage(to="+48500000000", text="2", reference="b"),
            SmsMessage(to="48600100202", text="3", reference="c"),
            SmsMessage(to="+48123", text="4", reference="d"),
            SmsMessage(to="+48600100204", text="5", reference="e"),
        ]
    )
    assert [r.ok for r in results] == [True, False, False, False, True]
    assert "No correct phone numbers" in results[1].error
    assert "48600100202" in results[2].error
    # The malformed numbers never left.
    assert [r["fields"]["to"] for r in gateway.requests] == [
        "48600100200",
        "48500000000",
        "48600100204",
    ]


def test_smsapi_error_response(gateway, backend):
    gateway.respond = lambda fields: (
        200,
        {
            "error": 13,
            "message": "No correct phone numbers",
            "invalid_numbers": [{"number": fields["to"], "message": "Invalid number"}],
        },
        0,
    )
    [result] = backend.send_messages([ONE])
    assert not result.ok
    assert not result.retry
    assert "13" in result.error
    assert "No correct phone numbers" in result.error
    assert "Invalid number" in result.error


def test_smsapi_auth_error_with_http_status(gateway, backend):
    gateway.respond = lambda fields: (401, {"error": 101, "message": "Bad token"}, 0)
    [result] = backend.send_messages([ONE])
    assert (result.ok, result.retry) == (False, False)
    assert "Bad token" in result.error


def test_smsapi_duplicate_reference_counts_as_sent(gateway, backend):
    message = SmsMessage(to="+48600100200", text="Raz", reference="kartoteka-d-7")
    first = backend.send_messages([message])
    again = backend.send_messages([message])  # a worker died before recording it
    assert first[0].ok
    assert not first[0].duplicate
    assert again == [SmsResult(ok=True, duplicate=True)]
    assert len(gateway.requests) == 2


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (503, "<html>Service Unavailable</html>"),
        (500, {"error": 999, "message": "Internal error"}),
        (200, {"error": 202, "message": "Too many simultaneous requests"}),
        (429, "slow down"),
        (200, "not json"),
        (200, {"count": 0, "list": []}),
    ],
)
def test_smsapi_temporary_failures(gateway, backend, status, body):
    gateway.respond = lambda fields: (status, body, 0)
    [result] = backend.send_messages([ONE])
    assert (result.ok, result.retry) == (False, True)
    assert result.error


def test_smsapi_refused_status(gateway, backend):
    gateway.respond = lambda fields: (
        200,
        {"count": 1, "list": [{"id": "1", "status": "REJECTED"}]},
        0,
    )
    [result] = backend.send_messages([ONE])
    assert (result.ok, result.retry, result.message_id) == (False, False, "1")
    assert "REJECTED" in result.error


def test_smsapi_timeout_then_the_next_message(gateway):
    def respond(fields):
        status, body, _ = gateway.accept(fields)
        return status, body, (1.5 if fields["to"] == "48600100200" else 0)

    gateway.respond = respond
    backend = SmsapiBackend(url=gateway.url, token="t", timeout=(2, 0.3))
    started = time.monotonic()
    results = backend.send_messages(
        [
            SmsMessage(to="+48600100200", text="slow", reference="a"),
            SmsMessage(to="+48600100201", text="fast", reference="b"),
        ]
    )
    assert time.monotonic() - started < 1.4
    assert (results[0].ok, results[0].retry) == (False, True)
    assert results[0].error
    assert results[1].ok


def test_smsapi_gateway_unreachable():
    server = GatewayServer(("127.0.0.1", 0), GatewayHandler)
    url = f"http://127.0.0.1:{server.server_port}/sms.do"
    server.server_close()  # nothing listens there any more
    backend = SmsapiBackend(url=url, token="t", timeout=(1, 1))
    results = backend.send_messages(
        [
            SmsMessage(to="+48600100200", text="x", reference="a"),
            SmsMessage(to="+48600100201", text="y", reference="b"),
        ]
    )
    assert [(r.ok, r.retry) for r in results] == [(False, True), (False, True)]
    assert all(r.error for r in results)
