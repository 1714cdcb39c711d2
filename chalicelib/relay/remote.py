"""What loads by itself in an HTML mail, what tracks its reader, and what a
reader sees instead (issue 14): pass 2 of :mod:`chalicelib.relay.sanitize`.

Its input is nh3's output (html5ever's serialization: text with ``<`` escaped,
attributes in double quotes, no comments and no raw-text elements), so the tags
are found by position and only image and media tags are read, with the stdlib
tokenizer. Trackers are dropped in every mode: remote images 1x1 or 0 in size,
hidden by their style, or from a host in :data:`TRACKER_HOSTS`. Under
``block`` every other remote image, video or audio becomes a placeholder
(``[image: alt, host] — open``) whose link the reader may follow deliberately.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

from chalicelib.relay.context import RemoteContent

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
_URL_WS = str.maketrans("", "", "\t\n\r")
_C0_AND_SPACE = "".join(chr(c) for c in range(0x21))
_SCHEME_RE = re.compile(r"^([a-z][a-z0-9+.-]*):")
MEDIA_TAGS = frozenset({"video", "audio", "source", "picture"})  # read here, never emitted
REWRITTEN = frozenset({"img", *MEDIA_TAGS})
_PLACEHOLDER_STYLE = "display:inline-block;border:1px dashed #999999;padding:2px 6px;color:#555555;font-size:12px"


# --- URLs ---------------------------------------------------------------------------


def _no_url_ws(url: str) -> str:
    return url.translate(_URL_WS) if "\t" in url or "\n" in url or "\r" in url else url


def url_scheme(url: str) -> str:
    """The scheme a browser would see ("" for a relative URL): tabs and newlines
    are ignored anywhere, C0 controls and spaces at the ends (WHATWG URL)."""
    cleaned = _no_url_ws(url).strip(_C0_AND_SPACE)
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
        (host == suffix or host.endswith("." + suffix)) and path.startswith(prefix) for suffix, prefix in TRACKER_HOSTS
    )


def srcset_urls(value: str) -> list[str]:
    return [c.split()[0] for c in value.split(",") if c.split()]


# --- what an open pixel looks like ------------------------------------------------------


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
        remote = [u for u in [src, *srcset_urls(attrs.get("srcset", ""))] if is_remote(u)]
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
        elif tag not in MEDIA_TAGS:
            self._emit_tag(tag, attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if self.skip:
            if tag == self.skip[-1]:
                self.skip.pop()
            return
        if tag not in MEDIA_TAGS and tag != "img":
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


def _tag_name(tag: str) -> str:
    name = tag[2:] if tag.startswith("</") else tag[1:]
    end = 0
    while end < len(name) and name[end].isalnum():
        end += 1
    return name[:end].lower()


def rewrite(fragment: str, mode: RemoteContent) -> str:
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
        if _tag_name(fragment[start:end]) not in REWRITTEN:
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
