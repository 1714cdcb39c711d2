"""``GET /n/{token}``: a next-step link (issue 11) -- count the click, then 302 to
the step's URL.

The token names a chat and a step (and, only when the deployment attributes
clicks, the reader); the URL comes from the event, never from the token, so this
is not an open redirect. Every GET of a genuine link counts one click: link
scanners that prefetch with HEAD are answered without counting, but a scanner
that follows links with GET is counted like a person (README, "Next steps").
A tampered or foreign token, or a step the event no longer lists, is a 403
page and counts nothing. No API key: the signed token is the permission.
"""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.blueprints.pages import head, page
from chalicelib.observability import metrics

nextsteps_bp = Blueprint(__name__)
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


def _refused() -> Response:
    metrics.add_metric(name="NextStepLinkRefused", unit="Count", value=1)
    return page("Link not valid", "<p>This link is not valid, or the organizers removed this step.</p>", 403)


def _answer(token: str, *, count: bool) -> Response:
    from chalicelib.services import nextsteps

    resolved = nextsteps.resolve(token)
    if resolved is None:
        return _refused()
    if count:
        nextsteps.count_click(resolved)
    return Response(body="", status_code=302, headers={"Location": resolved.step.url, **NO_STORE})


@nextsteps_bp.route("/n/{token}", methods=["GET"])
def next_step(token: str) -> Response:
    return _answer(token, count=True)


@nextsteps_bp.route("/n/{token}", methods=["HEAD"])
def next_step_head(token: str) -> Response:
    """Link scanners' prefetch: what GET answers, never counted."""
    return head(_answer(token, count=False))
