"""Start every piece of the twin, print the banner, stop cleanly on Ctrl-C."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.twin.config import RELAY_DOMAIN, ROOT, TwinConfig

log = logging.getLogger("twin")


def _check_ports(config: TwinConfig) -> None:
    for label, port in (
        ("MUSTER_AWS_PORT", config.aws_port),
        ("MUSTER_SES_PORT", config.ses_port),
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
    config.moto_log.unlink(missing_ok=True)
    config.ses_log.unlink(missing_ok=True)
    config.clock_file.write_text("0\n", encoding="ascii")


def start_moto(
    config: TwinConfig, port: int | None = None, log: Path | None = None, timeout: float = 30.0
) -> subprocess.Popen[bytes]:
    """moto's server as a process of its own (``infra.twin.motoserver``); returns once it accepts connections."""
    port = config.aws_port if port is None else port
    log = config.moto_log if log is None else log
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "infra.twin.motoserver", config.host, str(port)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C is ours to handle; we stop moto last
        )
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise SystemExit(f"twin: moto's server exited ({process.returncode}); see {log}")
        try:
            with socket.create_connection((config.host, port), timeout=0.5):
                return process
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise SystemExit(f"twin: moto's server did not start within {timeout:.0f} s; see {log}") from None
            time.sleep(0.05)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


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
        f"  AWS (moto)        {config.aws_url}      (AWS_ENDPOINT_URL; any credentials; its own process)",
        f"  SES (moto)        {config.ses_url}      (AWS_ENDPOINT_URL_SESV2; a second moto process, SES alone)",
        f"  Handlers          {config.workers} worker processes (warm containers), {config.pollers} pollers per queue"
        + ("; every SES/SQS trigger delivered twice" if config.duplicates else ""),
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

    moto = start_moto(config)
    stops: list[Callable[[], Any]] = [lambda: stop_process(moto)]
    try:
        ses = start_moto(config, config.ses_port, config.ses_log)
    except BaseException:
        stop_process(moto)
        raise
    stops.append(lambda: stop_process(ses))

    def stop_all() -> None:
        for stop in reversed(stops):
            try:
                stop()
            except Exception:
                log.debug("error while stopping", exc_info=True)

    try:
        from infra.twin.outbox import Outbox, capture

        # Before any boto3 client exists: the API's own sends land in the outbox too.
        feedback: dict[str, str] = {}

        def publish(notification: dict[str, Any]) -> None:
            if "topic" in feedback:
                aws.client("sns").publish(TopicArn=feedback["topic"], Message=json.dumps(notification))

        capture(Outbox(config.outbox, config.outbox_log, RELAY_DOMAIN, publish))

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
        from infra.twin.mailbox import MailboxServer
        from infra.twin.resources import create_resources
        from infra.twin.smtp import SesReceiving, SmtpServer
        from infra.twin.workers import WorkerPool

        topology = create_resources(settings, app)
        if "feedback" in topology.topics:
            feedback["topic"] = topology.topics["feedback"]
        api_key = keys.create_key("local", "twin")
        config.api_key_file.write_text(api_key + "\n", encoding="ascii")
        os.chmod(config.api_key_file, 0o600)

        # The worker "containers": before the twin starts any thread of its own.
        pool = WorkerPool(
            config.workers,
            dict(os.environ),
            str(ROOT),
            (str(config.outbox), str(config.outbox_log), settings.relay_domain),
            set(app.handler_map),
        )
        worker_pids = pool.start(feedback.get("topic"))
        stops.append(pool.stop)
        missing = [name for name in ("inbound_email", "feedback") if not pool.has(name)]

        s3 = aws.client("s3")

        def store(key: str, raw: bytes) -> None:
            s3.put_object(Bucket=settings.mail_bucket, Key=key, Body=raw, ContentType="message/rfc822")

        def inbound(message_id: str, event: dict[str, Any]) -> None:
            if config.duplicates:
                pool.invoke_twice("inbound_email", event)
            else:
                pool.invoke_logged("inbound_email", event)

        dispatcher = Dispatcher(
            pool,
            topology,
            settings,
            pollers=config.pollers,
            duplicates=config.duplicates,
            events_log=config.state_dir / "events.jsonl",
        )
        dispatcher.start()
        stops.append(dispatcher.stop)

        receiving = SesReceiving(settings.relay_domain, store, inbound, workers=config.pollers)
        smtp = SmtpServer(receiving, config.host, config.smtp_port)
        smtp.start()
        stops.append(smtp.stop)

        from infra.twin.sms import SmsBackend, TwinSms  # issue 12: texts out and in

        publish_text = None
        inbound_topic = topology.topics.get("sms_inbound")
        if inbound_topic:
            sms_sns = aws.client("sns")

            def publish_text(message: dict[str, Any]) -> None:
                sms_sns.publish(TopicArn=inbound_topic, Message=json.dumps(message))

        sms = TwinSms(SmsBackend(config.state_dir / "sms", publish_event=publish), publish_text)
        mailbox = MailboxServer(config.outbox, config.host, config.mailbox_port, sms=sms)
        mailbox.start()
        stops.append(mailbox.stop)

        api = ApiServer(app, config.host, config.api_port)
        api.start()
        stops.append(api.stop)
    except BaseException:
        stop_all()
        raise

    ready_seconds = time.monotonic() - started
    # Written whole, then renamed: whoever waits for twin.json never reads half of it.
    ready_file = config.state_dir / "twin.json"
    ready_file.with_suffix(".tmp").write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "moto_pid": moto.pid,
                "ses_pid": ses.pid,
                "worker_pids": worker_pids,
                "workers": config.workers,
                "pollers": config.pollers,
                "duplicates": config.duplicates,
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
    ready_file.with_suffix(".tmp").replace(ready_file)
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
