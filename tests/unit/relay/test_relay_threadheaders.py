"""Per-reader threading headers (R10): what each reader's copy cites."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

from chalicelib.relay.threadheaders import MAX_REFERENCES, header_block, reader_headers, ses_id_domain

RELAY = "relay.example.org"


def ses(n: int) -> str:
    return f"<0100018c{n:04d}-abcd@email.amazonses.com>"


def m(message_id: str) -> str:
    return f"<{message_id}@{RELAY}>"


def headers(own: str, ancestors: list[str], held: dict[str, str]) -> tuple[str | None, list[str]]:
    return reader_headers(own=own, ancestors=ancestors, reader_ids=held, relay_domain=RELAY)


def test_a_root_copy_cites_only_its_own_muster_id() -> None:
    assert headers("aa01", [], {}) == (None, [m("aa01")])


def test_a_reply_cites_the_copy_of_the_parent_this_reader_holds() -> None:
    irt, refs = headers("aa02", ["aa01"], {"aa01": ses(1)})
    assert irt == ses(1)
    assert refs == [m("aa01"), ses(1), m("aa02")]


def test_the_author_of_the_parent_gets_their_own_client_id() -> None:
    irt, refs = headers("aa02", ["aa01"], {"aa01": "<CAF123@mail.gmail.com>"})
    assert irt == "<CAF123@mail.gmail.com>"
    assert "<CAF123@mail.gmail.com>" in refs


def test_a_reader_who_joined_after_the_parent_gets_the_muster_id() -> None:
    irt, refs = headers("aa03", ["aa01", "aa02"], {})
    assert irt == m("aa02")
    assert refs == [m("aa01"), m("aa02"), m("aa03")]


def test_a_parent_that_bounced_for_this_reader_falls_back_to_the_muster_id() -> None:
    # The reader holds the grandparent but their copy of the parent bounced (no SES id).
    irt, refs = headers("aa03", ["aa01", "aa02"], {"aa01": ses(1)})
    assert irt == m("aa02")
    assert refs == [m("aa01"), ses(1), m("aa02"), m("aa03")]


def test_a_reply_citing_a_kickoff_starts_a_thread_of_its_own() -> None:
    # Kickoffs are personal: a reply to one has no parent others hold.
    assert headers("aa04", [], {"kickoff-x": ses(9)}) == (None, [m("aa04")])


def test_a_chain_longer_than_the_bound_keeps_the_root_and_the_newest() -> None:
    ancestors = [f"{n:04x}" for n in range(40)]
    held = {a: ses(i) for i, a in enumerate(ancestors)}
    irt, refs = headers("ffff", ancestors, held)
    assert len(refs) == MAX_REFERENCES
    assert refs[0] == m(ancestors[0])
    assert refs[-3:] == [m(ancestors[-1]), ses(39), m("ffff")]
    assert irt == ses(39)


def test_an_unsafe_held_id_is_never_emitted() -> None:
    irt, refs = headers("aa02", ["aa01"], {"aa01": "<x@y>\r\nBcc: victim@example.com"})
    assert irt == m("aa01")
    assert all("\r" not in r and "Bcc" not in r for r in refs)


def test_the_header_block_parses_back_and_is_folded() -> None:
    irt, refs = headers("ffff", [f"{n:04x}" for n in range(30)], {})
    block = header_block(irt, refs)
    assert all(len(line) <= 998 for line in block.split(b"\r\n"))
    msg = BytesParser(policy=policy.default).parsebytes(block + b"Subject: x\r\n\r\nbody\r\n")
    assert msg["In-Reply-To"] == irt
    assert str(msg["References"]).split() == refs


def test_ses_id_domains() -> None:
    assert ses_id_domain("us-east-1") == "email.amazonses.com"
    assert ses_id_domain("eu-west-1") == "eu-west-1.amazonses.com"
