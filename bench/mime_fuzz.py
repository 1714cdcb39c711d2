"""The long run of the hostile-MIME fuzzer (tests/property/test_mime_fuzz.py).

Same strategy, same pipeline (parse_inbound with its caps -> authorize ->
anonymize -> personalize), same checks (nothing raises, nothing leaks, the time
bound), many more examples. Prints the figures quoted in docs/performance.md:
examples, outcomes, the largest input, the slowest example and, for the slowest,
the stdlib's own parse and serialize of the same bytes in the same run.

    .venv/bin/python bench/mime_fuzz.py [--examples 1000] [--seed 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, Phase, given, seed, settings

from tests.property.test_mime_fuzz import (
    ADDRESSES,
    BOUND_SECONDS,
    find_leaks,
    hostile_mime,
    pipeline,
    stdlib_seconds,
    within_bound,
)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rows: list[tuple[float, int, str]] = []
    slowest: list[tuple[float, bytes]] = [(0.0, b"")]
    problems: list[str] = []

    @seed(args.seed)
    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
    )
    @given(hostile_mime())
    def run(raw: bytes) -> None:
        try:
            result = pipeline(raw)
        except Exception as exc:  # the property test fails on this; here it is counted
            problems.append(f"raised {type(exc).__name__}")
            return
        rows.append((result.seconds, len(raw), result.outcome.value))
        if result.seconds > slowest[0][0]:
            slowest[0] = (result.seconds, raw)
        ok, why = within_bound(result, raw)
        if not ok:
            problems.append(why)
        if result.out is not None and find_leaks(result.out, ADDRESSES):
            problems.append(f"leak in a {len(raw)}-byte input")

    started = time.perf_counter()
    run()
    wall = time.perf_counter() - started
    times = sorted(t for t, _, _ in rows)
    worst_t, worst_raw = slowest[0]
    base = stdlib_seconds(worst_raw)
    print(f"examples: {len(rows)} (+{len(problems)} problems) in {wall:.0f} s wall")
    print(f"outcomes: {dict(Counter(o for _, _, o in rows).most_common())}")
    print(
        f"input size: max {max(n for _, n, _ in rows):,} bytes, median {statistics.median(n for _, n, _ in rows):,.0f}"
    )
    print(
        f"pipeline time: median {statistics.median(times) * 1000:.1f} ms, p99 {times[int(len(times) * 0.99) - 1] * 1000:.0f} ms, "
        f"max {worst_t * 1000:.0f} ms ({len(worst_raw):,} bytes; stdlib parse+serialize of it: {base * 1000:.0f} ms, "
        f"ratio {worst_t / base:.1f}x)"
    )
    print(f"over {BOUND_SECONDS:.0f} s: {sum(1 for t in times if t > BOUND_SECONDS)}")
    for p in problems[:10]:
        print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
