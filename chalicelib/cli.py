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
    report = sub.add_parser("kpis", help="an integration's KPIs (the figures GET /kpis returns)")
    report.add_argument("integration")
    report.add_argument("--from", dest="start", default=None, help="YYYY-MM-DD (default: 29 days before --to)")
    report.add_argument("--to", dest="end", default=None, help="YYYY-MM-DD (default: today, UTC)")
    report.add_argument("--event-id", default=None)
    report.add_argument("--json", action="store_true", help="print GET /kpis' JSON body")
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
        from chalicelib import clock
        from chalicelib.services import kpis

        try:
            start, end = kpis.parse_range(args.start, args.end, clock.now().date())
        except kpis.RangeError as err:
            sys.stderr.write(f"{err}\n")
            return 2
        k = kpis.kpis(args.integration, start, end, args.event_id)
        sys.stdout.write(json.dumps(kpis.report(k), indent=2) + "\n" if args.json else kpis.text(k))
        return 0
    key = keys.create_key(args.integration, args.name)
    sys.stdout.write(f"API key for integration '{args.integration}' (shown once; stored hashed):\n{key}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
