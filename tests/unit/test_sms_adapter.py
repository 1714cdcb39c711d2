"""The SMS adapter and the twin's SMS service speak the same protocol: the
app's real boto3 ``pinpoint-sms-voice-v2`` client, pointed at the twin's
mailbox port, sends through ``SendTextMessage``; throttles and refusals come
back as the service's errors and are sorted like SES's (R9)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.adapters import sms as adapter
from chalicelib.adapters.mail import SendFailed
from infra.twin.mailbox import MailboxServer
from infra.twin.sms import SmsBackend, TwinSms


@pytest.mark.parametrize(
    ("code", "reason", "kind"),
    [
        ("ThrottlingException", "", "transient"),
        ("InternalServerException", "", "transient"),
        ("ValidationException", "INVALID_PARAMETER", "permanent"),
        ("ConflictException", "DESTINATION_PHONE_NUMBER_OPTED_OUT", "permanent"),
        ("ValidationException", "INVALID_IDENTITY_FOR_DESTINATION_COUNTRY", "deployment"),
        ("AccessDeniedException", "", "deployment"),
        ("ResourceNotFoundException", "", "deployment"),
        ("ServiceQuotaExceededException", "", "deployment"),
        ("SomethingNew", "", "deployment"),
    ],
)
def test_failures_are_sorted_like_ses(code: str, reason: str, kind: str) -> None:
    assert adapter.classify(code, reason) == kind


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SmsBackend, adapter.Texter]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = SmsBackend(tmp_path / "sms")
    server = MailboxServer(tmp_path / "outbox", "127.0.0.1", port, sms=TwinSms(backend, None))
    server.start()
    adapter.reset()
    texter = adapter.Texter(
        origination_identity="+15550100000",
        configuration_set="muster-test-sms",
        endpoint_url=f"http://127.0.0.1:{port}/sms-api",
    )
    try:
        yield backend, texter
    finally:
        server.stop()
        adapter.reset()


def test_a_text_goes_through_the_real_client_and_lands_in_the_outbox(
    service: tuple[SmsBackend, adapter.Texter],
) -> None:
    backend, texter = service
    message_id = texter.send(to="+12025550143", body="Ann A. (Canvass): hi 🎉", context={"message": "m1"})
    assert backend.texts("+12025550143") == ["Ann A. (Canvass): hi 🎉"]
    (sent,) = backend.sent
    assert sent["MessageId"] == message_id
    assert sent["OriginationIdentity"] == "+15550100000"
    assert sent["ConfigurationSetName"] == "muster-test-sms"
    assert sent["MessageType"] == "TRANSACTIONAL" and sent["Context"] == {"message": "m1"}


def test_throttles_and_refusals_come_back_as_the_service_errors(service: tuple[SmsBackend, adapter.Texter]) -> None:
    backend, texter = service
    backend.throttle_next = 10  # more than botocore's own retries
    with pytest.raises(SendFailed) as throttled:
        texter.send(to="+12025550143", body="x")
    assert (throttled.value.code, throttled.value.kind) == ("ThrottlingException", "transient")
    backend.throttle_next = 0
    backend.refused.add("+13125550123")
    with pytest.raises(SendFailed) as refused:
        texter.send(to="+13125550123", body="x")
    assert (refused.value.code, refused.value.kind) == ("ValidationException", "permanent")
    assert backend.texts("+13125550123") == []
