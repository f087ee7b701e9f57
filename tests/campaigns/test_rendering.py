"""campaigns.rendering: merge tags, sanitising, the text alternative, link hooks.

Pure functions: no test here touches the database (pytest-django refuses it
without the ``db`` fixture).
"""

import time
from collections.abc import Iterator, Mapping

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from campaigns.rendering import (
    HREF_TAGS,
    MERGE_TAGS,
    MessageContext,
    Recommendation,
    html_sanitise,
    html_to_text,
    prepare_email,
    render_email,
    render_sms,
    template_check,
    template_links,
)

UNSUBSCRIBE = '<p><a href="{{ unsubscribe_url }}">Wypisz się</a></p>'
VALUES = {
    "first_name": "Anna",
    "last_name": "Kowalska",
    "unsubscribe_url": "https://crm.example.pl/u/abc?x=1&y=2",
    "preferences_url": "https://crm.example.pl/p/def",
}
PRODUCTS = (
    Recommendation(
        name="Buty <trekkingowe>",
        price="249,99 zł",
        url="https://sklep.example.pl/p/buty",
        image_url="https://sklep.example.pl/i/buty.jpg",
    ),
    Recommendation(name="Skarpety", price="19,99 zł"),
)


def context(recommendations=(), **values) -> MessageContext:
    return MessageContext(values={**VALUES, **values}, recommendations=recommendations)


def body(html: str) -> str:
    """The rendered document's body."""
    return html.split("<body>", 1)[1].rsplit("</body>", 1)[0]


def errors_of(**kwargs) -> dict[str, list[tuple[str, str]]]:
    """template_check's errors as {field: [(code, English message)]}."""
    with pytest.raises(ValidationError) as caught, translation.override("en"):
        template_check(**kwargs)
    with translation.override("en"):
        return {
            field: [(error.code, next(iter(error))) for error in found]
            for field, found in caught.value.error_dict.items()
        }


def codes(found: dict, field: str) -> list[str]:
    return [code for code, _ in found.get(field, [])]


def tracker(calls: list[str]):
    def track_link(url: str) -> str:
        calls.append(url)
        return f"https://t.example.pl/c/{len(calls)}"

    return track_link


# --- The allow-list ---------------------------------------------------------------


def test_merge_tags_are_the_allow_list_with_descriptions():
    assert set(MERGE_TAGS) == {
        "first_name",
        "last_name",
        "full_name",
        "favourite_category",
        "coupon",
        "coupon_valid_until",
        "recommendations",
        "unsubscribe_url",
        "preferences_url",
        "shop_name",
    }
    assert HREF_TAGS == {"unsubscribe_url", "preferences_url"}
    assert all(str(description) for description in MERGE_TAGS.values())


# --- Merge tags: values, escaping, hostile templates ------------------------------


def test_values_are_escaped_in_html_and_plain_in_subject_and_text():
    rendered = render_email(
        subject="Cześć {{ first_name }}!",
        html="<p>Cześć {{first_name}} {{ last_name }}!</p>" + UNSUBSCRIBE,
        context=context(first_name='<script>alert("x")</script>', last_name="A&B"),
    )
    assert rendered.subject == 'Cześć <script>alert("x")</script>!'
    assert "<script>" not in rendered.html
    assert (
        "<p>Cześć &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; A&amp;B!</p>"
        in rendered.html
    )
    assert rendered.text.startswith('Cześć <script>alert("x")</script> A&B!')


def test_a_missing_value_renders_empty():
    rendered = render_email(
        subject="Hej {{ first_name }}",
        html="<p>Hej {{ first_name }}, kupon: {{ coupon }}.</p>" + UNSUBSCRIBE,
        context=MessageContext(values={}),
    )
    assert rendered.subject == "Hej"
    assert "<p>Hej , kupon: .</p>" in rendered.html
    assert "Hej , kupon: ." in rendered.text


@pytest.mark.parametrize(
    "code",
    [
        "{% load static %}{{ settings.SECRET_KEY }}",
        "{{ customer.email }}",
        "{{ first_name.__class__ }}",
        "{{ first_name|upper }}",
        '{% now "Y" %}',
        "{# note #}",
        "{{ password }}",
        "{{ request }}",
    ],
)
def test_template_code_is_never_executed_but_shown_literally(code):
    rendered = render_email(
        subject=f"S {code}",
        html=f"<p>{code}</p>" + UNSUBSCRIBE,
        context=context(password="hunter2", request="REQ"),
    )
    assert rendered.subject == f"S {code}"
    assert f"<p>{code}</p>" in rendered.html
    assert code in rendered.text
    assert render_sms(text=code, context=context(password="hunter2")) == code
    for leaked in ("hunter2", "REQ", "ANNA", "kartoteka-tests-only", "<class"):
        assert leaked not in rendered.html + rendered.text + rendered.subject


def test_values_are_substituted_in_one_pass():
    hostile = "{{ last_name }} {% debug %} {{ recommendations }}"
    rendered = render_email(
        subject="{{ first_name }}",
        html="<p>{{ first_name }}</p>" + UNSUBSCRIBE,
        context=context(PRODUCTS, first_name=hostile),
    )
    assert rendered.subject == hostile
    assert f"<p>{hostile}</p>" in rendered.html
    assert "Kowalska" not in rendered.html
    assert "Skarpety" not in rendered.html
    assert render_sms(text="{{ first_name }}", context=context(first_name=hostile)) == (
        hostile
    )


class RecordingValues(Mapping):
    """A context's values that remember which names were read."""

    def __init__(self, values: dict) -> None:
        self.values = values
        self.read: list[str] = []

    def __getitem__(self, key):
        self.read.append(key)
        return self.values[key]

    def __iter__(self) -> Iterator:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


class Secretive:
    secret = "S3CRET"

    def __str__(self) -> str:
        return "Ola"


def test_only_allow_listed_names_are_looked_up_and_never_their_attributes():
    values = RecordingValues(
        {"first_name": Secretive(), "password": "hunter2", "__class__": "X"}
    )
    html = (
        "<p>{{ first_name }} {{ first_name.secret }} {{ password }} "
        "{{ __class__ }} {{ first_name.__class__.__init__ }}</p>" + UNSUBSCRIBE
    )
    rendered = render_email(
        subject="{{ password }}", html=html, context=MessageContext(values=values)
    )
    sms = render_sms(
        text="{{ password }} {{ first_name }}", context=MessageContext(values=values)
    )
    assert set(values.read) <= set(MERGE_TAGS)
    assert "password" not in values.read
    assert "Ola {{ first_name.secret }} {{ password }} {{ __class__ }}" in rendered.html
    assert "S3CRET" not in rendered.html + rendered.text
    assert "hunter2" not in rendered.html + rendered.text + rendered.subject + sms
    assert sms == "{{ password }} Ola"


def test_subject_stays_one_line_whatever_the_values():
    rendered = render_email(
        subject="Hej {{ first_name }}\r\nBcc: all@example.pl",
        html="<p>x</p>" + UNSUBSCRIBE,
        context=context(first_name="Anna\r\nBcc: evil@example.pl\u2028x"),
    )
    assert "\n" not in rendered.subject
    assert "\r" not in rendered.subject
    assert "\u2028" not in rendered.subject
    assert rendered.subject.startswith("Hej Anna Bcc: evil@example.pl")


# --- Links: address tags, tracking ------------------------------------------------


def test_address_tags_in_hrefs_get_their_values_attribute_escaped():
    html = (
        '<p><a href="{{unsubscribe_url}}">Wypisz</a> '
        '<a href="{{ preferences_url }}">Ustawienia</a></p>'
    )
    rendered = render_email(
        subject="s",
        html=html,
        context=context(preferences_url='https://crm.example.pl/p/"><script>'),
    )
    assert 'href="https://crm.example.pl/u/abc?x=1&amp;y=2"' in rendered.html
    assert 'href="https://crm.example.pl/p/&quot;&gt;&lt;script&gt;"' in rendered.html
    assert "<script>" not in rendered.html


def test_an_address_value_that_is_not_http_is_not_linked():
    rendered = render_email(
        subject="s",
        html=UNSUBSCRIBE,
        context=context(unsubscribe_url="javascript:alert(1)"),
    )
    assert "javascript" not in rendered.html + rendered.text
    assert '<a href="" rel="noopener">Wypisz się</a>' in rendered.html
    assert rendered.text == "Wypisz się"


def test_track_link_rewrites_static_links_and_products_never_address_tags():
    html = (
        '<p><a href="https://sklep.example.pl/promo?a=1&amp;b=2">Promocja</a> '
        '<a href="https://sklep.example.pl/">Sklep</a> '
        '<a href="https://sklep.example.pl/promo?a=1&amp;b=2">Jeszcze raz</a> '
        '<a href="mailto:biuro@sklep.example.pl">Napisz</a> '
        '<a href="{{ preferences_url }}">Ustawienia</a></p>'
        "<p>{{ recommendations }}</p>" + UNSUBSCRIBE
    )
    calls: list[str] = []
    rendered = render_email(
        subject="s", html=html, context=context(PRODUCTS), track_link=tracker(calls)
    )
    # One call per distinct address, with the address as written (unescaped).
    assert calls == [
        "https://sklep.example.pl/promo?a=1&b=2",
        "https://sklep.example.pl/",
        "https://sklep.example.pl/p/buty",
    ]
    assert rendered.html.count('href="https://t.example.pl/c/1"') == 2
    assert 'href="https://t.example.pl/c/2"' in rendered.html
    assert 'href="https://t.example.pl/c/3"' in rendered.html
    assert "sklep.example.pl/promo" not in rendered.html
    assert 'href="mailto:biuro@sklep.example.pl"' in rendered.html
    assert 'href="https://crm.example.pl/p/def"' in rendered.html
    assert 'href="https://crm.example.pl/u/abc?x=1&amp;y=2"' in rendered.html
    # The text alternative shows the tracked addresses: plain-text readers click them.
    assert "Promocja (https://t.example.pl/c/1)" in rendered.text
    assert "Buty <trekkingowe>, 249,99 zł, https://t.example.pl/c/3" in rendered.text
    assert "Wypisz się (https://crm.example.pl/u/abc?x=1&y=2)" in rendered.text
    assert "Ustawienia (https://crm.example.pl/p/def)" in rendered.text


def test_without_track_link_links_stay_as_written():
    html = (
        '<p><a href="https://sklep.example.pl/?a=1&amp;b=2">Sklep</a></p>' + UNSUBSCRIBE
    )
    rendered = render_email(subject="s", html=html, context=context())
    assert '<a href="https://sklep.example.pl/?a=1&amp;b=2" rel="noopener">' in (
        rendered.html
    )
    assert "Sklep (https://sklep.example.pl/?a=1&b=2)" in rendered.text


def test_template_links_are_the_templates_own_absolute_links_in_order():
    html = (
        '<p><a href="https://b.example.pl/x?a=1&amp;b=2">B</a>'
        '<a href="HTTP://a.example.pl/">A</a>'
        '<a href="https://b.example.pl/x?a=1&amp;b=2">B again</a>'
        '<a href="{{ unsubscribe_url }}">U</a><a href="{{ preferences_url }}">P</a>'
        '<a href="mailto:x@example.pl">M</a><a href="/relative">R</a>'
        '<a href="javascript:alert(1)">J</a>'
        '<img src="https://img.example.pl/logo.png"></p>'
    )
    assert template_links(html) == [
        "https://b.example.pl/x?a=1&b=2",
        "HTTP://a.example.pl/",
    ]
    # Exactly what track_link is called with.
    calls: list[str] = []
    prepare_email(subject="s", html=html).render(context(), track_link=tracker(calls))
    assert calls == template_links(html)
    assert template_links("") == []


def test_open_pixel_goes_before_the_end_of_the_body():
    rendered = render_email(
        subject="s",
        html=UNSUBSCRIBE,
        context=context(),
        open_pixel_url="https://t.example.pl/o/1?s=a&t=b",
    )
    assert rendered.html.endswith(
        '<img src="https://t.example.pl/o/1?s=a&amp;t=b" width="1" height="1" '
        'alt="" style="display:none"></body></html>'
    )
    assert "t.example.pl" not in rendered.text
    assert (
        "<img"
        not in render_email(subject="s", html=UNSUBSCRIBE, context=context()).html
    )


# --- The recommendations block ----------------------------------------------------


def test_recommendations_render_as_a_table_in_place_of_their_paragraph():
    html = (
        '<p>Dla Ciebie:</p><p style="color:red">{{ recommendations }}</p>' + UNSUBSCRIBE
    )
    rendered = render_email(subject="s", html=html, context=context(PRODUCTS))
    document = body(rendered.html)
    # A table may not stand in a paragraph: the paragraph became a div.
    assert '<div style="color:red"><table role="presentation"' in document
    assert "</table></div>" in document
    assert "<p><table" not in document
    assert document.count("<tr>") == 2
    assert (
        '<a href="https://sklep.example.pl/p/buty" rel="noopener">'
        "Buty &lt;trekkingowe&gt;</a>" in document
    )
    assert '<img src="https://sklep.example.pl/i/buty.jpg"' in document
    assert "<strong>Skarpety</strong><br>19,99 zł" in document
    assert rendered.text == (
        "Dla Ciebie:\n\n"
        "- Buty <trekkingowe>, 249,99 zł, https://sklep.example.pl/p/buty\n"
        "- Skarpety, 19,99 zł\n\n"
        "Wypisz się (https://crm.example.pl/u/abc?x=1&y=2)"
    )


@pytest.mark.parametrize("host", ["div", "li", "td"])
def test_recommendations_may_fill_a_div_a_list_item_or_a_cell(host):
    wrapped = {
        "div": "<div>\n  {{ recommendations }}\n</div>",
        "li": "<ul><li>{{ recommendations }}</li></ul>",
        "td": "<table><tr><td>{{recommendations}}</td></tr></table>",
    }[host]
    rendered = render_email(
        subject="s", html=wrapped + UNSUBSCRIBE, context=context(PRODUCTS)
    )
    assert "Skarpety" in rendered.html
    assert "{{" not in rendered.html


def test_empty_recommendations_leave_nothing_behind():
    html = "<p>Przed</p><p>{{ recommendations }}</p><p>Po</p>" + UNSUBSCRIBE
    rendered = render_email(subject="s", html=html, context=context())
    assert "<table" not in rendered.html
    assert rendered.text == (
        "Przed\n\nPo\n\nWypisz się (https://crm.example.pl/u/abc?x=1&y=2)"
    )


def test_recommendations_inside_a_sentence_render_literally():
    html = "<p>Polecamy {{ recommendations }} dla Ciebie</p>" + UNSUBSCRIBE
    rendered = render_email(subject="s", html=html, context=context(PRODUCTS))
    assert "<p>Polecamy {{ recommendations }} dla Ciebie</p>" in rendered.html
    assert "Skarpety" not in rendered.html


def test_product_addresses_that_are_not_http_are_dropped():
    products = [
        Recommendation(
            name="Zły",
            price="1 zł",
            url="javascript:alert(1)",
            image_url="data:image/png;base64,AAAA",
        )
    ]
    rendered = render_email(
        subject="s",
        html="<p>{{ recommendations }}</p>" + UNSUBSCRIBE,
        context=context(products),
    )
    assert "javascript" not in rendered.html + rendered.text
    assert "data:" not in rendered.html
    assert "<strong>Zły</strong><br>1 zł" in rendered.html
    assert "- Zły, 1 zł" in rendered.text


# --- SMS --------------------------------------------------------------------------


def test_render_sms_puts_plain_values_and_product_lines():
    text = (
        "Hej {{first_name}} <3 {{ recommendations }} Stop: {{ unsubscribe_url }} "
        "{{ nope }}"
    )
    assert render_sms(
        text=text, context=context(PRODUCTS, first_name="Ala & <Ola>")
    ) == (
        "Hej Ala & <Ola> <3 - Buty <trekkingowe>, 249,99 zł, "
        "https://sklep.example.pl/p/buty\n- Skarpety, 19,99 zł Stop: "
        "https://crm.example.pl/u/abc?x=1&y=2 {{ nope }}"
    )
    assert render_sms(text="{{ recommendations }}!", context=context()) == "!"


# --- Sanitising -------------------------------------------------------------------


def test_sanitise_removes_scripts_handlers_and_script_urls():
    clean = html_sanitise(
        '<p onclick="steal()">Hej<script>alert(1)</script></p>'
        '<a href="javascript:alert(1)">J</a>'
        '<a href=" JaVaScRiPt:alert(1)">J2</a>'
        '<a href="java&#x09;script:alert(1)">J3</a>'
        '<img src="x" onerror="alert(1)"><iframe src="https://evil.example"></iframe>'
        "<style>p{}</style><svg><script>alert(1)</script></svg>"
        '<form action="https://evil.example"><input name="card"></form>'
    )
    for unsafe in (
        "script",
        "onclick",
        "onerror",
        "javascript",
        "iframe",
        "style",
        "svg",
        "<form",
        "<input",
        "alert",
    ):
        assert unsafe not in clean.lower()
    assert "<p>Hej</p>" in clean


LOGO = (
    '<img src="https://sklep.example.pl/logo.png" alt="Logo" width="120" height="40">'
)


def test_sanitise_keeps_email_markup_and_adds_noopener():
    html = (
        '<h2>Tytuł</h2><p style="color: #333; text-align: center">Tekst '
        '<strong>gruby</strong> <a href="https://sklep.example.pl/" title="Sklep">'
        'link</a></p><table width="600" align="center"><tr>'
        '<td align="left" width="50%" valign="top">A</td></tr></table>'
        f"{LOGO}<ul><li>a</li></ul><blockquote>c</blockquote><hr>"
        '<a href="mailto:a@example.pl">m</a>'
    )
    clean = html_sanitise(html)
    assert '<p style="color:#333;text-align:center">' in clean
    assert (
        '<a href="https://sklep.example.pl/" title="Sklep" rel="noopener">link</a>'
        in clean
    )
    assert '<td align="left" width="50%" valign="top">A</td>' in clean
    assert '<table width="600" align="center">' in clean
    assert LOGO in clean
    assert '<a href="mailto:a@example.pl" rel="noopener">' in clean
    for kept in ("<h2>", "<strong>", "<ul><li>", "<blockquote>", "<hr>"):
        assert kept in clean
    assert html_sanitise(clean) == clean


def test_sanitise_filters_css():
    clean = html_sanitise(
        '<p style="color:red; position:absolute; background-image:url(https://x.example/t.gif);'
        " width:expression(alert(1)); font-size:14px; padding-left:4px; "
        'background-color:url(javascript:alert(1)); behavior:url(x.htc)">t</p>'
    )
    assert clean == '<p style="color:red;font-size:14px;padding-left:4px">t</p>'


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        ('<a href="{{ unsubscribe_url }}">u</a>', 'href="{{ unsubscribe_url }}"'),
        ('<a href="{{unsubscribe_url}}">u</a>', 'href="{{ unsubscribe_url }}"'),
        ('<a href=" {{  preferences_url }} ">p</a>', 'href="{{ preferences_url }}"'),
    ],
)
def test_address_tags_in_hrefs_survive_sanitising(written, kept):
    clean = html_sanitise(written)
    assert kept in clean
    assert html_sanitise(clean) == clean


@pytest.mark.parametrize(
    "written",
    [
        '<a href="{{ first_name }}">x</a>',
        '<a href="{{ customer.email }}">x</a>',
        '<a href="/promo">x</a>',
        '<a href="//evil.example/x">x</a>',
        '<img src="{{ unsubscribe_url }}">',
        '<img src="data:image/png;base64,AAAA">',
    ],
)
def test_other_relative_or_tag_addresses_are_dropped(written):
    clean = html_sanitise(written)
    assert "href=" not in clean
    assert "src=" not in clean


def test_merge_tags_in_text_survive_sanitising():
    clean = html_sanitise("<p>Hej {{ first_name }}, {{coupon}}</p>")
    assert clean == "<p>Hej {{ first_name }}, {{coupon}}</p>"


# --- The text alternative ---------------------------------------------------------


def test_html_to_text_shape():
    html = """<!DOCTYPE html><html>
    <head><title>T</title><style>p{color:red}</style></head>
    <body>
      <h1>Witaj   w
         sklepie</h1>
      <p>Pierwszy&nbsp;akapit &amp; &lt;więcej&gt;<br>druga linia</p>
      <div><div><div>Zagnieżdżony div</div></div></div>
      <p></p><p>  </p>
      <ul><li>jeden</li><li>dwa <a href="https://sklep.example.pl/dwa">tutaj</a>
        <ul><li>pod</li></ul></li></ul>
      <p><a href="https://sklep.example.pl/">https://sklep.example.pl/</a>
         <a href="mailto:biuro@sklep.example.pl">biuro@sklep.example.pl</a>
         <a href="https://sklep.example.pl/logo"><img src="l.png" alt="Logo sklepu"></a>
         <img src="x.png"></p>
      <table><tr><th>Produkt</th><th>Cena</th></tr>
             <tr><td>But</td><td>49,99 zł</td></tr></table>
      <script>alert("no")</script>
    </body></html>"""
    assert html_to_text(html) == (
        "Witaj w sklepie\n"
        "\n"
        "Pierwszy akapit & <więcej>\n"
        "druga linia\n"
        "\n"
        "Zagnieżdżony div\n"
        "\n"
        "- jeden\n"
        "- dwa tutaj (https://sklep.example.pl/dwa)\n"
        "  - pod\n"
        "\n"
        "https://sklep.example.pl/ biuro@sklep.example.pl "
        "Logo sklepu (https://sklep.example.pl/logo)\n"
        "\n"
        "Produkt | Cena\n"
        "But | 49,99 zł"
    )


def test_html_to_text_of_a_layout_table_keeps_its_blocks_apart():
    html = (
        "<table><tr><td><p>Lewa</p><p>kolumna</p></td>"
        "<td><p>Prawa</p></td></tr></table>"
    )
    assert html_to_text(html) == "Lewa\n\nkolumna\n\nPrawa"


def test_html_to_text_link_without_text_shows_its_address():
    assert html_to_text('<a href="https://x.example/">  </a>') == "https://x.example/"
    assert html_to_text('<a href="#top">Do góry</a>') == "Do góry"


def test_render_email_text_is_the_text_of_its_html():
    html = (
        "<h2>Cześć {{ first_name }}</h2><p>Nowości &amp; promocje:<br>"
        '<a href="https://sklep.example.pl/nowosci">zobacz</a></p>'
        '<p><a href="https://sklep.example.pl/">https://sklep.example.pl/</a></p>'
        "<table><tr><td>A</td><td>B</td></tr></table>" + UNSUBSCRIBE
    )
    rendered = render_email(
        subject="s", html=html, context=context(first_name="<Ania>")
    )
    assert rendered.text == html_to_text(rendered.html)
    assert rendered.text == (
        "Cześć <Ania>\n\nNowości & promocje:\nzobacz (https://sklep.example.pl/nowosci)"
        "\n\nhttps://sklep.example.pl/\n\nA | B\n\n"
        "Wypisz się (https://crm.example.pl/u/abc?x=1&y=2)"
    )


def test_a_link_showing_its_own_address_shows_only_the_tracked_one():
    html = (
        '<p><a href="https://sklep.example.pl/">https://sklep.example.pl/</a></p>'
        '<p><a href="{{ unsubscribe_url }}">{{ unsubscribe_url }}</a></p>'
    )
    rendered = render_email(
        subject="s", html=html, context=context(), track_link=tracker([])
    )
    assert rendered.text == (
        "https://t.example.pl/c/1\n\nhttps://crm.example.pl/u/abc?x=1&y=2"
    )


# --- template_check ---------------------------------------------------------------


def test_a_good_template_passes():
    template_check(
        channel="email",
        subject="Cześć {{ first_name }}, {{shop_name}} ma coś dla Ciebie",
        html=(
            "<p>Kupon {{ coupon }} do {{ coupon_valid_until }}</p>"
            "<p>{{ recommendations }}</p>"
            '<p><a href="https://sklep.example.pl/">Sklep</a> '
            '<a href="{{ preferences_url }}">Ustawienia</a></p>' + UNSUBSCRIBE
        ),
    )
    template_check(channel="sms", text="{{ first_name }}: {{ recommendations }} STOP")


def test_unknown_tags_are_named_in_the_error():
    found = errors_of(
        channel="email",
        subject="{{ password }}",
        html="<p>{{ Password }}</p>" + UNSUBSCRIBE,
    )
    assert found["subject"] == [
        (
            "unknown_tag",
            'Unknown merge tag "{{ password }}". Allowed: first_name, last_name, '
            "full_name, favourite_category, coupon, coupon_valid_until, "
            "recommendations, unsubscribe_url, preferences_url, shop_name.",
        )
    ]
    assert codes(found, "html") == ["unknown_tag"]
    assert '"{{ Password }}"' in found["html"][0][1]


@pytest.mark.parametrize(
    ("code", "shown"),
    [
        ("{% if first_name %}x{% endif %}", "{% if %}"),
        ("{% load static %}", "{% load %}"),
        ("{# a comment #}", "{# #}"),
        ("{{ customer.email }}", "{{ customer.email }}"),
        ("{{ first_name|upper }}", "{{ first_name|upper }}"),
        ("{{ first_name.__class__ }}", "{{ first_name.__class__ }}"),
        ("{{ }}", "{{ }}"),
    ],
)
def test_template_code_is_refused(code, shown):
    found = errors_of(
        channel="email", subject=code, html=f"<p>{code}</p>" + UNSUBSCRIBE
    )
    assert set(codes(found, "subject")) == {"template_syntax"}
    assert set(codes(found, "html")) == {"template_syntax"}
    assert found["html"][0][1] == f"Template code is not allowed: {shown}"
    found = errors_of(channel="sms", text=code)
    assert set(codes(found, "text")) == {"template_syntax"}


def test_template_code_hidden_in_entities_or_comments_is_refused():
    found = errors_of(
        channel="email",
        subject="s",
        html="<p>&#123;&#123; pass&#119;ord }}</p><!-- {% debug %} -->" + UNSUBSCRIBE,
    )
    assert sorted(codes(found, "html")) == ["template_syntax", "unknown_tag"]


def test_required_fields_per_channel():
    found = errors_of(channel="email", subject="  ", html="", text="ignored")
    assert codes(found, "subject") == ["required"]
    assert codes(found, "html") == ["required"]
    assert "text" not in found
    found = errors_of(channel="sms", subject="", html="", text=" ")
    assert found.keys() == {"text"}
    assert codes(found, "text") == ["required"]
    assert codes(errors_of(channel="fax"), "channel") == ["invalid_choice"]


def test_subject_is_one_line_of_at_most_255_characters():
    found = errors_of(
        channel="email", subject="Hej\r\nBcc: x@example.pl", html=UNSUBSCRIBE
    )
    assert codes(found, "subject") == ["invalid"]
    found = errors_of(channel="email", subject="x" * 256, html=UNSUBSCRIBE)
    assert codes(found, "subject") == ["max_length"]
    template_check(channel="email", subject="x" * 255, html=UNSUBSCRIBE)


def test_every_email_needs_an_unsubscribe_link():
    for html in (
        "<p>Bez wypisania</p>",
        "<p>Adres: {{ unsubscribe_url }}</p>",
        '<p><a href="{{ preferences_url }}">Ustawienia</a></p>',
        "<p><a href='https://sklep.example.pl/?u={{ unsubscribe_url }}'>x</a></p>",
        "<script>document.write('<a href=\"{{ unsubscribe_url }}\">x</a>')</script>",
    ):
        found = errors_of(channel="email", subject="s", html=html)
        assert "no_unsubscribe" in codes(found, "html"), html
    template_check(
        channel="email", subject="s", html="<p><a href='{{unsubscribe_url}}'>x</a></p>"
    )


def test_what_sanitising_would_remove_is_reported():
    found = errors_of(
        channel="email",
        subject="s",
        html=(
            '<p onclick="x()">a</p><script>alert(1)</script><style>p{}</style>'
            '<a href="javascript:alert(1)">j</a><img src="data:image/gif;base64,R0">'
            '<a href="java&#x09;script:alert(1)">j2</a>' + UNSUBSCRIBE
        ),
    )
    assert codes(found, "html") == ["unsafe"]
    message = found["html"][0][1]
    for item in ("onclick=", "<script>", "<style>", "javascript:", "data:"):
        assert item in message


def test_links_that_would_be_lost_are_reported():
    found = errors_of(
        channel="email",
        subject="s",
        html=(
            '<p><a href="www.sklep.example.pl">a</a><a href="/promo">b</a>'
            '<img src="logo.png"><a href="#top">anchor</a>'
            '<a href="mailto:a@example.pl">m</a><a href="https://ok.example.pl">ok</a></p>'
            + UNSUBSCRIBE
        ),
    )
    assert codes(found, "html") == ["invalid_link"]
    message = found["html"][0][1]
    assert "www.sklep.example.pl, /promo, logo.png" in message
    assert "#top" not in message
    assert "ok.example.pl" not in message


def test_merge_tags_in_attributes_are_refused_except_whole_address_hrefs():
    found = errors_of(
        channel="email",
        subject="s",
        html=(
            '<p><a href="https://sklep.example.pl/?n={{ first_name }}">a</a>'
            '<a href="{{ last_name }}">b</a><img src="{{ preferences_url }}" alt="x">'
            '<span title="{{ coupon }}">c</span></p>' + UNSUBSCRIBE
        ),
    )
    assert codes(found, "html") == ["misplaced_tag"] * 4
    named = " ".join(message for _, message in found["html"])
    for tag in ("first_name", "last_name", "preferences_url", "coupon"):
        assert "{{ " + tag + " }}" in named


def test_recommendations_must_stand_alone():
    for html in (
        "<p>Polecamy: {{ recommendations }}</p>",
        "<p><span>{{ recommendations }}</span></p>",
        "<p>{{ recommendations }}{{ recommendations }}</p>",
    ):
        found = errors_of(channel="email", subject="s", html=html + UNSUBSCRIBE)
        assert codes(found, "html") == ["misplaced_tag"], html
    found = errors_of(
        channel="email", subject="{{ recommendations }}", html=UNSUBSCRIBE
    )
    assert codes(found, "subject") == ["misplaced_tag"]


# --- Preparing once, rendering fast -----------------------------------------------


def test_prepare_email_is_cached_per_template():
    first = prepare_email(subject="s {{ first_name }}", html=UNSUBSCRIBE)
    assert prepare_email(subject="s {{ first_name }}", html=UNSUBSCRIBE) is first
    assert prepare_email(subject="t", html=UNSUBSCRIBE) is not first
    rendered = first.render(context(), open_pixel_url="https://t.example.pl/o")
    assert rendered == render_email(
        subject="s {{ first_name }}",
        html=UNSUBSCRIBE,
        context=context(),
        open_pixel_url="https://t.example.pl/o",
    )
    assert rendered.subject == "s Anna"


def test_rendering_a_5_kb_email_takes_well_under_a_millisecond():
    rows = "".join(
        f'<tr><td style="padding:8px">Produkt {i} dla {{{{ first_name }}}}</td>'
        f'<td><a href="https://sklep.example.pl/p/{i}">Zobacz</a></td></tr>'
        for i in range(32)
    )
    html = (
        f"<h1>Cześć {{{{ first_name }}}}</h1><table>{rows}</table>"
        "<p>{{ recommendations }}</p>" + UNSUBSCRIBE
    )
    assert len(html) > 4000
    prepared = prepare_email(subject="Cześć {{ first_name }}", html=html)
    ctx = context(PRODUCTS)

    def track_link(url: str) -> str:
        return "https://t.example.pl/c/abc?u=" + url

    rounds = 300
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(rounds):
            prepared.render(
                ctx, track_link=track_link, open_pixel_url="https://t.example.pl/o"
            )
        best = min(best, (time.perf_counter() - started) / rounds)
    assert best < 0.001
