"""Start every piece of the twin, print the banner, stop cleanly on Ctrl-C."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from infra.twin.config import RELAY_DOMAIN, ROOT, TwinConfig

log = logging.getLogger("twin")


def _check_ports(config: TwinConfig) -> None:
    for label, port in (
        ("MUSTER_AWS_PORT", config.aws_port),
        ("MUSTER_API_PORT", config.api_port),
        ("MUSTER_SMTP_PORT", config.smtp_port),
        ("MUSTER_MAILBOX_PORT", config.mailbox_port),
    ):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((config.host, port))
            except OSError as exc:
                raise SystemExit(
                    f"twin: port {port} on {config.host} is taken ({exc.strerror}); "
                    f"is another twin running? Pick another with {label}=<port>."
                ) from None


def _prepare_state(config: TwinConfig) -> None:
    """moto keeps AWS state in memory, so each run starts from an empty world:
    the outbox and the clock start afresh too."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(config.outbox, ignore_errors=True)
    config.outbox.mkdir(parents=True)
    config.outbox_log.unlink(missing_ok=True)
    config.clock_file.write_text("0\n", encoding="ascii")


def _configure_logging() -> None:
    level = os.environ.get("MUSTER_TWIN_LOG", "INFO").upper()
    logging.basicConfig(level=level, format="twin %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("werkzeug", "botocore", "boto3", "urllib3", "mail.log", "moto"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def banner(config: TwinConfig, api_key: str, missing: list[str]) -> str:
    lines = [
        "",
        "  Muster local twin is ready",
        "",
        f"  API (Chalice)     {config.api_url}      (Authorization: Bearer <key>; spec at /openapi.json)",
        f"  SMTP in (SES)     smtp://{config.host}:{config.smtp_port}  (mail for @{RELAY_DOMAIN})",
        f"  Web mailbox       {config.mailbox_url}",
        f"  AWS (moto)        {config.aws_url}      (AWS_ENDPOINT_URL; any credentials)",
        f"  API key           {api_key}",
        f"                    (also in {config.api_key_file})",
        f"  Outbox            {config.outbox}/<recipient>/*.eml",
        "  Clock             python -m infra.twin.clock advance <hours>   (make advance HOURS=48)",
        "  Try               make demo",
        "",
    ]
    if missing:
        lines.insert(-1, f"  Not in app.py yet: {', '.join(missing)} (their triggers are logged and dropped)")
    lines.append("  Ctrl-C stops everything.")
    return "\n".join(lines) + "\n"


def main() -> int:
    config = TwinConfig.from_env()
    _configure_logging()
    _check_ports(config)
    started = time.monotonic()
    _prepare_state(config)

    # The app reads its settings from the environment: set it before importing.
    os.environ.update(config.app_environment())
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))

    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address=config.host, port=config.aws_port, verbose=False)
    moto.start()
    stops: list[Callable[[], Any]] = [moto.stop]

    def stop_all() -> None:
        for stop in reversed(stops):
            try:
                stop()
            except Exception:
                log.debug("error while stopping", exc_info=True)

    try:
        from chalicelib import models
        from chalicelib.adapters import aws
        from chalicelib.settings import get_settings

        get_settings.cache_clear()
        aws.reset()
        settings = get_settings()
        models.bind()

        from app import app
        from chalicelib.services import keys
        from infra.twin.api import ApiServer
        from infra.twin.dispatcher import Dispatcher
        from infra.twin.lambdas import Lambdas
        from infra.twin.mailbox import MailboxServer
        from infra.twin.outbox import Outbox
        from infra.twin.resources import create_resources
        from infra.twin.smtp import SesReceiving, SmtpServer

        topology = create_resources(settings, app)
        api_key = keys.create_key("local", "twin")
        config.api_key_file.write_text(api_key + "\n", encoding="ascii")
        os.chmod(config.api_key_file, 0o600)

        lambdas = Lambdas(app)
        missing = [name for name in ("inbound_email", "feedback") if not lambdas.has(name)]

        s3 = aws.client("s3")

        def store(key: str, raw: bytes) -> None:
            s3.put_object(Bucket=settings.mail_bucket, Key=key, Body=raw, ContentType="message/rfc822")

        def inbound(message_id: str, event: dict[str, Any]) -> None:
            lambdas.invoke("inbound_email", event)

        publish = None
        feedback_topic = topology.topics.get("feedback")
        if feedback_topic:
            sns = aws.client("sns")

            def publish(notification: dict[str, Any]) -> None:
                sns.publish(TopicArn=feedback_topic, Message=json.dumps(notification))

        outbox = Outbox(config.outbox, config.outbox_log, settings.relay_domain, publish)
        outbox.start()
        stops.append(outbox.stop)

        dispatcher = Dispatcher(lambdas, topology, settings, events_log=config.state_dir / "events.jsonl")
        dispatcher.start()
        stops.append(dispatcher.stop)

        smtp = SmtpServer(SesReceiving(settings.relay_domain, store, inbound), config.host, config.smtp_port)
        smtp.start()
        stops.append(smtp.stop)

        mailbox = MailboxServer(config.outbox, config.host, config.mailbox_port)
        mailbox.start()
        stops.append(mailbox.stop)

        api = ApiServer(app, config.host, config.api_port)
        api.start()
        stops.append(api.stop)
    except BaseException:
        stop_all()
        raise

    ready_seconds = time.monotonic() - started
    (config.state_dir / "twin.json").write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "api_url": config.api_url,
                "aws_url": config.aws_url,
                "smtp": [config.host, config.smtp_port],
                "mailbox_url": config.mailbox_url,
                "outbox": str(config.outbox),
                "ready_seconds": round(ready_seconds, 3),
            }
        ),
        encoding="utf-8",
    )
    sys.stdout.write(banner(config, api_key, missing))
    sys.stdout.flush()

    done = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not done.wait(0.5):
        pass
    sys.stdout.write("\ntwin: stopping...\n")
    sys.stdout.flush()
    stop_all()
    (config.state_dir / "twin.json").unlink(missing_ok=True)
    sys.stdout.write("twin: stopped.\n")
    return 0
