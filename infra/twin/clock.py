"""Move the twin's clock: ``python -m infra.twin.clock advance 48 | show | reset``.

The offset (seconds) lives in ``<twin dir>/clock``; ``chalicelib.clock.now()`` reads
it (``MUSTER_CLOCK_FILE``) on every call, and the twin's dispatcher fires the
schedules that became due within half a second.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from infra.twin.config import TwinConfig


def clock_file() -> Path:
    explicit = os.environ.get("MUSTER_CLOCK_FILE", "").strip()
    return Path(explicit) if explicit else TwinConfig.from_env().clock_file


def read_offset(path: Path) -> float:
    try:
        return float(path.read_text(encoding="ascii").strip() or 0)
    except (OSError, ValueError):
        return 0.0


def write_offset(path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{seconds:.3f}\n", encoding="ascii")
    os.replace(tmp, path)  # readers never see a half-written file


def describe(offset: float) -> str:
    now = datetime.now(UTC) + timedelta(seconds=offset)
    return f"twin clock: {now:%Y-%m-%d %H:%M:%S} UTC (offset {offset / 3600:+.2f} h)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.twin.clock", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    adv = sub.add_parser("advance", help="move the clock forward by HOURS")
    adv.add_argument("hours", type=float)
    sub.add_parser("show", help="print the twin's time and offset")
    sub.add_parser("reset", help="back to real time")
    args = parser.parse_args(argv)

    path = clock_file()
    offset = read_offset(path)
    if args.command == "advance":
        if args.hours < 0:
            parser.error("the clock only moves forward (use 'reset' to go back to real time)")
        offset += args.hours * 3600
        write_offset(path, offset)
    elif args.command == "reset":
        offset = 0.0
        write_offset(path, offset)
    sys.stdout.write(describe(offset) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
