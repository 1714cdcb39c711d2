"""The mute-URL placeholders and the footers that carry them (R11).

The rendered message is shared by every recipient; each copy differs only in
its mute URL. The renderer writes a fixed placeholder where the URL goes, and
:mod:`chalicelib.relay.template` splices each recipient's URL in. So that no
sender can plant a placeholder anywhere else, :func:`strip_placeholders`
removes the placeholder stem from every input that reaches the message (names,
list names, subjects, filenames, bodies), and the template only splices at the
two footer positions written here (see its docstring for the exact rule).
"""

from __future__ import annotations

import html

MUTE_URL_PLACEHOLDER_TEXT = "MUSTERMUTEURLTEXTPLACEHOLDERXXXX"
MUTE_URL_PLACEHOLDER_HTML = "MUSTERMUTEURLHTMLPLACEHOLDERXXXX"
PLACEHOLDER_STEM = "MUSTERMUTEURL"
# Per-recipient control lines (R15): a report link for attendees, the organizer
# controls for organizers. Alone on the line right after the footer's mute slot.
CONTROLS_PLACEHOLDER_TEXT = "MUSTERMUTEURLCTRLTPLACEHOLDERXXXX"
CONTROLS_PLACEHOLDER_HTML = "MUSTERMUTEURLCTRLHPLACEHOLDERXXXX"
# The text that stands right before each slot (the template checks for it).
# The link opens the reader's chat settings: mute or unmute, daily digest or
# every message, leave (chalicelib/blueprints/mute.py).
TEXT_SLOT_LEAD = "Mute, leave or get a daily digest:\n"
HTML_LINK_TEXT = "Mute, leave or get a daily digest"
HTML_SLOT_LEAD = '<a href="'


def strip_placeholders(text: str) -> str:
    """``text`` without any placeholder or placeholder stem, even nested ones.

    ``"MUSTERMUTE" + STEM + "URL..."`` rebuilds the stem once the inner one is
    removed, so removal repeats; a stack makes even deep nesting linear.
    """
    if PLACEHOLDER_STEM not in text:
        return text
    for placeholder in (
        MUTE_URL_PLACEHOLDER_TEXT,
        MUTE_URL_PLACEHOLDER_HTML,
        CONTROLS_PLACEHOLDER_TEXT,
        CONTROLS_PLACEHOLDER_HTML,
    ):
        text = text.replace(placeholder, "")
    text = text.replace(PLACEHOLDER_STEM, "")
    if PLACEHOLDER_STEM not in text:
        return text
    stem = PLACEHOLDER_STEM
    out: list[str] = []
    tail = len(stem)
    for ch in text:
        out.append(ch)
        if ch == stem[-1] and len(out) >= tail and "".join(out[-tail:]) == stem:
            del out[-tail:]
    return "".join(out)


def footer_text(author_name: str, list_name: str) -> str:
    """The plain-text footer; the mute placeholder is alone on the last line."""
    author = strip_placeholders(author_name)
    chat = strip_placeholders(list_name)
    return (
        "\n-- \n"
        f'Sent by {author} to the chat "{chat}" via Muster.\n'
        "Email addresses are hidden: people appear by first name and last initial.\n"
        "Replying sends your message to everyone in this chat.\n"
        f"{TEXT_SLOT_LEAD}"
        f"{MUTE_URL_PLACEHOLDER_TEXT}\n"
        f"{CONTROLS_PLACEHOLDER_TEXT}\n"
    )


def footer_html(author_name: str, list_name: str) -> str:
    author = html.escape(strip_placeholders(author_name), quote=True)
    chat = html.escape(strip_placeholders(list_name), quote=True)
    return (
        '\n<div style="margin-top:16px;color:#666;font-size:12px">\n<hr>\n'
        f"Sent by {author} to the chat &quot;{chat}&quot; via Muster.<br>\n"
        "Email addresses are hidden: people appear by first name<br>\n"
        "and last initial. Replying goes to everyone in this chat.<br>\n"
        f'{HTML_SLOT_LEAD}{MUTE_URL_PLACEHOLDER_HTML}">{HTML_LINK_TEXT}</a><br>\n'
        f"{CONTROLS_PLACEHOLDER_HTML}\n"
        "</div>\n"
    )


def insert_html_footer(document: str, footer: str) -> str:
    index = document.lower().rfind("</body>")
    if index < 0:
        return document + footer
    return document[:index] + footer + document[index:]
