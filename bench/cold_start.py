"""Cold-start import time of app.py against `import chalice, boto3`, same run.

Each sample is a fresh interpreter (as a Lambda cold start is), alternating the
two so machine noise hits both alike. Prints medians and the ratio; the target
is app.py <= 1.25x the baseline (issue 14).

    .venv/bin/python bench/cold_start.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMER = "import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
BASELINE = "import chalice, boto3"
APP = "import app"
TARGET = 1.25


def sample(stmt: str) -> float:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0", "AWS_DEFAULT_REGION": "us-east-1"}
    out = subprocess.run(
        [sys.executable, "-X", "frozen_modules=on", "-c", TIMER.format(stmt=stmt)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    sample(APP), sample(BASELINE)  # warm the bytecode caches, as a deployed zip has them
    base, app = [], []
    for _ in range(args.runs):
        base.append(sample(BASELINE))
        app.append(sample(APP))
    b, a = statistics.median(base), statistics.median(app)
    ratio = a / b
    print(f"{'import':<24}{'median ms':>10}{'min ms':>10}")
    print(f"{BASELINE:<24}{b * 1000:>10.1f}{min(base) * 1000:>10.1f}")
    print(f"{APP:<24}{a * 1000:>10.1f}{min(app) * 1000:>10.1f}")
    print(f"ratio app/baseline: {ratio:.2f}x (target <= {TARGET}x) -> {'OK' if ratio <= TARGET else 'OVER'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
