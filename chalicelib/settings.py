"""One typed settings object, read once per container from the environment.

`.chalice/config.json` supplies the values per stage; the merged CloudFormation
template supplies the resource names in a deployed stack.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _optional_float(value: str) -> float | None:
    return None if value.strip().lower() in {"", "none", "null"} else float(value)


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
            scheduler_role_arn=e.get(
                "MUSTER_SCHEDULER_ROLE_ARN", f"arn:aws:iam::{account}:role/{prefix}-scheduler"
            ),
            open_chat_arn=e.get("MUSTER_OPEN_CHAT_ARN", fn_arn("open_chat")),
            close_chat_arn=e.get("MUSTER_CLOSE_CHAT_ARN", fn_arn("close_chat")),
            public_url=e.get("MUSTER_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/"),
            configuration_set=e.get("MUSTER_CONFIGURATION_SET", ""),
            secret=e.get("MUSTER_SECRET", "dev-only-secret-change-me").encode(),
            chat_enabled=_bool(e.get("MUSTER_CHAT_ENABLED", "true")),
            open_before_hours=float(e.get("MUSTER_OPEN_BEFORE_HOURS", "48")),
            close_after_hours=_optional_float(e.get("MUSTER_CLOSE_AFTER_HOURS", "168")),
            max_message_bytes=int(e.get("MUSTER_MAX_MESSAGE_BYTES", str(10 * 1024 * 1024))),
            sender_messages_per_hour=int(e.get("MUSTER_SENDER_MESSAGES_PER_HOUR", "30")),
            chat_copies_per_hour=int(e.get("MUSTER_CHAT_COPIES_PER_HOUR", "20000")),
            # 499 recipients + the batch's claim fill exactly 20 BatchWriteItem calls.
            batch_size=int(e.get("MUSTER_BATCH_SIZE", "499")),
            send_concurrency=int(e.get("MUSTER_SEND_CONCURRENCY", "8")),
        )


@cache
def get_settings() -> Settings:
    return Settings.from_env()
