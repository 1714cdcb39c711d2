"""One typed settings object, read once per container from the environment.

`.chalice/config.json` supplies the values per stage; the merged CloudFormation
template supplies the resource names and the secret in a deployed stack.

The secret (``MUSTER_SECRET``) keys every chat id, relay address, mute token,
attachment download link and address hash: whoever knows it can forge them all. Only the local stages (``dev``:
the twin and the Chalice test client; ``test``: the test suite) may fall back to
the public dev secret. Any other stage, and any deployed function whatever its
stage, refuses to start without a secret of at least 32 bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

from chalicelib.relay.context import RemoteContent

DEV_SECRET = "dev-only-secret-change-me"  # noqa: S105 -- public on purpose: local stages only
LOCAL_STAGES = frozenset({"dev", "test"})
MIN_SECRET_BYTES = 32


class ConfigurationError(RuntimeError):
    """The environment cannot run this stage safely; the container must not start."""


def _secret(e: os._Environ[str] | dict[str, str], stage: str) -> bytes:
    raw = e.get("MUSTER_SECRET", "")
    # A real Lambda container (not the twin, not the Chalice test client).
    deployed = bool(e.get("AWS_LAMBDA_FUNCTION_NAME"))
    if stage in LOCAL_STAGES and not deployed:
        return (raw or DEV_SECRET).encode()
    where = f"stage {stage!r}" + (" (deployed function)" if deployed else "")
    if not raw.strip():
        raise ConfigurationError(
            f"MUSTER_SECRET is not set: {where} needs a secret of at least {MIN_SECRET_BYTES} bytes "
            "(the deployed stack supplies it from Secrets Manager; see README, Configuration)"
        )
    if raw == DEV_SECRET:
        raise ConfigurationError(f"MUSTER_SECRET is the public dev secret: {where} needs its own secret")
    if deployed and raw.startswith("{{resolve:"):
        raise ConfigurationError(
            f"MUSTER_SECRET is an unresolved CloudFormation reference: deploy {where} with `make deploy`"
        )
    secret = raw.encode()
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigurationError(f"MUSTER_SECRET is {len(secret)} bytes: {where} needs at least {MIN_SECRET_BYTES}")
    return secret


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _optional_float(value: str) -> float | None:
    return None if value.strip().lower() in {"", "none", "null"} else float(value)


def _non_negative_int(value: str, name: str) -> int:
    number = int(value.strip() or "0")
    if number < 0:
        raise ConfigurationError(f"{name} must be 0 or more, not {number}")
    return number


def _remote_content(value: str) -> RemoteContent:
    mode = value.strip().lower() or "block"
    if mode == "block":
        return "block"
    if mode == "allow":
        return "allow"
    raise ConfigurationError(f"MUSTER_REMOTE_CONTENT must be 'block' or 'allow', not {value!r}")


def _positive_float(value: str, name: str) -> float:
    number = float(value.strip())
    if not number > 0 or number == float("inf"):
        raise ConfigurationError(f"{name} must be a number above 0, not {value.strip()!r}")
    return number


def _hour(value: str) -> int:
    hour = int(value.strip())
    if not 0 <= hour <= 23:
        raise ConfigurationError(f"MUSTER_DIGEST_HOUR must be an hour of the day (0-23), not {hour}")
    return hour


@dataclass(frozen=True)
class Settings:
    stage: str
    region: str
    relay_domain: str
    table_name: str
    idempotency_table_name: str
    mail_bucket: str
    delivery_queue: str
    schedule_group: str
    scheduler_role_arn: str
    open_chat_arn: str
    close_chat_arn: str
    public_url: str
    configuration_set: str
    secret: bytes
    chat_enabled: bool
    open_before_hours: float
    close_after_hours: float | None
    max_message_bytes: int
    sender_messages_per_hour: int
    chat_copies_per_hour: int
    batch_size: int
    send_concurrency: int
    max_send_rate: float | None  # None: ask SES (GetAccount) for the account's rate
    send_rate_fallback: float
    digest_above: int = 200  # chats with more recipients default to daily digests; 0: never
    digest_hour: int = 18  # local hour (the chat's zone) from which each day's digest goes
    hold_hours: int = 72  # a held message not decided in this time is declined (R15)
    report_threshold: int = 3  # distinct reporters after which an author's posts are held
    # Remote images in relayed HTML: "block" shows a placeholder with a link, "allow"
    # loads them; tracking pixels are dropped either way (relay/sanitize.py).
    remote_content: RemoteContent = "block"

    # Bounce scoring (GNU Mailman's model): a soft bounce adds soft_bounce_score,
    # the address is suppressed at bounce_score_limit, and a score resets after
    # bounce_decay_days without bounces. Hard bounces and complaints suppress at once.
    bounce_score_limit: float = 5.0
    soft_bounce_score: float = 0.5
    bounce_decay_days: float = 7.0
    # Attachments may total this many bytes inline in each copy; above it the
    # largest are stored once and each copy carries a signed link instead.
    attachment_link_above: int = 5 * 1024 * 1024
    # Next-step clicks (issue 11) are counted per chat and link; only when this is
    # on do the links name the reader (their signup id reaches NextStepClicked).
    attribute_clicks: bool = False
    # SMS (issue 12): End User Messaging SMS. The origination identity is the
    # deployment's number (or pool) and the configuration set routes delivery
    # events to SNS; the endpoint is empty in AWS (the twin points it at itself).
    sms_origination_identity: str = ""
    sms_configuration_set: str = ""
    sms_endpoint_url: str = ""
    sms_max_segments: int = 3
    sms_price_per_segment: float = 0.00581  # USD, US 10DLC base price; carrier fees come on top
    organization_name: str = "Muster"
    # Integration events out (issue 11): the EventBridge bus (name or ARN).
    event_bus: str = "default"

    @property
    def deployment(self) -> str:
        """What signed controls are bound to: this stage of this relay domain."""
        return f"{self.stage}:{self.relay_domain}"

    @property
    def prefix(self) -> str:
        return f"muster-{self.stage}"

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        stage = e.get("MUSTER_STAGE", "dev")
        region = e.get("AWS_REGION") or e.get("AWS_DEFAULT_REGION") or "us-east-1"
        account = e.get("MUSTER_ACCOUNT_ID", "123456789012")
        prefix = f"muster-{stage}"

        def fn_arn(name: str) -> str:
            return f"arn:aws:lambda:{region}:{account}:function:muster-{stage}-{name}"

        return cls(
            stage=stage,
            region=region,
            relay_domain=e.get("MUSTER_RELAY_DOMAIN", "muster.test").lower(),
            table_name=e.get("MUSTER_TABLE", prefix),
            idempotency_table_name=e.get("MUSTER_IDEMPOTENCY_TABLE", f"{prefix}-idempotency"),
            mail_bucket=e.get("MUSTER_MAIL_BUCKET", f"{prefix}-mail-{account}"),
            delivery_queue=e.get("MUSTER_DELIVERY_QUEUE", f"{prefix}-delivery"),
            schedule_group=e.get("MUSTER_SCHEDULE_GROUP", prefix),
            scheduler_role_arn=e.get("MUSTER_SCHEDULER_ROLE_ARN", f"arn:aws:iam::{account}:role/{prefix}-scheduler"),
            open_chat_arn=e.get("MUSTER_OPEN_CHAT_ARN", fn_arn("open_chat")),
            close_chat_arn=e.get("MUSTER_CLOSE_CHAT_ARN", fn_arn("close_chat")),
            public_url=e.get("MUSTER_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/"),
            configuration_set=e.get("MUSTER_CONFIGURATION_SET", ""),
            secret=_secret(e, stage),
            chat_enabled=_bool(e.get("MUSTER_CHAT_ENABLED", "true")),
            open_before_hours=float(e.get("MUSTER_OPEN_BEFORE_HOURS", "48")),
            close_after_hours=_optional_float(e.get("MUSTER_CLOSE_AFTER_HOURS", "168")),
            max_message_bytes=int(e.get("MUSTER_MAX_MESSAGE_BYTES", str(10 * 1024 * 1024))),
            sender_messages_per_hour=int(e.get("MUSTER_SENDER_MESSAGES_PER_HOUR", "30")),
            chat_copies_per_hour=int(e.get("MUSTER_CHAT_COPIES_PER_HOUR", "20000")),
            # 100 copies at SES's starting 14/s take ~7 s: well inside the 60 s
            # timeout; a slower account continues the rest in a new batch.
            batch_size=int(e.get("MUSTER_BATCH_SIZE", "100")),
            send_concurrency=int(e.get("MUSTER_SEND_CONCURRENCY", "8")),
            max_send_rate=_optional_float(e.get("MUSTER_MAX_SEND_RATE", "")),
            # When SES cannot be asked (no ses:GetAccount): the sandbox's rate.
            send_rate_fallback=float(e.get("MUSTER_SEND_RATE_FALLBACK", "1")),
            digest_above=_non_negative_int(e.get("MUSTER_DIGEST_ABOVE", "200"), "MUSTER_DIGEST_ABOVE"),
            digest_hour=_hour(e.get("MUSTER_DIGEST_HOUR", "18")),
            hold_hours=max(1, _non_negative_int(e.get("MUSTER_HOLD_HOURS", "72"), "MUSTER_HOLD_HOURS")),
            report_threshold=max(
                1, _non_negative_int(e.get("MUSTER_REPORT_THRESHOLD", "3"), "MUSTER_REPORT_THRESHOLD")
            ),
            remote_content=_remote_content(e.get("MUSTER_REMOTE_CONTENT", "block")),
            bounce_score_limit=_positive_float(e.get("MUSTER_BOUNCE_SCORE_LIMIT", "5"), "MUSTER_BOUNCE_SCORE_LIMIT"),
            soft_bounce_score=_positive_float(e.get("MUSTER_SOFT_BOUNCE_SCORE", "0.5"), "MUSTER_SOFT_BOUNCE_SCORE"),
            bounce_decay_days=_positive_float(e.get("MUSTER_BOUNCE_DECAY_DAYS", "7"), "MUSTER_BOUNCE_DECAY_DAYS"),
            attachment_link_above=_non_negative_int(
                e.get("MUSTER_ATTACHMENT_LINK_ABOVE", str(5 * 1024 * 1024)), "MUSTER_ATTACHMENT_LINK_ABOVE"
            ),
            attribute_clicks=_bool(e.get("MUSTER_ATTRIBUTE_CLICKS", "false")),
            sms_origination_identity=e.get("MUSTER_SMS_ORIGINATION_IDENTITY", ""),
            sms_configuration_set=e.get("MUSTER_SMS_CONFIGURATION_SET", ""),
            sms_endpoint_url=e.get("MUSTER_SMS_ENDPOINT_URL", ""),
            sms_max_segments=max(
                1, _non_negative_int(e.get("MUSTER_SMS_MAX_SEGMENTS", "3"), "MUSTER_SMS_MAX_SEGMENTS")
            ),
            sms_price_per_segment=float(e.get("MUSTER_SMS_PRICE_PER_SEGMENT", "0.00581")),
            organization_name=e.get("MUSTER_ORGANIZATION_NAME", "Muster"),
            event_bus=e.get("MUSTER_EVENT_BUS", "").strip() or "default",
        )


@cache
def get_settings() -> Settings:
    return Settings.from_env()
