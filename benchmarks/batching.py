"""Benchmark the batched transformer engine: batch size 1 vs token-budget batching, fp32 vs int8.

Reports are synthetic but realistic, assembled from the project's sample reports
(``pipelines/resources/samples``), or read from a CMC 2007 XML file given with ``--cmc``.
Prints reports/s, tokens/s, the model's achieved FLOP/s as a fraction of a plain fp32
``torch.matmul`` measured in the same run, and the peak RSS after streaming increasing counts.

    HF_HUB_OFFLINE=1 python -m benchmarks.batching --n 96
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import resource
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from pipelines.batching import BatchEngine, BatchEngineConfig
from pipelines.corpora import read_cmc

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "pipelines" / "resources" / "samples"


def sample_sentences() -> list[tuple[str, str]]:
    """(section header, sentence) pairs from the project's sample reports."""
    pairs: list[tuple[str, str]] = []
    for path in sorted(SAMPLES_DIR.glob("*.txt")):
        header = "FINDINGS"
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line:
                continue
            if line.endswith(":") and line[:-1].isupper():
                header = line[:-1]
                continue
            pairs.append((header, line))
    if not pairs:
        raise FileNotFoundError(f"No sample reports in {SAMPLES_DIR}.")
    return pairs


def synthetic_reports(n: int, seed: int = 0) -> list[str]:
    """``n`` reports of varied length (a few long enough to need several windows)."""
    rng = random.Random(seed)
    pairs = sample_sentences()
    reports = []
    for _ in range(n):
        # Mostly ordinary reports; about 1 in 10 is a long multi-study report.
        k = rng.randint(3, 14) if rng.random() > 0.1 else rng.randint(60, 160)
        chosen = [rng.choice(pairs) for _ in range(k)]
        sections: dict[str, list[str]] = {}
        for header, sentence in chosen:
            sections.setdefault(header, []).append(sentence)
        reports.append("\n\n".join(f"{h}:\n" + " ".join(s) for h, s in sections.items()))
    return reports


def cmc_reports(path: Path, n: int) -> list[str]:
    texts = [report.text for report in read_cmc(path)]
    if not texts:
        raise ValueError(f"No <doc> in {path}.")
    return list(itertools.islice(itertools.cycle(texts), n))


def matmul_flops(size: int = 1024, seconds: float = 1.0) -> float:
    """FLOP/s of a plain fp32 ``torch.matmul`` of two size x size matrices."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(a, b)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.matmul(a, b)
        calls += 1
    return 2.0 * size**3 * calls / (time.perf_counter() - start)


def matmul_params(model: torch.nn.Module) -> int:
    """Parameters that take part in matmuls (embedding tables are lookups, not FLOPs)."""
    embeddings = sum(p.numel() for name, p in model.named_parameters() if "embeddings" in name)
    return sum(p.numel() for p in model.parameters()) - embeddings


@dataclass
class Timing:
    name: str
    reports: int
    seconds: float
    tokens: int
    padded: int
    batches: int

    @property
    def reports_per_s(self) -> float:
        return self.reports / self.seconds


def time_engine(name: str, engine: BatchEngine, reports: Sequence[str]) -> Timing:
    engine.run(list(reports[:4]))  # warm-up
    before = (engine.stats.real_tokens, engine.stats.padded_tokens, engine.stats.batches)
    start = time.perf_counter()
    results = engine.run(reports)
    seconds = time.perf_counter() - start
    failed = sum(1 for r in results if not hasattr(r, "vectors"))
    if failed:
        raise RuntimeError(f"{name}: {failed} reports failed")
    return Timing(name, len(reports), seconds, engine.stats.real_tokens - before[0],
                  engine.stats.padded_tokens - before[1], engine.stats.batches - before[2])


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def stream_reports(reports: Sequence[str], count: int) -> Iterator[str]:
    return itertools.islice(itertools.cycle(reports), count)


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(c).rjust(w) for c, w in zip(r, widths, strict=True))
             for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=96, help="reports per timed run")
    parser.add_argument("--cmc", type=Path, default=None,
                        help="read reports from this CMC 2007 XML (e.g. "
                             "../shared/data/cmc2007_train.xml) instead of synthetic ones")
    parser.add_argument("--model", type=Path, default=None,
                        help="model folder (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument("--budget", type=int, default=8192, help="max_batch_tokens")
    parser.add_argument("--stream-counts", default="100,300,900",
                        help="comma-separated report counts to stream for peak RSS")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    reports = cmc_reports(args.cmc, args.n) if args.cmc else synthetic_reports(args.n, args.seed)
    source = str(args.cmc) if args.cmc else f"synthetic from {SAMPLES_DIR.name}/"
    fp32 = BatchEngine.from_pretrained(args.model, BatchEngineConfig(
        max_batch_tokens=args.budget, device="cpu", precision="fp32"))
    single = BatchEngine(fp32.model, fp32.tokenizer, BatchEngineConfig(
        max_batch_tokens=args.budget, device="cpu", max_batch_size=1))
    int8 = BatchEngine(fp32.model, fp32.tokenizer, BatchEngineConfig(
        max_batch_tokens=args.budget, device="cpu", precision="int8"))
    params = matmul_params(fp32.model)
    n_tokens = [len(ids) for ids in fp32.tokenizer(reports)["input_ids"]]
    print(f"{len(reports)} reports ({source}); tokens/report mean "
          f"{sum(n_tokens) / len(n_tokens):.0f}, max {max(n_tokens)}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{params / 1e6:.1f}M matmul params")

    peak = matmul_flops()
    timings = [
        time_engine("fp32, batch size 1", single, reports),
        time_engine(f"fp32, budget {args.budget} tokens", fp32, reports),
        time_engine(f"int8, budget {args.budget} tokens", int8, reports),
    ]
    rows = []
    for t in timings:
        flops = 2.0 * params * t.tokens / t.seconds
        rows.append([t.name, f"{t.reports_per_s:.1f}", f"{t.tokens / t.seconds:.0f}",
                     f"{t.batches}", f"{t.padded / max(t.tokens, 1):.2f}",
                     f"{flops / 1e9:.1f}", f"{flops / peak:.0%}"])
    print()
    print(format_table(["engine", "reports/s", "tokens/s", "batches", "padded/real",
                        "model GFLOP/s", "of matmul"], rows))
    print(f"(plain fp32 torch.matmul 1024x1024: {peak / 1e9:.1f} GFLOP/s; model FLOP/s = "
          "2 x matmul params x real tokens / s, attention scores not counted)")

    rss_rows = [["(after loading + timing)", "", f"{peak_rss_mib():.0f}"]]
    for count in (int(c) for c in args.stream_counts.split(",") if c.strip()):
        start = time.perf_counter()
        done = sum(1 for _ in fp32.stream(stream_reports(reports, count)))
        seconds = time.perf_counter() - start
        rss_rows.append([str(done), f"{done / seconds:.1f}", f"{peak_rss_mib():.0f}"])
    print()
    print(format_table(["streamed reports (fp32)", "reports/s", "peak RSS MiB"], rss_rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
