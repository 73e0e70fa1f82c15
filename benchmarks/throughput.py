"""Throughput: our rules pipeline vs medspaCy's default pipeline (same lexicon) on CMC 2007.

Both systems run end to end (text in, ``ReportAnalysis`` out) over the train and test reports,
are warmed up with one full pass, then timed with ``time.perf_counter``; the best of
``--repeat`` passes counts. Tokens are counted with each system's own tokenizer.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import System
from pipelines.corpora import CMC_TEST_FILE as TEST_FILE
from pipelines.corpora import CMC_TRAIN_FILE as TRAIN_FILE
from pipelines.corpora import DEFAULT_DATA_DIR, read_cmc
from pipelines.pipeline import RadiologyPipeline, ReportInput


@dataclass(frozen=True)
class Timing:
    name: str
    reports: int
    tokens: int
    seconds: float

    @property
    def reports_per_s(self) -> float:
        return self.reports / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds


def time_system(name: str, system: System, reports: Sequence[ReportInput], tokens: int,
                repeat: int, batch_size: int = 64) -> Timing:
    """Best of ``repeat`` timed passes after one warm-up pass."""
    for _ in system.analyze_stream(reports, batch_size=batch_size):
        pass
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in system.analyze_stream(reports, batch_size=batch_size):
            pass
        best = min(best, time.perf_counter() - start)
    return Timing(name, len(reports), tokens, best)


def format_timings(timings: Sequence[Timing]) -> str:
    lines = [f"{'system':<20}{'reports':>9}{'tokens':>10}{'best s':>9}{'reports/s':>11}"
             f"{'tokens/s':>11}"]
    for t in timings:
        lines.append(f"{t.name:<20}{t.reports:>9}{t.tokens:>10}{t.seconds:>9.2f}"
                     f"{t.reports_per_s:>11.1f}{t.tokens_per_s:>11.0f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("data_dir", nargs="?", type=Path, default=DEFAULT_DATA_DIR,
                        help=f"folder with {TRAIN_FILE} and {TEST_FILE}")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes; the best counts")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    from benchmarks.peers import MedspacyPeer

    reports = [ReportInput(r.id, r.text)
               for name in (TRAIN_FILE, TEST_FILE) if (args.data_dir / name).is_file()
               for r in read_cmc(args.data_dir / name)]
    if not reports:
        parser.error(f"no {TRAIN_FILE} or {TEST_FILE} in {args.data_dir}")
    ours = RadiologyPipeline.load("rules")
    peer = MedspacyPeer()
    ours_tokens = sum(len(ours.nlp.make_doc(r.text)) for r in reports)
    peer_tokens = sum(len(peer.nlp.make_doc(r.text)) for r in reports)
    timings = [time_system("ours (rules)", ours, reports, ours_tokens, args.repeat),
               time_system("medspaCy default", peer, reports, peer_tokens, args.repeat)]
    print(f"CMC 2007 train + test: {len(reports)} reports, warm-up 1 pass, "
          f"best of {args.repeat} timed passes (end to end, batch size 64)")
    print(format_timings(timings))
    ratio = timings[0].reports_per_s / timings[1].reports_per_s
    token_ratio = timings[0].tokens_per_s / timings[1].tokens_per_s
    print(f"ratio ours/medspaCy: {ratio:.2f}x reports/s, {token_ratio:.2f}x tokens/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
