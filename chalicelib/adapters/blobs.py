"""S3: raw inbound mail (written by SES), rendered outbound messages, and the
large attachments that left them (``files/``, issue 14)."""

from __future__ import annotations

from typing import Any

from chalicelib.adapters import aws


class MailStore:
    def __init__(self, *, bucket: str, client: Any = None, region: str = "us-east-1") -> None:
        self.bucket = bucket
        self._client = client
        self.region = region

    @property
    def client(self) -> Any:
        return self._client or aws.client("s3")

    def get(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def put(
        self, key: str, data: bytes, content_type: str = "message/rfc822", *, disposition: str | None = None
    ) -> None:
        extra = {"ContentDisposition": disposition} if disposition else {}
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, **extra)

    def exists(self, key: str) -> bool:
        """Whether ``key`` is there (HeadObject: needs only s3:GetObject)."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if aws.error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True

    def download_url(self, key: str, seconds: int) -> str:
        """A presigned GET of ``key``, valid for ``seconds`` (and at most as long
        as the caller's own credentials)."""
        presigner = self._client or aws.s3_presigner(self.region)
        return str(
            presigner.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=seconds
            )
        )
