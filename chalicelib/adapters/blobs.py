"""S3: raw inbound mail (written by SES) and rendered outbound messages."""

from __future__ import annotations

from typing import Any

from chalicelib.adapters import aws


class MailStore:
    def __init__(self, *, bucket: str, client: Any = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("s3")

    def get(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def put(self, key: str, data: bytes, content_type: str = "message/rfc822") -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
