"""Intake fairness: how long a small message waits for its ACK while large ones are parsed.

Four senders each send one large ORU^R01 (4,000 OBR groups, about 500 KB, under the 2 MB
limit) over their own MLLP connection; meanwhile a fifth sends small one-report messages one
after another and times each from send to ACK. Run once as the listener is configured (large
messages in a pool of their own) and once with one shared pool of 4 threads, as before
issue 17 (a small message then waited behind the large ones: 46.9 s in the issue's run).

    python -m benchmarks.intake_fairness            # 4 x 4,000 groups, SQLite
    python -m benchmarks.intake_fairness --groups 500 --large 2
"""

from __future__ import annotations

import argparse
import socket
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory

from benchmarks.batching import format_table
from nlp_service.core.logging import configure_logging
from nlp_service.intake.client import ack_code
from nlp_service.intake.hl7 import build_oru
from nlp_service.intake.mllp import (
    END_BLOCK,
    LARGE_MESSAGE_BYTES,
    BackgroundMLLPServer,
    MLLPServer,
    frame,
)
from nlp_service.storage.db import make_engine, migrate

LINE = "FINDINGS: No acute abnormality. IMPRESSION: Normal study."


def large_message(control_id: str, groups: int) -> bytes:
    """An ORU^R01 with ``groups`` OBR groups (one TX line each)."""
    first = build_oru(control_id, f"{control_id}-1", LINE, mrn="MRN-BENCH")
    header, pid, obr, obx = first.rstrip("\r").split("\r")
    segments = [header, pid]
    for number in range(1, groups + 1):
        segments.append(obr.replace(f"{control_id}-1", f"{control_id}-{number}"))
        segments.append(obx)
    return ("\r".join(segments) + "\r").encode()


def send(port: int, message: bytes) -> tuple[str, float]:
    """Send one message on a new connection: (ACK code, seconds until the ACK)."""
    with socket.create_connection(("127.0.0.1", port), timeout=600) as connection:
        return exchange(connection, message)


def exchange(connection: socket.socket, message: bytes) -> tuple[str, float]:
    started = time.perf_counter()
    connection.sendall(frame(message))
    answer = b""
    while not answer.endswith(END_BLOCK):
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError("the listener closed the connection")
        answer += chunk
    return ack_code(answer.strip(b"\x0b\x1c\r").decode()), time.perf_counter() - started


@dataclass
class Outcome:
    name: str
    large_seconds: list[float] = field(default_factory=list)
    small_seconds: list[float] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)


def run(name: str, *, large: int, groups: int, shared_pool: bool) -> Outcome:
    outcome = Outcome(name)
    messages = [large_message(f"L{name[:1]}{i}", groups) for i in range(large)]
    with TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'fairness.db'}")
        migrate(engine)
        # The shared pool is the listener before issue 17: every message in 4 threads.
        large_bytes = 10**9 if shared_pool else LARGE_MESSAGE_BYTES
        with BackgroundMLLPServer(MLLPServer(engine, port=0, threads=4,
                                             large_message_bytes=large_bytes)) as server:

            def send_large(message: bytes) -> None:
                code, seconds = send(server.port, message)
                outcome.codes.append(code)
                outcome.large_seconds.append(seconds)

            senders = [threading.Thread(target=send_large, args=(m,)) for m in messages]
            for sender in senders:
                sender.start()
            time.sleep(0.5)  # the large ones are being parsed
            with socket.create_connection(("127.0.0.1", server.port), timeout=600) as small:
                number = 0
                while any(sender.is_alive() for sender in senders) or number < 3:
                    number += 1
                    code, seconds = exchange(small, build_oru(
                        f"S{name[:1]}{number}", f"S{name[:1]}{number}", LINE,
                        mrn="MRN-SMALL").encode())
                    outcome.codes.append(code)
                    outcome.small_seconds.append(seconds)
                    time.sleep(0.2)
            for sender in senders:
                sender.join()
        engine.dispose()
    return outcome


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--large", type=int, default=4, help="concurrent large messages")
    parser.add_argument("--groups", type=int, default=4000, help="OBR groups per large one")
    parser.add_argument("--only-configured", action="store_true",
                        help="skip the run with one shared pool (the old listener)")
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    size = len(large_message("X", args.groups))
    print(f"{args.large} large messages of {size:,} bytes ({args.groups:,} OBR groups) on "
          f"{args.large} connections; small messages on a fifth, one every 0.2 s")
    runs = [run("configured (large messages in their own pool)", large=args.large,
                groups=args.groups, shared_pool=False)]
    if not args.only_configured:
        runs.append(run("shared pool of 4 threads (before issue 17)", large=args.large,
                        groups=args.groups, shared_pool=True))
    rows = []
    for outcome in runs:
        small = outcome.small_seconds
        rows.append([outcome.name, str(len(small)), f"{statistics.median(small):.3f}",
                     f"{max(small):.3f}", f"{max(outcome.large_seconds):.1f}",
                     str(sum(code == "AA" for code in outcome.codes))
                     + f"/{len(outcome.codes)}"])
    print(format_table(["listener", "small messages", "small ACK median s", "small ACK max s",
                        "last large ACK s", "AA"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
