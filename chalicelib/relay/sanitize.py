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
2. **Rewrite** (:mod:`chalicelib.relay.remote`: the stdlib tokenizer over the
   image and media tags of pass 1's output, which html5ever serialized: quoted
   attributes, escaped text, no raw-text elements, so it reads back exactly as
   nh3 meant it). Trackers are dropped in
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

import re
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

from chalicelib.relay.context import REMOTE_CONTENT_MODES, RemoteContent
from chalicelib.relay.remote import (
    MEDIA_TAGS,
    REWRITTEN,
    TRACKER_HOSTS,
    declarations,
    is_remote,
    is_tracker_url,
    rewrite,
    srcset_urls,
    url_scheme,
)

__all__ = ["STYLE_PROPERTIES", "TRACKER_HOSTS", "clean_style", "is_tracker_url", "sanitize_html"]

STYLE_PROPERTIES = frozenset(
    {
        "color",
        "background",
        "background-color",
        "opacity",
        "visibility",
        "display",
        "font",
        "font-family",
        "font-size",
        "font-style",
        "font-weight",
        "font-variant",
        "line-height",
        "letter-spacing",
        "word-spacing",
        "white-space",
        "word-break",
        "word-wrap",
        "text-align",
        "text-decoration",
        "text-indent",
        "text-transform",
        "vertical-align",
        "direction",
        "margin",
        "margin-top",
        "margin-right",
        "margin-bottom",
        "margin-left",
        "padding",
        "padding-top",
        "padding-right",
        "padding-bottom",
        "padding-left",
        "border",
        "border-top",
        "border-right",
        "border-bottom",
        "border-left",
        "border-color",
        "border-style",
        "border-width",
        "border-radius",
        "border-collapse",
        "border-spacing",
        "width",
        "height",
        "min-width",
        "max-width",
        "min-height",
        "max-height",
        "float",
        "clear",
        "overflow",
        "table-layout",
        "list-style-type",
        "caption-side",
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
    "a",
    "abbr",
    "acronym",
    "article",
    "aside",
    "b",
    "bdi",
    "bdo",
    "big",
    "blockquote",
    "br",
    "caption",
    "center",
    "cite",
    "code",
    "col",
    "colgroup",
    "dd",
    "del",
    "details",
    "dfn",
    "div",
    "dl",
    "dt",
    "em",
    "figcaption",
    "figure",
    "font",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hgroup",
    "hr",
    "i",
    "img",
    "ins",
    "kbd",
    "li",
    "mark",
    "nav",
    "ol",
    "p",
    "pre",
    "q",
    "rp",
    "rt",
    "rtc",
    "ruby",
    "s",
    "samp",
    "small",
    "span",
    "strike",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "tt",
    "u",
    "ul",
    "var",
    "wbr",
}
_DROP_WITH_CONTENT = {"script", "style", "title", "noscript", "template", "iframe", "frame", "frameset",
                      "object", "embed", "applet", "svg", "math", "textarea", "select", "button",
                      "noembed", "noframes", "xmp", "head"}  # fmt: skip
_SCHEMES = {"http", "https", "mailto", "cid", "data"}
_RASTER_DATA = re.compile(r"^data:image/(?:png|gif|jpeg|jpg|webp|bmp);base64,[A-Za-z0-9+/=\s]*$", re.IGNORECASE)
_SCHEME_RE = re.compile(r"^([a-z][a-z0-9+.-]*):")
_URL_WS = str.maketrans("", "", "\t\n\r")
_C0_AND_SPACE = "".join(chr(c) for c in range(0x21))
_PLACEHOLDER_STYLE = "display:inline-block;border:1px dashed #999999;padding:2px 6px;color:#555555;font-size:12px"


# --- CSS ------------------------------------------------------------------------------


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
            urls = [u for u in srcset_urls(value) if is_remote(u) and not is_tracker_url(u)]
            if not urls or (final and mode == "block"):
                return None
            if len(urls) != len(srcset_urls(value)):
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

    tags = _BASE_TAGS if final else _BASE_TAGS | MEDIA_TAGS
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


def sanitize_html(document: str, mode: RemoteContent = "block") -> str:
    """``document`` as safe HTML for mail: nothing runs, nothing remote loads
    under ``block``, no tracker loads under ``allow``. Always a whole document
    (``<html><body>…</body></html>``) so the footer goes inside its body."""
    if mode not in REMOTE_CONTENT_MODES:
        mode = "block"
    fragment = _cleaner(mode, False).clean(document)
    if any(f"<{tag}" in fragment for tag in REWRITTEN):
        fragment = rewrite(fragment, mode)
        fragment = _cleaner(mode, True).clean(fragment)
    # else: no image or media tag, so nothing pass 3 would remove (pass 1 already
    # dropped every other loading attribute for the mode).
    fragment = fragment.strip()
    return f"<html><body>\n{fragment}\n</body></html>\n"
