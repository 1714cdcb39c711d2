"""Soak the concurrent twin (prints figures; not a test): ``.venv/bin/python bench/soak.py``.

Sends ``--messages`` (10,000) posts over SMTP into ``--chats`` chats of ``--people``
(10: one organizer, nine attendees; nine copies a post), keeping ``--window``
posts in flight (a closed loop: the next post goes out when one is complete, so
latency measures the twin's service time, not a backlog the sender built).
``--minutes`` stops sending early on a slow machine (the report says how many
went out). Then it reports:

- per-post latency (SMTP accept -> last copy in the outbox), first 10 % vs last
  10 % of the posts (flat: ratio ~ 1);
- RSS of each twin process (the twin's main process, moto, the fork server, each
  worker) sampled every ``--sample`` seconds: at 10 % of the run, at the end, peak;
- lost (a post with fewer copies than recipients) and duplicated (a
  (post, recipient) pair with more than one copy) -- both must be 0.

Sender rate limits are lifted for the soak (``MUSTER_SENDER_MESSAGES_PER_HOUR``,
``MUSTER_CHAT_COPIES_PER_HOUR``); everything else is ``make dev``'s setup.
``--duplicates`` turns on the twin's duplicate delivery (as the e2e tests do).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra.twin.client import TwinClient, chat_message, event_body, signup_body  # noqa: E402
from tests.e2e.conftest import start_twin, stop_twin  # noqa: E402

MARK = re.compile(rb"soak-post-(\d+)-")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def process_tree(info: dict[str, object]) -> dict[str, int]:
    """Label -> pid for the twin's processes."""
    main = int(str(info["pid"]))
    moto = int(str(info["moto_pid"]))
    ses = int(str(info["ses_pid"]))
    workers = {int(p) for p in info.get("worker_pids", []) or []}  # type: ignore[attr-defined]
    out = {"twin": main, "moto": moto, "moto-ses": ses}
    for pid in children(main):
        if pid not in (moto, ses) and pid not in workers:
            out["forkserver" if set(children(pid)) & workers else f"helper{pid}"] = pid
    for n, pid in enumerate(sorted(workers)):
        out[f"worker{n}"] = pid
    return out


class Outbox:
    """Tail outbox.jsonl: copies per (post, recipient), last arrival per post."""

    def __init__(self, client: TwinClient) -> None:
        self.path = client.config.outbox_log
        self.offset = 0
        self.pairs: Counter[tuple[int, str]] = Counter()
        self.copies: Counter[int] = Counter()
        self.last: dict[int, float] = {}

    def poll(self) -> None:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return
        end = chunk.rfind(b"\n") + 1
        self.offset += end
        for line in chunk[:end].splitlines():
            item = json.loads(line)
            with open(item["path"], "rb") as fh:
                match = MARK.search(fh.read(16384))
            if match:
                n = int(match.group(1))
                self.pairs[(n, item["to"])] += 1
                self.copies[n] += 1
                self.last[n] = max(self.last.get(n, 0.0), float(item["at"]))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--chats", type=int, default=20)
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=0.0, help="stop sending after this long (0: never)")
    parser.add_argument("--sample", type=float, default=5.0)
    parser.add_argument("--duplicates", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="muster-soak-") as tmpdir:
        twin = start_twin(
            Path(tmpdir) / "twin",
            duplicates=args.duplicates,
            MUSTER_SENDER_MESSAGES_PER_HOUR="1000000",
            MUSTER_CHAT_COPIES_PER_HOUR="100000000",
        )
        try:
            client = twin.client
            info = json.loads((twin.config.state_dir / "twin.json").read_text())
            procs = process_tree(info)
            chats: list[tuple[str, list[tuple[str, str]]]] = []
            for c in range(args.chats):
                organizer = {
                    "id": f"o{c}",
                    "first_name": "Olga",
                    "last_name": f"O{c}",
                    "email": f"owner{c}@soak.example",
                }
                client.put_event(f"soak{c}", event_body(f"Soak {c}", 10, [organizer]))
                people = [(f"Olga O{c} <{organizer['email']}>", organizer["email"])]
                for i in range(1, args.people):
                    email = f"p{c}x{i}@soak.example"
                    client.put_signup(f"soak{c}", f"s{i}", signup_body(f"P{i}", f"C{c}", email))
                    people.append((f"P{i} C{c} <{email}>", email))
                chats.append((client.chat(f"soak{c}", "t1")["address"], people))
            client.wait_for_copies(args.chats * args.people, timeout=600)
            outbox = Outbox(client)
            outbox.poll()
            copies = args.people - 1

            samples: list[tuple[float, dict[str, float]]] = []
            stop_sampling = threading.Event()

            def sample() -> None:
                while True:
                    samples.append((time.time(), {label: rss_mib(pid) for label, pid in procs.items()}))
                    if stop_sampling.wait(args.sample):
                        return

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()

            accepted: dict[int, float] = {}
            open_posts: set[int] = set()
            t0 = time.time()
            sent = 0
            with client.smtp() as smtp:
                while sent < args.messages:
                    if args.minutes and time.time() - t0 > args.minutes * 60:
                        break
                    outbox.poll()
                    open_posts = {n for n in open_posts if outbox.copies[n] < copies}
                    if len(open_posts) >= args.window:
                        time.sleep(0.01)
                        continue
                    address, people = chats[sent % len(chats)]
                    header, sender = people[(sent // len(chats)) % len(people)]
                    msg = chat_message(
                        header, address, f"soak-post-{sent}- note", f"Soak message {sent}.\n" + "Some text. " * 20
                    )
                    smtp.sendmail(sender, [address], msg.as_bytes())
                    accepted[sent] = time.time()
                    open_posts.add(sent)
                    sent += 1
            send_done = time.time()
            deadline = time.time() + 300
            while time.time() < deadline and any(outbox.copies[n] < copies for n in accepted):
                time.sleep(0.2)
                outbox.poll()
            time.sleep(3)  # late duplicates would show up here
            outbox.poll()
            stop_sampling.set()
            sampler.join()
            t_end = max(outbox.last.values()) if outbox.last else time.time()
        finally:
            code = stop_twin(twin)

    order = sorted(accepted)
    complete = [n for n in order if outbox.copies[n] >= copies]
    lost = len(order) - len(complete)
    duplicated = sum(n - 1 for n in outbox.pairs.values() if n > 1)
    latency = {n: outbox.last[n] - accepted[n] for n in complete}
    tenth = max(1, len(order) // 10)
    first = [latency[n] for n in order[:tenth] if n in latency]
    last = [latency[n] for n in order[-tenth:] if n in latency]
    start_at = samples[0][0]
    early = next((s for t, s in samples if t - start_at >= (t_end - start_at) / 10), samples[0][1])
    final = samples[-1][1]
    peak = {label: max(s[label] for _, s in samples) for label in procs}
    out = {
        "messages_sent": len(order),
        "messages_asked": args.messages,
        "chats": args.chats,
        "people": args.people,
        "duplicates_switch": args.duplicates,
        "seconds": round(t_end - t0, 1),
        "send_seconds": round(send_done - t0, 1),
        "messages_per_s": round(len(complete) / (t_end - t0), 2),
        "copies_per_s": round(len(complete) * copies / (t_end - t0), 1),
        "lost": lost,
        "duplicated": duplicated,
        "first10_p50_s": round(statistics.median(first), 3),
        "last10_p50_s": round(statistics.median(last), 3),
        "first10_p95_s": round(pct(first, 95), 3),
        "last10_p95_s": round(pct(last, 95), 3),
        "latency_ratio_p50": round(statistics.median(last) / statistics.median(first), 2),
        "latency_ratio_p95": round(pct(last, 95) / pct(first, 95), 2),
        "rss_mib_at_10pct": {k: round(v, 1) for k, v in early.items()},
        "rss_mib_end": {k: round(v, 1) for k, v in final.items()},
        "rss_mib_peak": {k: round(v, 1) for k, v in peak.items()},
        "twin_exit_code": code,
    }
    workers = [k for k in procs if k.startswith("worker")]
    for label, group in (("twin", ["twin"]), ("moto", ["moto"]), ("workers", workers)):
        a = sum(early.get(k, 0.0) for k in group)
        b = sum(final.get(k, 0.0) for k in group)
        print(f"RSS {label}: {a:.0f} MiB at 10% of the run -> {b:.0f} MiB at the end (x{b / a if a else 0:.2f})")
    print(
        f"{len(order)} posts ({args.messages} asked) into {args.chats} chats of {args.people}: {out['copies_per_s']} copies/s; "
        f"lost {lost}, duplicated {duplicated}"
    )
    print(
        f"latency p50 first 10% {out['first10_p50_s']} s, last 10% {out['last10_p50_s']} s (x{out['latency_ratio_p50']}); "
        f"p95 {out['first10_p95_s']} -> {out['last10_p95_s']} s (x{out['latency_ratio_p95']})"
    )
    print(json.dumps(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0 if lost == 0 and duplicated == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
