"""Audit findings 10 and 11.

10. The one-click mute accepts ``multipart/form-data``, the encoding RFC 8058 §3.1
    says a mailbox provider's POST SHOULD use, as well as
    ``application/x-www-form-urlencoded``; it acts only on a valid token AND a form
    field ``List-Unsubscribe=One-Click``.
11. Outside the local stages, ``Settings.from_env`` refuses to start without a real
    secret (at least 32 bytes, not the dev secret).
"""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.settings import DEV_SECRET, MIN_SECRET_BYTES, ConfigurationError, Settings
from tests.integration.test_relay import mail
from tests.integration.world import World

ONE_CLICK = "List-Unsubscribe=One-Click"
URLENCODED = "application/x-www-form-urlencoded"


def addr(n: int) -> str:
    return f"ann{n}@people.example"


def multipart(
    fields: dict[str, str], *, boundary: str = "----MusterBoundary7MA4YWxk", newline: str = "\r\n"
) -> tuple[str, bytes]:
    """A multipart/form-data body as browsers and mailbox providers send it."""
    lines: list[str] = []
    for name, value in fields.items():
        lines += [f"--{boundary}", f'Content-Disposition: form-data; name="{name}"', "", value]
    lines += [f"--{boundary}--", ""]
    return f"multipart/form-data; boundary={boundary}", newline.join(lines).encode()


@pytest.fixture
def chat(world: World) -> dict[str, Any]:
    return world.open_chat(["registered"] * 3)


def post_message(world: World, chat: dict[str, Any], sender: int, subject: str) -> list[str]:
    """ann<sender> writes to the chat; returns who got a copy."""
    before = len(world.sent())
    world.receive(mail(addr(sender), chat["address"], subject), sender=addr(sender), to=[chat["address"]])
    world.drain()
    return [s.to for s in world.sent()[before:]]


@pytest.fixture
def mute_path(world: World, chat: dict[str, Any]) -> str:
    """The one-click path from ann1's copy's List-Unsubscribe header."""
    post_message(world, chat, 0, "First")
    (copy,) = [s for s in world.inbox(addr(1)) if "First" in str(s.message["Subject"])]
    assert copy.message["List-Unsubscribe-Post"] == ONE_CLICK
    url = str(copy.message["List-Unsubscribe"]).strip().strip("<>")
    assert url.startswith(world.settings.public_url + "/mute/")
    return url.removeprefix(world.settings.public_url)


def anyone_muted(world: World) -> bool:
    return any(p["muted"] for p in world.chat("e1", "t1")["participants"])


def post(world: World, path: str, content_type: str | None, body: bytes) -> Any:
    headers = {"Content-Type": content_type} if content_type else {}
    return world.client.http.post(path, body=body, headers=headers)


# -- 10. one-click mute -------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\r\n", "\n"], ids=["crlf", "lf"])
def test_multipart_one_click_mutes_and_stops_copies(world: World, chat: dict, mute_path: str, newline: str) -> None:
    content_type, body = multipart({"List-Unsubscribe": "One-Click"}, newline=newline)
    response = post(world, mute_path, content_type, body)
    assert response.status_code == 200, response.body
    assert b"Muted" in response.body
    assert anyone_muted(world)

    got = post_message(world, chat, 2, "Second")
    assert addr(1) not in got
    assert addr(0) in got  # the chat still works for everyone else


def test_multipart_with_other_fields_and_quoted_boundary(world: World, mute_path: str) -> None:
    boundary = "a'b()+_,-./:=? z"  # RFC 2046 allows these; it must be quoted
    _, body = multipart({"other": "x", "List-Unsubscribe": "One-Click"}, boundary=boundary)
    response = post(world, mute_path, f'multipart/form-data; charset=utf-8; boundary="{boundary}"', body)
    assert response.status_code == 200, response.body
    assert anyone_muted(world)


def test_urlencoded_one_click_mutes(world: World, chat: dict, mute_path: str) -> None:
    response = post(world, mute_path, URLENCODED, ONE_CLICK.encode())
    assert response.status_code == 200, response.body
    assert anyone_muted(world)
    assert addr(1) not in post_message(world, chat, 2, "Second")


@pytest.mark.parametrize(
    "fields",
    [{}, {"other": "One-Click"}, {"List-Unsubscribe": "Nope"}, {"note": ONE_CLICK}],
    ids=["empty", "other-field", "wrong-value", "field-in-a-value"],
)
def test_multipart_without_the_field_is_400_and_mutes_nothing(
    world: World, chat: dict, mute_path: str, fields: dict[str, str]
) -> None:
    content_type, body = multipart(fields)
    response = post(world, mute_path, content_type, body)
    assert response.status_code == 400
    assert not anyone_muted(world)
    assert addr(1) in post_message(world, chat, 2, "Second")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", multipart({"List-Unsubscribe": "One-Click"})[1]),  # no boundary
        ("multipart/form-data; boundary=elsewhere", multipart({"List-Unsubscribe": "One-Click"})[1]),
        ("multipart/mixed; boundary=----MusterBoundary7MA4YWxk", multipart({"List-Unsubscribe": "One-Click"})[1]),
        ("text/plain", ONE_CLICK.encode()),
        (URLENCODED, b"x=List-Unsubscribe=One-Click"),
        (URLENCODED, b""),
        ("multipart/form-data; boundary=x\r\nX-Injected: 1", b"--x\r\n\r\n--x--\r\n"),
    ],
    ids=[
        "no-boundary",
        "wrong-boundary",
        "not-form-data",
        "text-plain",
        "urlencoded-in-a-value",
        "empty",
        "header-injection",
    ],
)
def test_malformed_forms_are_400_and_mute_nothing(world: World, mute_path: str, content_type: str, body: bytes) -> None:
    response = post(world, mute_path, content_type, body)
    assert response.status_code in (400, 415)
    assert not anyone_muted(world)


def test_oversized_body_is_400_and_mutes_nothing(world: World, mute_path: str) -> None:
    content_type, body = multipart({"padding": "x" * 9000, "List-Unsubscribe": "One-Click"})
    response = post(world, mute_path, content_type, body)
    assert response.status_code == 400
    assert not anyone_muted(world)
    big = ONE_CLICK.encode() + b"&pad=" + b"x" * 9000
    assert post(world, mute_path, URLENCODED, big).status_code == 400
    assert not anyone_muted(world)


@pytest.mark.parametrize("mangle", ["tamper", "truncate"])
def test_bad_token_with_multipart_is_403_and_mutes_nothing(world: World, mute_path: str, mangle: str) -> None:
    prefix, token = mute_path.rsplit("/", 1)
    bad = token[:-2] + ("AA" if not token.endswith("AA") else "BB") if mangle == "tamper" else token[:20]
    content_type, body = multipart({"List-Unsubscribe": "One-Click"})
    response = post(world, f"{prefix}/{bad}", content_type, body)
    assert response.status_code == 403
    assert not anyone_muted(world)


def test_get_only_confirms(world: World, mute_path: str) -> None:
    response = world.client.http.get(mute_path)
    assert response.status_code == 200
    assert b'name="List-Unsubscribe" value="One-Click"' in response.body
    assert not anyone_muted(world)


# -- 11. the secret -------------------------------------------------------------------

REAL = "k" * MIN_SECRET_BYTES


def env(**values: str) -> dict[str, str]:
    return {"AWS_REGION": "us-east-1", **values}


def test_prod_without_secret_refuses_to_start() -> None:
    with pytest.raises(ConfigurationError, match="MUSTER_SECRET"):
        Settings.from_env(env(MUSTER_STAGE="prod"))
    with pytest.raises(ConfigurationError, match="MUSTER_SECRET"):
        Settings.from_env(env(MUSTER_STAGE="prod", MUSTER_SECRET="   "))


def test_prod_with_the_dev_secret_refuses_to_start() -> None:
    with pytest.raises(ConfigurationError, match="MUSTER_SECRET"):
        Settings.from_env(env(MUSTER_STAGE="prod", MUSTER_SECRET=DEV_SECRET))


def test_prod_with_a_short_secret_refuses_to_start() -> None:
    with pytest.raises(ConfigurationError, match="MUSTER_SECRET"):
        Settings.from_env(env(MUSTER_STAGE="prod", MUSTER_SECRET="k" * (MIN_SECRET_BYTES - 1)))


def test_prod_with_a_long_secret_starts() -> None:
    settings = Settings.from_env(env(MUSTER_STAGE="prod", MUSTER_SECRET=REAL))
    assert settings.secret == REAL.encode()
    long = "é" * 16  # 32 bytes in UTF-8: the length is counted in bytes
    assert Settings.from_env(env(MUSTER_STAGE="staging", MUSTER_SECRET=long)).secret == long.encode()


def test_dev_without_secret_keeps_the_dev_default() -> None:
    assert Settings.from_env(env(MUSTER_STAGE="dev")).secret == DEV_SECRET.encode()
    assert Settings.from_env(env()).secret == DEV_SECRET.encode()  # no stage: dev


def test_a_deployed_function_refuses_a_weak_or_unresolved_secret_in_any_stage() -> None:
    lambda_env = env(AWS_LAMBDA_FUNCTION_NAME="muster-dev-api_handler")
    for stage in ("dev", "test", "prod"):
        with pytest.raises(ConfigurationError, match="MUSTER_SECRET"):
            Settings.from_env({**lambda_env, "MUSTER_STAGE": stage})
        with pytest.raises(ConfigurationError, match="MUSTER_SECRET"):
            Settings.from_env({**lambda_env, "MUSTER_STAGE": stage, "MUSTER_SECRET": DEV_SECRET})
    # chalice deploy (no merged template) would hand the function the placeholder as is.
    unresolved = "{{resolve:secretsmanager:<RelaySecret>:SecretString}}"
    with pytest.raises(ConfigurationError, match="MUSTER_SECRET"):
        Settings.from_env({**lambda_env, "MUSTER_STAGE": "prod", "MUSTER_SECRET": unresolved})
    assert Settings.from_env({**lambda_env, "MUSTER_STAGE": "prod", "MUSTER_SECRET": REAL}).secret == REAL.encode()


def test_prod_stage_config_reads_without_a_real_secret_offline() -> None:
    """The packaged template replaces config.json's prod placeholder with the
    stack's generated secret; offline tools (the CLI, packaging checks) can still
    read the prod stage's names."""
    from pathlib import Path

    from chalicelib.cli import stage_environment

    prod = stage_environment("prod", Path(__file__).resolve().parents[2] / ".chalice" / "config.json")
    assert prod["MUSTER_SECRET"].startswith("{{resolve:secretsmanager:")
    assert Settings.from_env({**prod, "AWS_REGION": "us-east-1"}).table_name == "muster-prod"


def test_the_stack_generates_a_long_enough_secret_for_every_function() -> None:
    import json
    from pathlib import Path

    template = json.loads((Path(__file__).resolve().parents[2] / "infra" / "template.json").read_text())
    generated = template["Resources"]["RelaySecret"]["Properties"]["GenerateSecretString"]
    assert generated["PasswordLength"] >= MIN_SECRET_BYTES and generated.get("ExcludePunctuation")  # ASCII: 1 byte each
    functions = [r for r in template["Resources"].values() if "Environment" in r.get("Properties", {})]
    assert functions
    for resource in functions:
        secret = resource["Properties"]["Environment"]["Variables"]["MUSTER_SECRET"]
        assert secret == {"Fn::Sub": "{{resolve:secretsmanager:${RelaySecret}:SecretString}}"}
