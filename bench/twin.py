"""Local twin benchmark (prints figures; not a test): ``.venv/bin/python bench/twin.py``.

1. Start-up: process start -> ready (``twin.json`` written, API answering), against
   a bare ``moto.server`` start-up measured in the same run.
2. Throughput and latency: 200 messages over SMTP into a 50-person chat (one
   organizer, 49 attendees; 49 copies each). Latency is SMTP accept (``sendmail``
   returned) -> the last of the message's copies written to the outbox. Also the
   same latency for messages sent one at a time on an idle twin, and the floor:
   49 bare SES ``SendEmail`` calls (8 threads, as the delivery Lambda does)
   against the same moto.
3. The peer, in the same run: GNU Mailman 3.3.10 core relaying the same workload
   (``/work/shared/peers/mailman3_bench.py --mode personalized``: one SMTP
   transaction per recipient, the poster gets no copy, so the same 49 copies a
   message), run before the twin's load while the twin is stopped. Target: the
   twin's copies/s >= 3x Mailman's and its p95 (accept -> last copy) <= 1/3 of it.

The twin runs as ``make dev`` does (duplicate switch off), with its default
worker processes and pollers (``MUSTER_TWIN_WORKERS``, ``MUSTER_TWIN_POLLERS``), but
for one setting: its emulated SES account may send 1,000 copies a second
(``MUSTER_MAX_SEND_RATE``; ``make dev``'s account sends 200). The pacer (R12) still
runs and still shares the budget; at 200 a second it held the twin at ~190 copies/s
once the twin could go faster, and Mailman, sending to a local sink, has no quota.
``--env MUSTER_MAX_SEND_RATE=200`` measures ``make dev``'s account.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra.twin.client import TwinClient, chat_message, event_body, signup_body  # noqa: E402
from infra.twin.config import TwinConfig  # noqa: E402
from tests.e2e.conftest import free_port, start_twin, stop_twin, twin_env  # noqa: E402

MARK = re.compile(rb"bench-(\d+)-")
PEER = Path("/work/shared/peers/mailman3_bench.py")
BENCH_SEND_RATE = 1000  # the emulated SES account's copies/s for the load run (see above)


def mailman(messages: int, members: int, tries: int = 3) -> dict[str, float]:
    """The peer's JSON line (it installs mailman==3.3.10 in its own venv on first use).
    On a loaded machine Mailman's runners may miss the peer's 60 s start-up limit: try again."""
    for attempt in range(1, tries + 1):
        out = subprocess.run(
            [
                "python3",
                str(PEER),
                "--mode",
                "personalized",
                "--messages",
                str(messages),
                "--members",
                str(members),
                "--no-self-copy",
                "--timeout",
                "300",
            ],
            capture_output=True,
            text=True,
            timeout=3600,
        )
        lines = [x for x in out.stdout.splitlines() if x.startswith("{")]
        if out.returncode == 0 and lines:
            return dict(json.loads(lines[-1]))
        print(f"mailman run {attempt} failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr, flush=True)
    raise RuntimeError("the Mailman peer did not run")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def moto_startup() -> float:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1).read()
                return time.perf_counter() - t0
            except OSError:
                time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait(10)


def twin_startup(tmp: Path, n: int) -> tuple[float, float]:
    env = twin_env(tmp / f"start{n}", duplicates=False)
    (tmp / f"start{n}").mkdir()
    config = TwinConfig.from_env(env)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.twin"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        ready = config.state_dir / "twin.json"
        while not ready.exists():
            if proc.poll() is not None:
                raise RuntimeError("the twin exited during start-up")
            time.sleep(0.01)
        elapsed = time.perf_counter() - t0
        inner = float(json.loads(ready.read_text())["ready_seconds"])
        return elapsed, inner
    finally:
        proc.send_signal(2)
        proc.wait(15)


class Tail:
    """Follow outbox.jsonl: map each new copy to its bench message."""

    def __init__(self, client: TwinClient) -> None:
        self.client = client
        self.offset = 0
        self.copies: dict[int, list[float]] = {}

    def poll(self) -> None:
        path = self.client.config.outbox_log
        with path.open("rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n") + 1
        self.offset += end
        for line in chunk[:end].splitlines():
            item = json.loads(line)
            match = MARK.search(Path(item["path"]).read_bytes())
            if match:
                self.copies.setdefault(int(match.group(1)), []).append(float(item["at"]))

    def wait(self, n: int, count: int, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        while len(self.copies.get(n, [])) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"message {n}: {len(self.copies.get(n, []))}/{count} copies after {timeout}s")
            time.sleep(0.01)
            self.poll()
        return max(self.copies[n])


def cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine so far (Linux ``/proc/stat``), or None."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def setting(pair: str) -> tuple[str, str]:
    key, eq, value = pair.partition("=")
    if not eq or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {pair!r}")
    return key.strip(), value


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--people", type=int, default=50)
    parser.add_argument("--idle", type=int, default=10)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--no-peer", dest="peer", action="store_false", help="skip the Mailman run")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        type=setting,
        metavar="KEY=VALUE",
        help="a setting for the twin under load (repeatable)",
    )
    args = parser.parse_args()
    out: dict[str, float] = {}
    peer: dict[str, float] = {}
    if args.peer:
        peer = mailman(args.messages, args.people)
        print(
            f"mailman 3.3.10 (personalized, {args.messages} posts, {args.people} members, no self copy): "
            f"{peer['copies_per_s']} copies/s, p50 {peer['p50_latency_s']} s, p95 {peer['p95_latency_s']} s, "
            f"complete={peer['complete']}, duplicates={peer['duplicate_copies']}",
            flush=True,
        )

    with tempfile.TemporaryDirectory(prefix="muster-bench-") as tmpdir:
        tmp = Path(tmpdir)
        moto_times = [moto_startup() for _ in range(args.starts)]
        twin_times = [twin_startup(tmp, n) for n in range(args.starts)]
        out["moto_start_s"] = statistics.median(moto_times)
        out["twin_start_s"] = statistics.median(t for t, _ in twin_times)
        out["twin_start_inner_s"] = statistics.median(i for _, i in twin_times)
        print(
            f"start-up: bare moto server {out['moto_start_s']:.2f} s; twin {out['twin_start_s']:.2f} s "
            f"(x{out['twin_start_s'] / out['moto_start_s']:.1f}); in the twin's main() {out['twin_start_inner_s']:.2f} s"
        )

        stats_base = tmp / "moto-stats"
        settings = {"MUSTER_MAX_SEND_RATE": str(BENCH_SEND_RATE), **dict(args.env)}
        print(f"the twin's emulated SES account: {settings['MUSTER_MAX_SEND_RATE']} sends/s (make dev: 200)")
        twin = start_twin(tmp / "load", duplicates=False, MUSTER_MOTO_STATS=str(stats_base), **settings)
        try:
            client = twin.client
            organizer = {"id": "o0", "first_name": "Olga", "last_name": "Owner", "email": "owner@bench.example"}
            client.put_event("bench", event_body("Bench", 10, [organizer]))
            attendees = [(f"P{i}", "Person", f"p{i}@bench.example") for i in range(1, args.people)]
            for i, (first, last, email) in enumerate(attendees, 1):
                client.put_signup("bench", f"s{i}", signup_body(first, last, email))
            address = client.chat("bench", "t1")["address"]
            client.wait_for_copies(args.people, timeout=120)
            copies = args.people - 1
            senders = [(f"{first} {last} <{email}>", email) for first, last, email in attendees] + [
                (f"Olga Owner <{organizer['email']}>", organizer["email"])
            ]

            tail = Tail(client)
            tail.poll()

            def message(n: int) -> tuple[bytes, str]:
                header, email = senders[n % len(senders)]
                msg = chat_message(header, address, f"bench-{n}- shift notes", f"Message {n}.\n" + "Some text. " * 40)
                return msg.as_bytes(), email

            # Idle latency: one message at a time.
            idle: list[float] = []
            with client.smtp() as smtp:
                for n in range(args.idle):
                    raw, sender = message(10_000 + n)
                    smtp.sendmail(sender, [address], raw)
                    accepted = time.time()
                    idle.append(tail.wait(10_000 + n, copies) - accepted)
            out["idle_p50_ms"] = statistics.median(idle) * 1000

            # Load: all messages as fast as SMTP takes them.
            accepted_at: dict[int, float] = {}
            cpu0 = cpu_jiffies()
            t0 = time.time()
            with client.smtp() as smtp:
                for n in range(args.messages):
                    raw, sender = message(n)
                    smtp.sendmail(sender, [address], raw)
                    accepted_at[n] = time.time()
            smtp_done = time.time()
            finished = {n: tail.wait(n, copies, timeout=600) for n in range(args.messages)}
            cpu1 = cpu_jiffies()
            if cpu0 and cpu1 and cpu1[1] > cpu0[1]:
                out["load_cpu_busy"] = (cpu1[0] - cpu0[0]) / (cpu1[1] - cpu0[1])
            t_end = max(finished.values())
            latency = [finished[n] - accepted_at[n] for n in range(args.messages)]
            out["smtp_accept_per_s"] = args.messages / (smtp_done - t0)
            out["messages_per_s"] = args.messages / (t_end - t0)
            out["copies_per_s"] = args.messages * copies / (t_end - t0)
            out["load_p50_s"] = statistics.median(latency)
            out["load_p95_s"] = pct(latency, 95)
            extra = {n: len(c) for n, c in tail.copies.items() if len(c) != copies}
            assert not extra, f"messages with the wrong number of copies: {extra}"

            # Floor: the bare SES calls one message's fan-out makes, against the same moto.
            import boto3

            ses = boto3.client(
                "sesv2",
                endpoint_url=twin.config.ses_url,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            raw, _ = message(99_999)

            def send(i: int) -> None:
                ses.send_email(
                    FromEmailAddress=address,
                    Destination={"ToAddresses": [f"floor{i}@floor.example"]},
                    Content={"Raw": {"Data": raw}},
                )

            floors = []
            with ThreadPoolExecutor(8) as pool:
                for _ in range(10):
                    f0 = time.perf_counter()
                    list(pool.map(send, range(copies)))
                    floors.append(time.perf_counter() - f0)
            out["ses_floor_ms"] = statistics.median(floors) * 1000
        finally:
            code = stop_twin(twin)
            out["twin_exit_code"] = code
        moto_stats = {path.suffix[1:]: json.loads(path.read_text()) for path in tmp.glob("moto-stats.*")}

    print(
        f"idle: {args.idle} messages one at a time, {copies} copies each: p50 {out['idle_p50_ms']:.0f} ms "
        f"(x{out['idle_p50_ms'] / out['ses_floor_ms']:.1f} the {out['ses_floor_ms']:.0f} ms of {copies} bare SES sends)"
    )
    print(
        f"load: {args.messages} messages into a {args.people}-person chat: {out['messages_per_s']:.1f} messages/s "
        f"({out['copies_per_s']:.0f} copies/s); SMTP accepted {out['smtp_accept_per_s']:.0f}/s; "
        f"accept -> last copy p50 {out['load_p50_s']:.2f} s, p95 {out['load_p95_s']:.2f} s"
        + (f"; the machine's CPU {out['load_cpu_busy']:.0%} busy" if "load_cpu_busy" in out else "")
    )
    print(
        f"ses floor: {copies} SendEmail calls (8 threads) {out['ses_floor_ms']:.0f} ms -> at most "
        f"{1000 / out['ses_floor_ms']:.1f} messages/s; the twin reaches {out['messages_per_s'] * out['ses_floor_ms'] / 10:.0f}% of it"
    )
    for port, ops in sorted(moto_stats.items()):
        busy = sum(seconds for _, seconds, _ in ops.values())
        cpu = sum(seconds for _, _, seconds in ops.values())
        calls = sum(count for count, _, _ in ops.values())
        top = sorted(ops.items(), key=lambda kv: -kv[1][2])[:8]
        print(
            f"moto :{port}: {calls} requests, {busy:.1f} s inside its one-at-a-time lock ({cpu:.1f} s of CPU); "
            "most CPU: "
            + ", ".join(f"{op} {count}x {seconds / count * 1000:.1f} ms" for op, (count, _, seconds) in top)
        )
    if peer:
        out["mailman_copies_per_s"] = float(peer["copies_per_s"])
        out["mailman_p95_s"] = float(peer["p95_latency_s"])
        out["mailman_p50_s"] = float(peer["p50_latency_s"])
        out["x_copies_per_s"] = out["copies_per_s"] / out["mailman_copies_per_s"]
        out["x_lower_p95"] = out["mailman_p95_s"] / out["load_p95_s"]
        print(
            f"vs mailman (same run): copies/s x{out['x_copies_per_s']:.2f} (target >= 3), "
            f"p95 {out['x_lower_p95']:.2f}x lower (target >= 3)"
        )
    print(json.dumps({k: round(v, 3) for k, v in out.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
