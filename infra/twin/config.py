"""Where the twin listens and keeps its state; the environment the app sees.

Everything is overridable through environment variables so tests and benchmarks
can run a twin on free ports with a throw-away state directory:

``MUSTER_API_PORT`` (8000), ``MUSTER_SMTP_PORT`` (2525), ``MUSTER_AWS_PORT`` (5000),
``MUSTER_SES_PORT`` (5001: a second moto process that serves SES alone),
``MUSTER_MAILBOX_PORT`` (8025), ``MUSTER_TWIN_DIR`` (``.local``),
``MUSTER_TWIN_HOST`` (127.0.0.1).

How handlers run (see docs/local-twin.md, "Process model"):

``MUSTER_TWIN_WORKERS`` (4): worker processes, each a warm Lambda "container";
``MUSTER_TWIN_POLLERS`` (as many as workers): SQS pollers per event source mapping;
``MUSTER_TWIN_DUPLICATES`` (0): 1 delivers every SES receipt and SQS batch twice,
at the same time, to two workers (AWS's at-least-once delivery, made the rule);
``MUSTER_MOTO_SERVER`` (``oneloop``): the moto processes' HTTP server, one thread
(``infra.twin.oneloop``); ``werkzeug`` for werkzeug's threaded one, to compare.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RELAY_DOMAIN = "muster.test"
BOUNCE_DOMAIN = "bounce.muster.test"
REGION = "us-east-1"
ACCOUNT = "123456789012"
STAGE = "dev"
MAX_MESSAGE_BYTES = 40 * 1024 * 1024
INTEGRATION_QUEUE = "muster-dev-integration-bus"
INTEGRATION_RULE = "muster-dev-integration-events"
# Variables the twin owns: a developer's shell cannot point the app elsewhere.
RESERVED = frozenset(
    {
        "MUSTER_STAGE",
        "MUSTER_RELAY_DOMAIN",
        "MUSTER_PUBLIC_URL",
        "MUSTER_CLOCK_FILE",
        "MUSTER_TWIN_DIR",
        "MUSTER_TWIN_HOST",
        "MUSTER_API_PORT",
        "MUSTER_SMTP_PORT",
        "MUSTER_AWS_PORT",
        "MUSTER_SES_PORT",
        "MUSTER_MAILBOX_PORT",
        "MUSTER_TWIN_WORKERS",
        "MUSTER_TWIN_POLLERS",
        "MUSTER_TWIN_DUPLICATES",
    }
)


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "").strip()
    return int(value) if value else default


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class TwinConfig:
    host: str
    api_port: int
    smtp_port: int
    aws_port: int
    mailbox_port: int
    ses_port: int
    state_dir: Path
    workers: int = 4
    pollers: int = 4
    duplicates: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TwinConfig:
        e = os.environ if env is None else env
        state = Path(e.get("MUSTER_TWIN_DIR", "").strip() or ROOT / ".local")
        workers = max(1, _port(e, "MUSTER_TWIN_WORKERS", 4))
        return cls(
            host=e.get("MUSTER_TWIN_HOST", "127.0.0.1"),
            api_port=_port(e, "MUSTER_API_PORT", 8000),
            smtp_port=_port(e, "MUSTER_SMTP_PORT", 2525),
            aws_port=_port(e, "MUSTER_AWS_PORT", 5000),
            mailbox_port=_port(e, "MUSTER_MAILBOX_PORT", 8025),
            ses_port=_port(e, "MUSTER_SES_PORT", 5001),
            state_dir=state.resolve(),
            workers=workers,
            pollers=max(1, _port(e, "MUSTER_TWIN_POLLERS", workers)),
            duplicates=_flag(e, "MUSTER_TWIN_DUPLICATES"),
        )

    @property
    def aws_url(self) -> str:
        return f"http://{self.host}:{self.aws_port}"

    @property
    def ses_url(self) -> str:
        """SES (v1 and v2) has a moto process of its own: most of the twin's AWS
        calls are ``SendEmail``, and one moto process applies one request at a time."""
        return f"http://{self.host}:{self.ses_port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def mailbox_url(self) -> str:
        return f"http://{self.host}:{self.mailbox_port}"

    @property
    def outbox(self) -> Path:
        return self.state_dir / "outbox"

    @property
    def clock_file(self) -> Path:
        return self.state_dir / "clock"

    @property
    def api_key_file(self) -> Path:
        return self.state_dir / "api-key"

    @property
    def moto_log(self) -> Path:
        return self.state_dir / "moto.log"

    @property
    def ses_log(self) -> Path:
        return self.state_dir / "moto-ses.log"

    @property
    def outbox_log(self) -> Path:
        """One JSON line per copy written to the outbox (tests and the benchmark tail it)."""
        return self.state_dir / "outbox.jsonl"

    def app_environment(self) -> dict[str, str]:
        """The environment every handler (and the API) sees: the dev stage's
        variables from .chalice/config.json, pointed at the twin."""
        from chalicelib.cli import stage_environment

        env = stage_environment(STAGE, ROOT / ".chalice" / "config.json")
        env.update(
            AWS_ENDPOINT_URL=self.aws_url,
            # botocore's service-specific endpoints: SES goes to its own moto process.
            AWS_ENDPOINT_URL_SESV2=self.ses_url,
            AWS_ENDPOINT_URL_SES=self.ses_url,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - moto's dummy credentials
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
            MUSTER_STAGE=STAGE,
            MUSTER_RELAY_DOMAIN=RELAY_DOMAIN,
            MUSTER_PUBLIC_URL=self.api_url,
            MUSTER_CLOCK_FILE=str(self.clock_file),
            MUSTER_ACCOUNT_ID=ACCOUNT,
            # moto has no SES v2 GetAccount: the twin's "account" sends 200/s.
            MUSTER_MAX_SEND_RATE="200",
            # moto has no End User Messaging SMS: the twin serves it on the mailbox's port.
            MUSTER_SMS_ENDPOINT_URL=f"{self.mailbox_url}/sms-api",
            MUSTER_SMS_ORIGINATION_IDENTITY="+15550100000",
            POWERTOOLS_TRACE_DISABLED="1",
            POWERTOOLS_METRICS_NAMESPACE="Muster",
        )
        # Knobs a developer (or the benchmark) sets explicitly win over the stage's.
        for key, value in os.environ.items():
            if key.startswith(("MUSTER_", "POWERTOOLS_")) and key not in RESERVED:
                env[key] = value
        env.pop("AWS_PROFILE", None)
        return env
