"""Operator commands: ``python -m chalicelib.cli create-key <integration> [--stage prod]``
``python -m chalicelib.cli revoke-key <key> [--stage prod]`` and
``python -m chalicelib.cli kpis [--stage prod]`` (R14's product KPIs).

Reads the stage's settings from .chalice/config.json, so the key lands in that
stage's table (in AWS with your credentials, or in the local twin when
AWS_ENDPOINT_URL points at it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def stage_environment(stage: str, config: Path = Path(".chalice/config.json")) -> dict[str, str]:
    data = json.loads(config.read_text())
    env = dict(data.get("environment_variables", {}))
    env.update(data.get("stages", {}).get(stage, {}).get("environment_variables", {}))
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="muster")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-key", help="create an API key for an integration")
    create.add_argument("integration")
    create.add_argument("--name", default="default")
    create.add_argument("--stage", default=os.environ.get("STAGE", "dev"))
    revoke = sub.add_parser("revoke-key", help="revoke an API key (requests with it get 401 at once)")
    revoke.add_argument("key")
    revoke.add_argument("--stage", default=os.environ.get("STAGE", "dev"))
    report = sub.add_parser("kpis", help="share of opened chats with messages, and with messages after the event")
    report.add_argument("--stage", default=os.environ.get("STAGE", "dev"))
    args = parser.parse_args(argv)

    for key, value in stage_environment(args.stage).items():
        os.environ.setdefault(key, value)
    from chalicelib import models
    from chalicelib.services import keys

    models.bind()
    if args.command == "revoke-key":
        keys.revoke_key(args.key)
        sys.stdout.write("revoked\n")
        return 0
    if args.command == "kpis":
        from chalicelib.services.kpis import kpis

        k = kpis()
        sys.stdout.write(
            f"chats opened: {k.chats_opened}\n"
            f"with at least one message: {k.with_messages} ({k.share_with_messages:.0%})\n"
            f"with messages after the event: {k.after_event} ({k.share_after_event:.0%})\n"
        )
        return 0
    key = keys.create_key(args.integration, args.name)
    sys.stdout.write(f"API key for integration '{args.integration}' (shown once; stored hashed):\n{key}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
