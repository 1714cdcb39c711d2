"""Cold-start import time of app.py against `import chalice, boto3`, same run.

Each sample is a fresh interpreter (as a Lambda cold start is), alternating the
statements so machine noise hits all alike. Prints medians and the ratio; the
target is app.py <= 1.25x the baseline (issue 14).

`import app` loads no AWS SDK: each function loads what it needs on its first
invocation. So that the ratio hides nothing, the same run also times `import app`
plus what the first invocation of three functions imports and builds (the API's key
check, the inbound relay, the delivery fan-out), against the same baseline.

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
FIRST_USE = {
    "+ first API request": "import app; from chalicelib.services import keys",
    "+ first inbound mail": "import app; from chalicelib.blueprints import inbound; inbound.relay()",
    "+ first delivery batch": "import app; from chalicelib.blueprints import delivery; delivery.fanout()",
    # What the first DynamoDB call of each model builds (no request is made): one
    # botocore client for all of them, not one per model (chalicelib/models.py).
    "+ every model's DynamoDB client": (
        "import app; from chalicelib import models; [m._get_connection().connection.client for m in models.ALL_MODELS]"
    ),
}


def sample(stmt: str) -> float:
    env = {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "0",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "cold",  # a Lambda has credentials in its environment
        "AWS_SECRET_ACCESS_KEY": "cold",
    }
    out = subprocess.run(
        [sys.executable, "-X", "frozen_modules=on", "-c", TIMER.format(stmt=stmt)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    sample(APP), sample(BASELINE)  # warm the bytecode caches, as a deployed zip has them
    base, app = [], []
    first: dict[str, list[float]] = {label: [] for label in FIRST_USE}
    for _ in range(args.runs):
        base.append(sample(BASELINE))
        app.append(sample(APP))
        for label, stmt in FIRST_USE.items():
            first[label].append(sample(stmt))
    b, a = statistics.median(base), statistics.median(app)
    ratio = a / b
    print(f"{'import':<34}{'median ms':>10}{'min ms':>10}{'/ baseline':>12}")
    print(f"{BASELINE:<34}{b * 1000:>10.1f}{min(base) * 1000:>10.1f}{1:>11.2f}x")
    print(f"{APP:<34}{a * 1000:>10.1f}{min(app) * 1000:>10.1f}{ratio:>11.2f}x")
    for label, samples in first.items():
        m = statistics.median(samples)
        print(f"{label:<34}{m * 1000:>10.1f}{min(samples) * 1000:>10.1f}{m / b:>11.2f}x")
    print(f"ratio app/baseline: {ratio:.2f}x (target <= {TARGET}x) -> {'OK' if ratio <= TARGET else 'OVER'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
