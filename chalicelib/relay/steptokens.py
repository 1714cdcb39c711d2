"""Signed next-step links (issue 11): ``GET /n/{token}`` counts a click and redirects.

A step token names one next step of one chat of one deployment, and (only when the
deployment attributes clicks) the reader whose copy carried it::

    base64url("n1|<deployment>|<chat id>|<step id>|<reader key or ->")
    + "." + base64url(HMAC-SHA256(K, payload))

``K`` is derived from the deployment secret for this purpose alone, so a step
token is never valid as a mute or control token, nor the other way round. The
token carries no URL: the redirect looks the target up from the event by step
id, so a token can only ever lead to a URL the integration set (no open
redirect). It carries no expiry either: a next step in an old mail still works
as long as the event lists that step.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from chalicelib.relay.tokens import purpose_key, seal, unseal

VERSION = "n1"
SEP = "|"
NO_READER = "-"
MAX_TOKEN_LENGTH = 400


@dataclass(frozen=True)
class StepClaims:
    deployment: str
    chat_id: str
    step_id: str
    reader: str | None  # a participant key, only when clicks are attributed


def _key(secret: bytes) -> bytes:
    return purpose_key(secret, b"muster/next-step-token/v1", "step")


def sign_step(secret: bytes, *, deployment: str, chat_id: str, step_id: str, reader: str | None = None) -> str:
    fields = (VERSION, deployment, chat_id, step_id, reader or NO_READER)
    return seal(_key(secret), fields, what="step", sep=SEP)


def read_step(secret: bytes, token: str, *, deployment: str) -> StepClaims | None:
    """The claims of a genuine token of this deployment; None for anything else."""
    fields = unseal(_key(secret), token, max_length=MAX_TOKEN_LENGTH, sep=SEP)
    if fields is None or len(fields) != 5:
        return None
    version, dep, chat_id, step_id, reader = fields
    if version != VERSION or not hmac.compare_digest(dep.encode(), deployment.encode()):
        return None
    return StepClaims(dep, chat_id, step_id, None if reader == NO_READER else reader)
