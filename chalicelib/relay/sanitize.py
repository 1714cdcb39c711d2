"""Sanitize HTML parts so readers are not tracked and nothing runs (R5, issue 14).

Every HTML part goes through three passes; only the first and the last parse
untrusted markup, and both are nh3 (the Rust ammonia sanitizer, html5ever's
parser):

1. **nh3, lenient.** A mail-formatting allowlist of tags and attributes.
   Scripts, styles, forms, frames, SVG/MathML, event handlers, ``<base>``,
   ``<meta>`` and ``<link>`` go; URLs must be ``http``, ``https``, ``mailto``
   (links), ``cid:`` or a raster ``data:image`` (images only); relative URLs
   go (there is no base a mail could resolve against but the reader's webmail).
   ``style`` keeps only :data:`STYLE_PROPERTIES` and no CSS function but colours
   and ``calc`` -- so no ``url()``, ``image-set()`` or ``expression()``.
   Image and video sources are kept for pass 2.
2. **Rewrite** (stdlib :class:`html.parser.HTMLParser` over pass 1's output,
   which html5ever serialized: quoted attributes, escaped text, no raw-text
   elements, so it reads back exactly as nh3 meant it). Trackers are dropped in
   both modes: 1x1 or hidden remote images and images from
   :data:`TRACKER_HOSTS`. Under ``block`` every remote image, video or audio
   becomes a placeholder ``[image: host] — open`` whose link the reader may
   follow deliberately; under ``allow`` remote images stay. ``<video>``,
   ``<audio>`` and ``<picture>`` sources never stay.
3. **nh3, strict**, for the mode: the tags pass 2 may emit, and under ``block``
   no remote URL in any attribute that loads (``src``, ``srcset``,
   ``background``, ``poster``); only links stay remote. This pass is the
   guarantee; pass 2 only decides what the reader sees instead.

Addresses are scrubbed *after* sanitizing (``parts._text_part``): sanitizing
decodes entities and drops markup between characters, which could join the two
halves of an address the scrubber saw apart. The footer is added after both.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from functools import cache
from html.parser import HTMLParser
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from chalicelib.relay.context import REMOTE_CONTENT_MODES, RemoteContent

# Known open-tracking hosts (host suffix, path prefix or "" for any path). An
# image from one of them is dropped even when remote content is allowed; most
# other pixels are caught by their size or by being hidden.
TRACKER_HOSTS: tuple[tuple[str, str], ...] = (
    ("list-manage.com", "/track/open"),  # Mailchimp open pixel
    ("mandrillapp.com", "/track/open"),  # Mandrill (Mailchimp transactional)
    ("sendgrid.net", "/wf/open"),  # SendGrid open pixel
    ("google-analytics.com", ""),  # GA "collect" pixels
    ("mailtrack.io", ""),  # Mailtrack read receipts
    ("track.hubspot.com", ""),  # HubSpot
    ("hubspotemail.net", ""),  # HubSpot (sales) open pixels
    ("t.yesware.com", ""),  # Yesware
    ("mailstat.us", ""),  # Streak / Boomerang-style read receipts
    ("pixel.wp.com", ""),  # WordPress.com stats
    ("open.convertkit-mail.com", ""),  # ConvertKit
    ("mixpanel.com", "/track"),  # Mixpanel email tracking
)

STYLE_PROPERTIES = frozenset(
    {
        "color", "background", "background-color", "opacity", "visibility", "display",
        "font", "font-family", "font-size", "font-style", "font-weight", "font-variant",
        "line-height", "letter-spacing", "word-spacing", "white-space", "word-break", "word-wrap",
        "text-align", "text-decoration", "text-indent", "text-transform", "vertical-align", "direction",
        "margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
        "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
        "border", "border-top", "border-right", "border-bottom", "border-left", "border-color",
        "border-style", "border-width", "border-radius", "border-collapse", "border-spacing",
        "width", "height", "min-width", "max-width", "min-height", "max-height",
        "float", "clear", "overflow", "table-layout", "list-style-type", "caption-side",
    }
)
_SAFE_CSS_FUNCTIONS = frozenset({"rgb", "rgba", "hsl", "hsla", "calc"})

_TABLE_ATTRS = {"width", "height", "align", "valign", "bgcolor", "border", "cellpadding", "cellspacing"}
_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"style", "title", "dir", "lang", "align"},
    "a": {"href", "name"},
    "img": {"src", "srcset", "alt", "width", "height", "border", "hspace", "vspace"},
    "table": {*_TABLE_ATTRS, "background", "summary"},
    "td": {*_TABLE_ATTRS, "background", "colspan", "rowspan", "nowrap", "headers", "scope"},
    "th": {*_TABLE_ATTRS, "background", "colspan", "rowspan", "nowrap", "headers", "scope"},
    "tr": {"valign", "bgcolor", "height"},
    "tbody": {"valign"}, "thead": {"valign"}, "tfoot": {"valign"},
    "col": {"span", "width", "valign"}, "colgroup": {"span", "width", "valign"},
    "font": {"color", "face", "size"},
    "ol": {"start", "type"}, "ul": {"type"}, "li": {"value", "type"},
    "blockquote": {"type"}, "hr": {"width", "size", "noshade", "color"},
    "div": {"background"}, "span": set(), "p": set(),
    "video": {"src", "poster"}, "audio": {"src"}, "source": {"src", "srcset"},
}  # fmt: skip
if TYPE_CHECKING:
    import nh3

# ammonia's default tags (nh3.ALLOWED_TAGS) without image maps, data and time, plus old formatting tags.
_BASE_TAGS = {
    "a", "abbr", "acronym", "article", "aside", "b", "bdi", "bdo", "big", "blockquote", "br", "caption",
    "center", "cite", "code", "col", "colgroup", "dd", "del", "details", "dfn", "div", "dl", "dt", "em",
    "figcaption", "figure", "font", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "hr",
    "i", "img", "ins", "kbd", "li", "mark", "nav", "ol", "p", "pre", "q", "rp", "rt", "rtc", "ruby", "s",
    "samp", "small", "span", "strike", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot",
    "th", "thead", "tr", "tt", "u", "ul", "var", "wbr",
}
_MEDIA_TAGS = {"video", "audio", "source", "picture"}  # read by pass 2, never emitted
_DROP_WITH_CONTENT = {"script", "style", "title", "noscript", "template", "iframe", "frame", "frameset",
                      "object", "embed", "applet", "svg", "math", "textarea", "select", "button",
                      "noembed", "noframes", "xmp", "head"}  # fmt: skip
_SCHEMES = {"http", "https", "mailto", "cid", "data"}
_RASTER_DATA = re.compile(r"^data:image/(?:png|gif|jpeg|jpg|webp|bmp);base64,[A-Za-z0-9+/=\s]*$", re.IGNORECASE)
_SCHEME_RE = re.compile(r"^([a-z][a-z0-9+.-]*):")
_URL_WS = str.maketrans("", "", "\t\n\r")
_LOADS = {"src", "srcset", "background", "poster"}  # attributes a client fetches by itself
_PLACEHOLDER_STYLE = (
    "display:inline-block;border:1px dashed #999999;padding:2px 6px;color:#555555;font-size:12px"
)


# --- URLs ---------------------------------------------------------------------------


def _no_url_ws(url: str) -> str:
    return url.translate(_URL_WS) if "\t" in url or "\n" in url or "\r" in url else url


def url_scheme(url: str) -> str:
    """The scheme a browser would see ("" for a relative URL): tabs and newlines
    are ignored anywhere, C0 controls and spaces at the ends (WHATWG URL)."""
    cleaned = _no_url_ws(url).strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f"
                                           "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")
    m = _SCHEME_RE.match(cleaned.lower())
    return m.group(1) if m else ""


def is_remote(url: str) -> bool:
    return url_scheme(url) in ("http", "https")


def host_of(url: str) -> str:
    try:
        return (urlsplit(_no_url_ws(url).strip()).hostname or "").rstrip(".").lower()
    except ValueError:
        return ""


def is_tracker_url(url: str) -> bool:
    """Whether ``url`` is an open pixel of a known tracking service."""
    host = host_of(url)
    if not host:
        return False
    try:
        path = urlsplit(_no_url_ws(url).strip()).path.lower()
    except ValueError:
        path = ""
    return any(
        (host == suffix or host.endswith("." + suffix)) and path.startswith(prefix)
        for suffix, prefix in TRACKER_HOSTS
    )


def _srcset_urls(value: str) -> list[str]:
    return [c.split()[0] for c in value.split(",") if c.split()]


# --- CSS ------------------------------------------------------------------------------


def declarations(style: str) -> list[tuple[str, str]]:
    """``prop: value`` pairs of a style attribute (quotes and parentheses respected)."""
    out: list[tuple[str, str]] = []
    if not any(c in style for c in "\"'("):  # the common case: no quoting to respect
        for item in style.split(";"):
            prop, colon, value = item.partition(":")
            if colon and prop.strip():
                out.append((prop.strip().lower(), value.strip()))
        return out
    current: list[str] = []
    quote = ""
    depth = 0
    for ch in style + ";":
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == ";" and depth == 0:
            prop, colon, value = "".join(current).partition(":")
            if colon and prop.strip():
                out.append((prop.strip().lower(), value.strip()))
            current = []
            continue
        current.append(ch)
    return out


def _css_value_safe(value: str) -> bool:
    """No escapes, and no function but colours and calc (so nothing that loads)."""
    if "\\" in value:
        return False
    if "(" not in value:
        return True
    for i, ch in enumerate(value):
        if ch == "(":
            j = i
            while j > 0 and (value[j - 1].isalnum() or value[j - 1] in "-_"):
                j -= 1
            if value[j:i].lower() not in _SAFE_CSS_FUNCTIONS:
                return False
    return True


def clean_style(style: str) -> str | None:
    kept = [f"{p}:{v}" for p, v in declarations(style) if p in STYLE_PROPERTIES and _css_value_safe(v)]
    return ";".join(kept) or None


# --- pass 1 and 3: nh3 ---------------------------------------------------------------


def _attribute_filter(mode: RemoteContent, final: bool) -> Callable[[str, str, str], str | None]:
    def keep(tag: str, attr: str, value: str) -> str | None:
        if attr == "style":
            # Pass 2 copies pass 1's cleaned styles and adds only its own.
            return value if final else clean_style(value)
        scheme = url_scheme(value) if attr in ("href", "src", "background", "poster") else None
        if attr == "href":
            return value if scheme in ("http", "https", "mailto") else None
        if attr == "src":
            if tag == "img" and scheme == "cid":
                return value
            if tag == "img" and scheme == "data":
                return value if _RASTER_DATA.match(value) else None
            if scheme not in ("http", "https") or is_tracker_url(value):
                return None
            return value if not final or mode == "allow" else None
        if attr == "srcset":
            urls = [u for u in _srcset_urls(value) if is_remote(u) and not is_tracker_url(u)]
            if not urls or (final and mode == "block"):
                return None
            if len(urls) != len(_srcset_urls(value)):
                return None  # a candidate that is not plain http(s): drop the whole set
            return value
        if attr in ("background", "poster"):
            ok = scheme in ("http", "https") and not is_tracker_url(value)
            return value if ok and (mode == "allow" or (attr == "poster" and not final)) else None
        return value

    return keep


@cache
def _cleaner(mode: RemoteContent, final: bool) -> nh3.Cleaner:
    import nh3  # on first use: every function imports the relay core, few render HTML

    tags = _BASE_TAGS if final else _BASE_TAGS | _MEDIA_TAGS
    attributes = {t: set(a) for t, a in _ATTRIBUTES.items() if t == "*" or t in tags}
    return nh3.Cleaner(
        tags=tags,
        clean_content_tags=_DROP_WITH_CONTENT,
        attributes=attributes,
        attribute_filter=_attribute_filter(mode, final),
        url_schemes=_SCHEMES,
        url_relative="deny",
        filter_style_properties=set(STYLE_PROPERTIES),
        strip_comments=True,
        link_rel="noopener noreferrer",
    )


# --- pass 2: trackers and placeholders --------------------------------------------------


def _pixels(value: str | None) -> float | None:
    if value is None:
        return None
    m = re.match(r"\s*([0-9]*\.?[0-9]+)\s*(px)?\s*$", value.lower())
    return float(m.group(1)) if m else None


def is_hidden_or_tiny(attrs: dict[str, str]) -> bool:
    """A 1x1 (or 0) image, or one its style hides: what an open pixel looks like."""
    sizes = [_pixels(attrs.get("width")), _pixels(attrs.get("height"))]
    style = dict(declarations(attrs.get("style", "")))
    sizes += [_pixels(style.get(p)) for p in ("width", "height", "max-width", "max-height")]
    if any(size is not None and size <= 1 for size in sizes):
        return True
    if style.get("display", "").lower().strip() == "none":
        return True
    if style.get("visibility", "").lower().strip() in ("hidden", "collapse"):
        return True
    opacity = _pixels(style.get("opacity"))
    return opacity is not None and opacity == 0


def placeholder(kind: str, url: str, label: str = "") -> str:
    """``[image: alt, host] — open``: a visible stand-in whose link loads nothing by itself."""
    host = host_of(url) or "remote"
    what = f"{label.strip()[:80]}, {host}" if label.strip() else host
    return (
        f'<span style="{_PLACEHOLDER_STYLE}">[{kind}: {html.escape(what, quote=False)}] \u2014 '
        f'<a href="{html.escape(url, quote=True)}">open</a></span>'
    )


class _Rewriter(HTMLParser):
    def __init__(self, mode: RemoteContent) -> None:
        super().__init__(convert_charrefs=True)
        self.mode = mode
        self.out: list[str] = []
        self.skip: list[str] = []  # open <video>/<audio> whose content is replaced

    def _emit_tag(self, tag: str, attrs: dict[str, str]) -> None:
        rendered = "".join(f' {k}="{html.escape(v, quote=True)}"' for k, v in attrs.items())
        self.out.append(f"<{tag}{rendered}>")

    def _image(self, attrs: dict[str, str]) -> None:
        src = attrs.get("src", "")
        remote = [u for u in [src, *_srcset_urls(attrs.get("srcset", ""))] if is_remote(u)]
        if not src and not remote:
            return  # nothing to show
        if remote and is_hidden_or_tiny(attrs):
            return  # an open pixel: dropped in every mode
        if self.mode == "allow" or not remote:
            self._emit_tag("img", attrs)
            return
        if src and not is_remote(src):
            attrs.pop("srcset", None)  # an inline image with remote alternatives: keep it inline
            self._emit_tag("img", attrs)
            return
        self.out.append(placeholder("image", remote[0], attrs.get("alt", "") or attrs.get("title", "")))

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = {k: v or "" for k, v in attrs_list}
        if self.skip:
            if tag == self.skip[-1]:
                self.skip.append(tag)
            return
        if tag == "img":
            self._image(attrs)
        elif tag in ("video", "audio"):
            url = next((u for u in (attrs.get("src", ""), attrs.get("poster", "")) if is_remote(u)), "")
            if url:
                self.out.append(placeholder(tag, url))
            self.skip.append(tag)
        elif tag not in _MEDIA_TAGS:
            self._emit_tag(tag, attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if self.skip:
            if tag == self.skip[-1]:
                self.skip.pop()
            return
        if tag not in _MEDIA_TAGS and tag != "img":
            self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(html.escape(data, quote=False))


def _tag_spans(fragment: str) -> list[tuple[int, int]] | None:
    """Where each tag of nh3's output starts and ends; None if it is not such output.

    html5ever serializes text with ``<`` escaped and attribute values in double
    quotes with ``"`` escaped, so a tag is a ``<`` in text up to the first ``>``
    outside quotes. Anything else (which nh3 does not produce) gives None.
    """
    spans: list[tuple[int, int]] = []
    i = fragment.find("<")
    while i >= 0:
        j = i + 1
        while True:
            gt = fragment.find(">", j)
            quote = fragment.find('"', j, gt if gt >= 0 else len(fragment))
            if gt < 0:
                return None
            if quote < 0:
                break
            closing = fragment.find('"', quote + 1)
            if closing < 0:
                return None
            j = closing + 1
        spans.append((i, gt + 1))
        i = fragment.find("<", gt + 1)
    return spans


_REWRITTEN = frozenset({"img", *_MEDIA_TAGS})


def _tag_name(tag: str) -> str:
    name = tag[2:] if tag.startswith("</") else tag[1:]
    end = 0
    while end < len(name) and name[end].isalnum():
        end += 1
    return name[:end].lower()


def _rewrite(fragment: str, mode: RemoteContent) -> str:
    """Pass 2. Only image and media tags go through the tokenizer; the rest of
    nh3's output is copied as it is (dropped inside a replaced video or audio)."""
    rewriter = _Rewriter(mode)
    spans = _tag_spans(fragment)
    if spans is None:  # not nh3's serialization after all: tokenize everything
        rewriter.feed(fragment)
        rewriter.close()
        return "".join(rewriter.out)
    out: list[str] = []
    last = 0
    for start, end in spans:
        if _tag_name(fragment[start:end]) not in _REWRITTEN:
            continue
        if not rewriter.skip:
            out.append(fragment[last:start])
        rewriter.out = out
        rewriter.feed(fragment[start:end])
        last = end
    if not rewriter.skip:
        out.append(fragment[last:])
    rewriter.close()
    return "".join(out)


def sanitize_html(document: str, mode: RemoteContent = "block") -> str:
    """``document`` as safe HTML for mail: nothing runs, nothing remote loads
    under ``block``, no tracker loads under ``allow``. Always a whole document
    (``<html><body>…</body></html>``) so the footer goes inside its body."""
    if mode not in REMOTE_CONTENT_MODES:
        mode = "block"
    fragment = _cleaner(mode, False).clean(document)
    if any(f"<{tag}" in fragment for tag in _REWRITTEN):
        fragment = _rewrite(fragment, mode)
        fragment = _cleaner(mode, True).clean(fragment)
    # else: no image or media tag, so nothing pass 3 would remove (pass 1 already
    # dropped every other loading attribute for the mode).
    fragment = fragment.strip()
    return f"<html><body>\n{fragment}\n</body></html>\n"
