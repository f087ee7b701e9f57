"""Merge tags, sanitised HTML and the text alternative of the messages we send.

Staff write templates (MessageTemplate): an email's subject and HTML body, an SMS's
text. They personalise them with the merge tags of MERGE_TAGS, written
``{{ first_name }}`` (spaces optional). Staff text is never a Django template: one
regular-expression pass puts plain values, looked up by allow-listed name in a dict,
where the tags stand. Anything else (``{% if %}``, ``{{ customer.email }}``,
``{{ first_name|upper }}``, an unknown name) stays as literal text, escaped in HTML;
``template_check`` refuses it before a template is saved.

Where tags may stand in an email's HTML:

- every tag but ``{{ recommendations }}`` in the text; values are HTML-escaped;
- ``{{ unsubscribe_url }}`` and ``{{ preferences_url }}`` (HREF_TAGS) also as the
  whole address of a link, ``<a href="{{ unsubscribe_url }}">``. No tag anywhere
  else in an attribute: a customer's name in an href could be ``javascript:...``;
- ``{{ recommendations }}`` (BLOCK_TAGS, a table of products) as the only content
  of a paragraph, div, table cell or list item: ``<p>{{ recommendations }}</p>``;
  the paragraph becomes the block. Not in a subject; anywhere in an SMS.

Sending one template to 100,000 people: ``prepare_email`` sanitises and parses a
template once (cached) into literal chunks and slots, and ``PreparedEmail.render``
only joins chunks with escaped values. Click tracking (``track_link``) rewrites the
template's own absolute http(s) links and the recommended products' links, never
the unsubscribe and preference links. The text alternative shows the tracked
addresses too: in a plain-text client that is the address the recipient clicks.
"""

from __future__ import annotations

import dataclasses
import html as html_lib
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from html.parser import HTMLParser

import nh3
from django.core.exceptions import ValidationError
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from campaigns.models import Channel

MERGE_TAGS: dict[str, Promise] = {
    "first_name": gettext_lazy("The customer's first name."),
    "last_name": gettext_lazy("The customer's last name."),
    "full_name": gettext_lazy("The customer's first and last name."),
    "favourite_category": gettext_lazy(
        "The category the customer buys from most often."
    ),
    "coupon": gettext_lazy(
        "The customer's own coupon code (when the campaign gives coupons)."
    ),
    "coupon_valid_until": gettext_lazy("The last day the coupon can be used."),
    "recommendations": gettext_lazy(
        "Products recommended to the customer: a block of its own, alone in its "
        "paragraph."
    ),
    "unsubscribe_url": gettext_lazy(
        "The unsubscribe link's address (every email needs one)."
    ),
    "preferences_url": gettext_lazy("The address of the customer's preference centre."),
    "shop_name": gettext_lazy("The shop's name."),
}
# The tags that may be a link's whole address: addresses we make, never customer data.
HREF_TAGS = frozenset({"unsubscribe_url", "preferences_url"})
# The tags that render a block of their own (see the module docstring).
BLOCK_TAGS = frozenset({"recommendations"})
SUBJECT_MAX_LENGTH = 255

# --- Sanitising ---------------------------------------------------------------------

EMAIL_TAGS = frozenset(
    {
        "p", "br", "a", "strong", "b", "em", "i", "u", "h1", "h2", "h3", "h4",
        "ul", "ol", "li", "table", "thead", "tbody", "tr", "td", "th", "img",
        "span", "div", "blockquote", "hr",
    }
)  # fmt: skip
_CELL_ATTRIBUTES = {"align", "valign", "width", "colspan", "rowspan"}
EMAIL_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"style"},
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height", "align"},
    "table": {"width", "align", "border", "cellpadding", "cellspacing"},
    "td": _CELL_ATTRIBUTES,
    "th": _CELL_ATTRIBUTES,
    "p": {"align"},
    "div": {"align"},
}
EMAIL_STYLE_PROPERTIES = frozenset(
    {
        "color", "background-color", "text-align", "text-decoration", "line-height",
        "vertical-align", "width", "height",
        "font", "font-family", "font-size", "font-style", "font-weight", "font-variant",
        "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
        "margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
        "border", "border-top", "border-right", "border-bottom", "border-left",
        "border-color", "border-style", "border-width", "border-radius",
        "border-collapse", "border-spacing",
    }
)  # fmt: skip
URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Removed with everything inside them: their content is code, not text.
_REMOVED_WITH_CONTENT = frozenset(
    {
        "script", "style", "title", "iframe", "frame", "frameset", "object",
        "embed", "applet", "noscript", "noembed", "template", "svg", "math",
        "textarea", "select",
    }
)  # fmt: skip
# nh3 keeps a style's syntax, not its meaning: a declaration that loads or runs
# anything goes (old clients ran expression(), url() fetches on open).
_STYLE_UNSAFE_RE = re.compile(
    r"[\\@<>]|/\*|url\s*\(|image\s*\(|expression|javascript|behaviou?r|binding",
    re.IGNORECASE,
)
_HREF_TAG_RE = re.compile(r"\s*\{\{\s*(unsubscribe_url|preferences_url)\s*\}\}\s*")
# Private-use characters mark slots while a template is prepared; staff never need them.
_SENTINEL_OPEN, _SENTINEL_CLOSE = "\ue000", "\ue001"
_SENTINEL_RE = re.compile("\ue000(\\d+)\ue001")
_PARENTHESISED_RE = re.compile(" \\(\ue000(\\d+)\ue001\\)")
_NO_SENTINELS = {ord(_SENTINEL_OPEN): None, ord(_SENTINEL_CLOSE): None}


def _written(name: str) -> str:
    """A merge tag as the editor's help writes it."""
    return "{{ " + name + " }}"


def _safe_style(value: str) -> str | None:
    kept = [
        declaration
        for declaration in value.split(";")
        if declaration.strip() and not _STYLE_UNSAFE_RE.search(declaration)
    ]
    return ";".join(kept) or None


def _attribute_filter(element: str, attribute: str, value: str) -> str | None:
    if attribute == "style":
        return _safe_style(value)
    if attribute == "src" and "{{" in value:
        # url_relative lets merge tags through for links; an image is no link.
        return None
    return value


def _relative_url(url: str) -> str | None:
    # An email has no base address: a relative link leads nowhere. Only the
    # address tags pass, written the one way the renderer looks for.
    match = _HREF_TAG_RE.fullmatch(url)
    return _written(match.group(1)) if match else None


_CLEANER = nh3.Cleaner(
    tags=set(EMAIL_TAGS),
    clean_content_tags=set(_REMOVED_WITH_CONTENT),
    attributes=EMAIL_ATTRIBUTES,
    attribute_filter=_attribute_filter,
    link_rel="noopener",
    url_schemes=set(URL_SCHEMES),
    url_relative=_relative_url,
    filter_style_properties=set(EMAIL_STYLE_PROPERTIES),
)


def html_sanitise(html: str) -> str:
    """Staff HTML cleaned to what emails may hold; address merge tags in hrefs kept."""
    return _CLEANER.clean((html or "").translate(_NO_SENTINELS))


# --- Text alternative ---------------------------------------------------------------

_WHITESPACE_RE = re.compile(r"\s+")
_BLANK_LINES_RE = re.compile(r"\n\s*\n")
_SKIPPED = _REMOVED_WITH_CONTENT | {"head"}
_PARAGRAPHS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "ul", "ol", "hr"}
)
_IN_ITEM = frozenset({"p", "blockquote", "ul", "ol"})
_LINES = frozenset({"div", "li", "tr", "dl", "dt", "dd", "caption"})
_SHOWN_HREF_RE = re.compile(r"(?:https?:|mailto:|\{\{)", re.IGNORECASE)


def _collapse(text: str) -> str:
    return _WHITESPACE_RE.sub(" ", text).strip()


class _TextWriter(HTMLParser):
    """HTML to plain text: blocks to lines, links to "text (address)"."""

    def __init__(self, resolve: Callable[[str], str] | None = None) -> None:
        super().__init__(convert_charrefs=True)
        # Slots compare by what they stand for: a link whose text is its address.
        self.resolve = resolve or (lambda text: text)
        self.lines: list[str] = []
        self.words: list[str] = []
        self.prefix = ""
        self.skipping = 0
        self.lists = 0
        self.cells = 0
        self.links: list[tuple[str, int, int]] = []

    def text(self) -> str:
        self.close()
        self.end_line()
        return "\n".join(self.lines).strip("\n")

    def end_line(self, *, blank: bool = False) -> None:
        line = _collapse("".join(self.words))
        if line:
            self.lines.append(self.prefix + line)
            self.prefix = ""
        self.words = []
        if blank and self.lines and self.lines[-1]:
            self.lines.append("")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self.skipping += 1
        if self.skipping:
            return
        if tag == "br":
            self.end_line()
        elif tag in _PARAGRAPHS:
            # Inside a list a paragraph or a nested list is more lines of an item.
            self.end_line(blank=not (self.lists and tag in _IN_ITEM))
            if tag in ("ul", "ol"):
                self.lists += 1
        elif tag in _LINES:
            self.end_line()
            if tag == "li":
                self.prefix = "  " * max(self.lists - 1, 0) + "- "
            elif tag == "tr":
                self.cells = 0
        elif tag in ("td", "th"):
            if self.cells and "".join(self.words).strip():
                self.words.append(" | ")
            self.cells += 1
        elif tag == "a":
            href = (dict(attrs).get("href") or "").strip()
            self.links.append((href, len(self.words), len(self.lines)))
        elif tag == "img":
            alt = dict(attrs).get("alt") or ""
            if alt.strip():
                self.words.append(f" {alt} ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skipping = max(self.skipping - 1, 0)
            return
        if self.skipping:
            return
        if tag in _PARAGRAPHS:
            if tag in ("ul", "ol"):
                self.lists = max(self.lists - 1, 0)
            self.end_line(blank=not (self.lists and tag in _IN_ITEM))
        elif tag in _LINES:
            self.end_line()
        elif tag == "a" and self.links:
            self.end_link(*self.links.pop())

    def end_link(self, href: str, start: int, line_count: int) -> None:
        resolved = self.resolve(href)
        if not href or not _SHOWN_HREF_RE.match(resolved):
            return
        if line_count != len(self.lines):
            self.words.append(f" ({href})")
            return
        text = _collapse("".join(self.words[start:]))
        if not text:
            self.words.append(f" {href} ")
        elif self.resolve(text) == resolved:
            self.words[start:] = [f" {href} "]
        elif not (href.startswith("mailto:") and text == href[7:]):
            self.words.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.words.append(data)


def html_to_text(html: str) -> str:
    """The plain-text alternative of an email's HTML."""
    writer = _TextWriter()
    writer.feed(html or "")
    return writer.text()


# --- Preparing a template once ------------------------------------------------------

# A merge tag as staff write it; only names in MERGE_TAGS are ever looked up.
_TAG_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# What Django would read as template code: variables, tags, comments.
_CODE_RE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ABSOLUTE_RE = re.compile(r"https?://", re.IGNORECASE)
# A tag of nh3's output, which always quotes attributes with "..." (so ">" may
# stand inside a value, '"' never does).
_TOKEN_RE = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9]*)((?:\s+[^\s\"'>/=]+(?:=\"[^\"]*\")?)*)\s*/?>"
)
_HREF_ATTRIBUTE_RE = re.compile(r'(\shref=")([^"]*)"')
_LINE_BREAKS_RE = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+")
# Where {{ recommendations }} may stand, as the element's only content.
_BLOCK_HOSTS = frozenset({"p", "div", "td", "th", "li"})
_DOCUMENT_START = (
    '<!DOCTYPE html><html><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "</head><body>"
)
_DOCUMENT_END = "</body></html>"


@dataclasses.dataclass(frozen=True)
class Recommendation:
    name: str
    price: str  # formatted, e.g. "49,99 zł"
    url: str = ""  # absolute product page, may be empty
    image_url: str = ""


@dataclasses.dataclass(frozen=True)
class MessageContext:
    values: Mapping[str, str]  # tag -> plain text value (never HTML)
    recommendations: Sequence[Recommendation] = ()


@dataclasses.dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Slot:
    """A place a message fills in.

    kind "value": a tag's value; "href": an address tag's value as a link's href;
    "link": a static link (name is its address, literal its escaped href as
    written); "block": the recommendations.
    """

    kind: str
    name: str
    literal: str = ""
    # "href" in the text alternative: " (address)" after the link's text, or
    # nothing when the address is empty.
    parenthesised: bool = False


Parts = tuple[str | _Slot, ...]


@dataclasses.dataclass(frozen=True)
class _Body:
    html: Parts
    text: Parts
    links: tuple[str, ...]
    has_unsubscribe: bool
    misplaced: tuple[str, ...]


class _Marker:
    """Collects slots and stands a sentinel for each in the text being prepared."""

    def __init__(self) -> None:
        self.slots: list[_Slot] = []

    def __call__(self, slot: _Slot) -> str:
        self.slots.append(slot)
        return f"{_SENTINEL_OPEN}{len(self.slots) - 1}{_SENTINEL_CLOSE}"

    def split(self, marked: str) -> Parts:
        pieces = _SENTINEL_RE.split(marked)
        return tuple(
            self.slots[int(piece)] if index % 2 else piece
            for index, piece in enumerate(pieces)
            if index % 2 or piece
        )

    def resolve(self, marked: str) -> str:
        return _SENTINEL_RE.sub(lambda m: self.key(self.slots[int(m.group(1))]), marked)

    @staticmethod
    def key(slot: _Slot) -> str:
        return slot.name if slot.kind == "link" else _written(slot.name)


def _tokens(clean: str) -> list[tuple[str, bool, str]]:
    """(tag name or "" for text, is a closing tag, source) of sanitised HTML."""
    tokens: list[tuple[str, bool, str]] = []
    position = 0
    for match in _TOKEN_RE.finditer(clean):
        if match.start() > position:
            tokens.append(("", False, clean[position : match.start()]))
        tokens.append((match.group(2).lower(), bool(match.group(1)), match.group(0)))
        position = match.end()
    if position < len(clean):
        tokens.append(("", False, clean[position:]))
    return tokens


def _mark_href(match: re.Match, mark: _Marker) -> str:
    written = match.group(2)
    address = html_lib.unescape(written)
    tag = _HREF_TAG_RE.fullmatch(address)
    if tag:
        slot = _Slot("href", tag.group(1))
    elif _ABSOLUTE_RE.match(address):
        slot = _Slot("link", address, written)
    else:
        return match.group(0)
    return f'{match.group(1)}{mark(slot)}"'


def _mark_text(
    text: str, mark: _Marker, *, block_allowed: bool
) -> tuple[str, list[str]]:
    """The text with its tags marked; the block tags that stand where none may."""
    misplaced: list[str] = []

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in MERGE_TAGS:
            return match.group(0)
        if name in BLOCK_TAGS:
            if not block_allowed:
                misplaced.append(name)
                return match.group(0)
            return mark(_Slot("block", name))
        return mark(_Slot("value", name))

    return _TAG_RE.sub(replace, text), misplaced


@lru_cache(maxsize=64)
def _prepare_body(html: str) -> _Body:
    tokens = _tokens(html_sanitise(html))
    mark = _Marker()
    out: list[str] = []
    misplaced: list[str] = []
    close_as_div = -1
    for index, (name, closing, source) in enumerate(tokens):
        if name:
            if index == close_as_div:
                source = "</div>"
            elif name == "a" and not closing:
                source = _HREF_ATTRIBUTE_RE.sub(lambda m: _mark_href(m, mark), source)
            out.append(source)
            continue
        host = tokens[index - 1] if index else ("", True, "")
        after = tokens[index + 1] if index + 1 < len(tokens) else ("", False, "")
        lone = _TAG_RE.fullmatch(source.strip())
        alone = (
            lone is not None
            and lone.group(1) in BLOCK_TAGS
            and host[0] in _BLOCK_HOSTS
            and not host[1]
            and after[:2] == (host[0], True)
        )
        marked, stray = _mark_text(source, mark, block_allowed=alone)
        misplaced.extend(stray)
        if alone and host[0] == "p":
            # A table may not stand in a paragraph: the paragraph becomes a div.
            out[-1] = "<div" + out[-1][2:]
            close_as_div = index + 1
        out.append(marked)
    marked_html = "".join(out)
    writer = _TextWriter(mark.resolve)
    writer.feed(marked_html)
    text = _PARENTHESISED_RE.sub(
        lambda m: (
            mark(dataclasses.replace(slot, parenthesised=True))
            if (slot := mark.slots[int(m.group(1))]).kind == "href"
            else m.group(0)
        ),
        writer.text(),
    )
    html_parts = mark.split(marked_html)
    slots = [part for part in html_parts if isinstance(part, _Slot)]
    return _Body(
        html=html_parts,
        text=mark.split(text),
        links=tuple(dict.fromkeys(s.name for s in slots if s.kind == "link")),
        has_unsubscribe=_Slot("href", "unsubscribe_url") in slots,
        misplaced=tuple(dict.fromkeys(misplaced)),
    )


def _prepare_plain(text: str) -> Parts:
    mark = _Marker()
    return mark.split(
        _TAG_RE.sub(
            lambda m: (
                mark(_Slot("value", m.group(1)))
                if m.group(1) in MERGE_TAGS and m.group(1) not in BLOCK_TAGS
                else m.group(0)
            ),
            text.translate(_NO_SENTINELS),
        )
    )


# --- Rendering ----------------------------------------------------------------------

_escape = html_lib.escape


def _value(values: Mapping[str, str], name: str) -> str:
    value = values.get(name)
    return "" if value is None else str(value)


def _address(value: str) -> str:
    # Addresses we show or link to are absolute http(s), whoever made them.
    return value if _ABSOLUTE_RE.match(value) else ""


def _recommendations_html(
    recommendations: Sequence[Recommendation], link: Callable[[str], str]
) -> str:
    if not recommendations:
        return ""
    with_images = any(_address(r.image_url) for r in recommendations)
    rows = []
    for item in recommendations:
        url = _address(item.url)
        href = _escape(link(url)) if url else ""
        name = _escape(item.name)
        cells = []
        if with_images:
            image = _address(item.image_url)
            # The name follows: for screen readers the image is decoration.
            picture = (
                f'<img src="{_escape(image)}" alt="" width="96" '
                'style="display:block;border:0">'
                if image
                else ""
            )
            if picture and href:
                picture = f'<a href="{href}" rel="noopener">{picture}</a>'
            cells.append(
                '<td width="96" style="padding:8px 12px 8px 0;vertical-align:top">'
                f"{picture}</td>"
            )
        title = f'<a href="{href}" rel="noopener">{name}</a>' if href else name
        cells.append(
            '<td style="padding:8px 0;vertical-align:top">'
            f"<strong>{title}</strong><br>{_escape(item.price)}</td>"
        )
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
        f'border="0"><tbody>{"".join(rows)}</tbody></table>'
    )


def _recommendations_text(
    recommendations: Sequence[Recommendation], link: Callable[[str], str]
) -> str:
    lines = []
    for item in recommendations:
        url = _address(item.url)
        fields = [item.name, item.price, link(url) if url else ""]
        lines.append("- " + ", ".join(field for field in fields if field))
    return "\n".join(lines)


def _untracked(url: str) -> str:
    return url


@dataclasses.dataclass(frozen=True)
class PreparedEmail:
    """An email template sanitised and parsed once; ``render`` fills it per person."""

    subject: Parts
    html: Parts
    text: Parts
    links: tuple[str, ...]

    def render(
        self,
        context: MessageContext,
        *,
        track_link: Callable[[str], str] | None = None,
        open_pixel_url: str = "",
    ) -> RenderedEmail:
        """The message of one recipient."""
        values = context.values
        tracked: dict[str, str] = {}

        def link(url: str) -> str:
            if track_link is None:
                return url
            if url not in tracked:
                tracked[url] = track_link(url)
            return tracked[url]

        html = [_DOCUMENT_START]
        for part in self.html:
            if part.__class__ is str:
                html.append(part)
            elif part.kind == "value":
                html.append(_escape(_value(values, part.name)))
            elif part.kind == "href":
                html.append(_escape(_address(_value(values, part.name))))
            elif part.kind == "link":
                html.append(_escape(link(part.name)) if track_link else part.literal)
            else:
                html.append(_recommendations_html(context.recommendations, link))
        if open_pixel_url:
            html.append(
                f'<img src="{_escape(open_pixel_url)}" width="1" height="1" alt="" '
                'style="display:none">'
            )
        html.append(_DOCUMENT_END)

        text = []
        for part in self.text:
            if part.__class__ is str:
                text.append(part)
            elif part.kind == "value":
                text.append(_value(values, part.name))
            elif part.kind == "href":
                address = _address(_value(values, part.name))
                if part.parenthesised and address:
                    address = f" ({address})"
                text.append(address)
            elif part.kind == "link":
                text.append(link(part.name))
            else:
                text.append(_recommendations_text(context.recommendations, link))

        subject = "".join(
            part if part.__class__ is str else _value(values, part.name)
            for part in self.subject
        )
        return RenderedEmail(
            # A line break in a header would start a header of its own.
            subject=_LINE_BREAKS_RE.sub(" ", subject).strip(),
            html="".join(html),
            # An empty value or block leaves blank lines behind.
            text=_BLANK_LINES_RE.sub("\n\n", "".join(text)).strip(),
        )


@lru_cache(maxsize=32)
def prepare_email(subject: str, html: str) -> PreparedEmail:
    """The email template parsed for rendering many times (cached per template)."""
    body = _prepare_body(html or "")
    return PreparedEmail(
        subject=_prepare_plain(subject or ""),
        html=body.html,
        text=body.text,
        links=body.links,
    )


def render_email(
    *,
    subject: str,
    html: str,
    context: MessageContext,
    track_link: Callable[[str], str] | None = None,
    open_pixel_url: str = "",
) -> RenderedEmail:
    """One recipient's email: subject, HTML document and its text alternative."""
    return prepare_email(subject, html).render(
        context, track_link=track_link, open_pixel_url=open_pixel_url
    )


def render_sms(*, text: str, context: MessageContext) -> str:
    """One recipient's SMS."""

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in MERGE_TAGS:
            return match.group(0)
        if name in BLOCK_TAGS:
            return _recommendations_text(context.recommendations, _untracked)
        return _value(context.values, name)

    return _TAG_RE.sub(replace, text or "")


def template_links(html: str) -> list[str]:
    """The distinct absolute http(s) link addresses of a template, in order."""
    return list(_prepare_body(html or "").links)


# --- Checking a template before it is saved -----------------------------------------

_SCHEME_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*):")
# Browsers drop these from an address before reading its scheme ("java\tscript:").
_URL_IGNORED_RE = re.compile(r"[\t\n\r]")
_SCRIPT_SCHEMES = frozenset({"javascript", "vbscript", "data"})
_SHOWN_LINKS = 5


def _shorten(text: str, limit: int = 60) -> str:
    text = _collapse(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _SourceScan(HTMLParser):
    """What sanitising takes from staff HTML, and merge tags in attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.removed: dict[str, None] = {}
        self.bad_links: dict[str, None] = {}
        self.attribute_tags: dict[str, None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _REMOVED_WITH_CONTENT and tag != "title":
            self.removed[f"<{tag}>"] = None
        for attribute, value in attrs:
            value = value or ""
            if attribute.startswith("on"):
                self.removed[f"{attribute}="] = None
            if "{{" in value:
                self.tags_in_attribute(tag, attribute, value)
            elif attribute in ("href", "src") and tag in ("a", "img"):
                self.address(value)

    def tags_in_attribute(self, tag: str, attribute: str, value: str) -> None:
        if tag == "a" and attribute == "href" and _HREF_TAG_RE.fullmatch(value):
            return
        for match in _TAG_RE.finditer(value):
            if match.group(1) in MERGE_TAGS:
                self.attribute_tags[_written(match.group(1))] = None

    def address(self, value: str) -> None:
        url = _URL_IGNORED_RE.sub("", value).strip("\x00 \x0c")
        if not url or url.startswith("#"):
            return
        scheme = _SCHEME_RE.match(url)
        if scheme and scheme.group(1).lower() in URL_SCHEMES:
            return
        if scheme and scheme.group(1).lower() in _SCRIPT_SCHEMES:
            self.removed[f"{scheme.group(1).lower()}:"] = None
        else:
            self.bad_links[_shorten(url)] = None


def _code_errors(*sources: str) -> list[ValidationError]:
    """Template code that is not a known merge tag, once per kind."""
    errors: dict[tuple[str, str], ValidationError] = {}
    for source in sources:
        for match in _CODE_RE.finditer(source):
            code = match.group(0)
            inner = code[2:-2].strip()
            if code.startswith("{{") and _NAME_RE.fullmatch(inner):
                if inner in MERGE_TAGS:
                    continue
                tag = _written(inner)
                errors[("unknown_tag", tag)] = ValidationError(
                    _('Unknown merge tag "%(tag)s". Allowed: %(allowed)s.'),
                    code="unknown_tag",
                    params={"tag": tag, "allowed": ", ".join(MERGE_TAGS)},
                )
                continue
            if code.startswith("{%"):
                shown = "{% " + (inner.split() or [""])[0] + " %}"
            elif code.startswith("{#"):
                shown = "{# #}"
            else:
                shown = "{{ " + _shorten(inner, 40) + " }}" if inner else "{{ }}"
            errors[("template_syntax", shown)] = ValidationError(
                _("Template code is not allowed: %(code)s"),
                code="template_syntax",
                params={"code": shown},
            )
    return list(errors.values())


def _subject_errors(subject: str) -> list[ValidationError]:
    if not subject.strip():
        return [ValidationError(_("Write the subject."), code="required")]
    errors = _code_errors(subject)
    if _LINE_BREAKS_RE.search(subject):
        errors.append(
            ValidationError(_("The subject must be a single line."), code="invalid")
        )
    if len(subject) > SUBJECT_MAX_LENGTH:
        errors.append(
            ValidationError(
                _(
                    "The subject can be at most %(limit)d characters long "
                    "(it has %(length)d)."
                ),
                code="max_length",
                params={"limit": SUBJECT_MAX_LENGTH, "length": len(subject)},
            )
        )
    for match in _TAG_RE.finditer(subject):
        if match.group(1) in BLOCK_TAGS:
            errors.append(
                ValidationError(
                    _("%(tag)s cannot be used in the subject."),
                    code="misplaced_tag",
                    params={"tag": _written(match.group(1))},
                )
            )
            break
    return errors


def _html_errors(html: str) -> list[ValidationError]:
    if not html.strip():
        return [ValidationError(_("Write the HTML body."), code="required")]
    scan = _SourceScan()
    scan.feed(html)
    scan.close()
    body = _prepare_body(html)
    errors = _code_errors(html, html_sanitise(html))
    if scan.removed:
        errors.append(
            ValidationError(
                _("Not allowed in emails, would be removed: %(items)s."),
                code="unsafe",
                params={"items": ", ".join(scan.removed)},
            )
        )
    if scan.bad_links:
        errors.append(
            ValidationError(
                _(
                    "Links and images need a full address starting with https:// "
                    "(links may also use mailto:). These would be removed: "
                    "%(links)s."
                ),
                code="invalid_link",
                params={"links": ", ".join(list(scan.bad_links)[:_SHOWN_LINKS])},
            )
        )
    for tag in scan.attribute_tags:
        errors.append(
            ValidationError(
                _(
                    "%(tag)s cannot stand in an HTML attribute. Only "
                    "{{ unsubscribe_url }} and {{ preferences_url }} can, as the "
                    'whole address of a link: href="{{ unsubscribe_url }}".'
                ),
                code="misplaced_tag",
                params={"tag": tag},
            )
        )
    for name in body.misplaced:
        errors.append(
            ValidationError(
                _("%(tag)s must stand alone in a paragraph of its own."),
                code="misplaced_tag",
                params={"tag": _written(name)},
            )
        )
    if not body.has_unsubscribe:
        errors.append(
            ValidationError(
                _(
                    "Every email needs an unsubscribe link: a link whose address "
                    "is {{ unsubscribe_url }}."
                ),
                code="no_unsubscribe",
            )
        )
    return errors


def template_check(
    *, channel: str, subject: str = "", html: str = "", text: str = ""
) -> None:
    """Refuse a template that would not render as staff meant: ValidationError."""
    errors: dict[str, list[ValidationError]] = {}
    if channel == Channel.EMAIL:
        errors["subject"] = _subject_errors(subject or "")
        errors["html"] = _html_errors(html or "")
    elif channel == Channel.SMS:
        if not (text or "").strip():
            errors["text"] = [
                ValidationError(_("Write the text of the SMS."), code="required")
            ]
        else:
            errors["text"] = _code_errors(text)
    else:
        errors["channel"] = [
            ValidationError(_("Choose email or SMS."), code="invalid_choice")
        ]
    errors = {field: found for field, found in errors.items() if found}
    if errors:
        raise ValidationError(errors)
