"""``GET /files/{token}``: the download link a copy carries in place of a large
attachment (issue 14).

A genuine, unexpired link answers 302 to a presigned S3 URL valid for a few
minutes (the bytes never pass through API Gateway, whose payloads stop at 10 MB).
A tampered link is a 403, an expired one (or a file the bucket's lifecycle rule
already removed) a 410, in R13's error shape -- or as a small page when the
client asks for HTML (a person clicking the link in their mail). No API key:
the signed token is the permission.
"""

from __future__ import annotations

import html
import json

from chalice import Blueprint, Response

from chalicelib.blueprints.pages import page
from chalicelib.errors import ApiError
from chalicelib.observability import metrics

files_bp = Blueprint(__name__)
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}
TITLES = {403: "Link not valid", 410: "Link expired"}


def _wants_html(accept: str) -> bool:
    accept = accept.lower()
    return "text/html" in accept and "application/json" not in accept


def _refusal(err: ApiError, accept: str) -> Response:
    if _wants_html(accept):
        title = TITLES.get(err.status, "Not available")
        text = f"{err.message[0].upper()}{err.message[1:]}. Ask the sender to share the file again."
        return page(title, f"<p>{html.escape(text)}</p>", err.status)
    return Response(
        body=json.dumps(err.body()), status_code=err.status, headers={"Content-Type": "application/json", **NO_STORE}
    )


@files_bp.route("/files/{token}", methods=["GET"])
def download_file(token: str) -> Response:
    request = files_bp.current_request
    accept = request.headers.get("accept", "") if request is not None else ""
    try:
        from chalicelib.services import files

        url = files.download(token)
    except ApiError as err:
        metrics.add_metric(name=f"FileLinkRefused_{err.code}", unit="Count", value=1)
        return _refusal(err, accept)
    metrics.add_metric(name="FileDownloads", unit="Count", value=1)
    return Response(body="", status_code=302, headers={"Location": url, **NO_STORE})
