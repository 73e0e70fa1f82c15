"""Backfill on Ray: reports/s by actor count, one actor's memory, the encoder's FLOP/s, and what
a GPU node would do.

The corpus is the CMC 2007 train and Open-i dev reports (cycled to ``--n``), written as JSON
Lines and backfilled to Parquet by ``nlp_service.backfill`` on a local Ray, once per actor
count (model loading included: it is what a backfill pays once per actor). One actor's memory
and the encoder's work are measured in this process by running the same pipeline over the same
reports: peak RSS, encoder tokens (the batch engines' counts), and the achieved FLOP/s taken as
2 x matmul parameters x tokens per second.

    python -m benchmarks.backfill ../shared/data --n 600 --actors 1,2
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import time
from collections.abc import Sequence
from pathlib import Path
from tempfile import TemporaryDirectory

from benchmarks.batching import format_table, matmul_flops, matmul_params, peak_rss_mib
from nlp_service.backfill import backfill
from pipelines.corpora import read_cmc, read_openi
from pipelines.pipeline import RadiologyPipeline, ReportInput

# A published dense BF16 tensor-core rate, for the projection only (NVIDIA A100 datasheet:
# 312 TFLOP/s); encoder inference at small batch reaches a fraction of it.
A100_BF16_FLOPS = 312e12
ASSUMED_GPU_UTILISATION = 0.25
TARGET_REPORTS, TARGET_HOURS = 50_000_000, 24


def corpus_texts(data: Path, n: int) -> list[str]:
    texts = [r.text for r in read_cmc(data / "cmc2007_train.xml") if r.text.strip()]
    if (data / "openi_dev").is_dir():
        texts += [r.text for r in read_openi(data / "openi_dev") if r.text.strip()]
    return list(itertools.islice(itertools.cycle(texts), n))


def encoder_work(texts: Sequence[str], mode: str) -> tuple[float, int, float, float]:
    """(seconds, encoder tokens, peak RSS MiB, encoder FLOPs) of one pipeline over ``texts``
    in this process: what one actor does. FLOPs are 2 x matmul parameters x tokens, summed
    over the batch engines (the NER model and the assertion classifier)."""
    pipeline = RadiologyPipeline.load(mode)
    engines = [component.engine for _, component in pipeline.nlp.pipeline
               if hasattr(component, "engine")]
    before = [e.stats.real_tokens for e in engines]
    start = time.perf_counter()
    list(pipeline.analyze_stream(ReportInput(str(i), t) for i, t in enumerate(texts)))
    seconds = time.perf_counter() - start
    tokens = [e.stats.real_tokens - b for e, b in zip(engines, before, strict=True)]
    flops = sum(2.0 * matmul_params(e.model) * t for e, t in zip(engines, tokens, strict=True))
    return seconds, sum(tokens), peak_rss_mib(), flops


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="../shared/data")
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--actors", default="1,2")
    parser.add_argument("--mode", choices=("full", "rules"), default="full")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    texts = corpus_texts(args.data, args.n)
    # One actor's work first, before Ray runs in this process, so its peak memory is the
    # pipeline's alone.
    seconds, tokens, rss, flops = encoder_work(texts, args.mode)
    rows = []
    with TemporaryDirectory() as folder:
        corpus = Path(folder) / "corpus.jsonl"
        corpus.write_text("\n".join(json.dumps({"id": f"r{i}", "text": t})
                                    for i, t in enumerate(texts)) + "\n")
        base = None
        for actors in (int(a) for a in args.actors.split(",")):
            began = time.perf_counter()
            counts = backfill(str(corpus), "jsonl", out=Path(folder) / f"out{actors}",
                              mode=args.mode, actors=actors, batch_size=args.batch_size,
                              progress_out=io.StringIO())
            took = time.perf_counter() - began
            rate = counts["analysed"] / took
            base = base or rate
            rows.append([str(actors), str(counts["analysed"]), str(counts["failed"]),
                         f"{took:.1f}", f"{rate:.1f}", f"{rate / base:.2f}x"])
    print(f"backfill on a local Ray, {args.mode} mode, {len(texts)} reports (CMC train + Open-i "
          f"dev), batch {args.batch_size}; time includes Ray start and model loading")
    print(format_table(["actors", "analysed", "failed", "seconds", "reports/s", "vs 1"], rows))
    print(f"\none actor's work in this process: {len(texts) / seconds:.1f} reports/s, peak RSS "
          f"{rss:.0f} MiB")
    if tokens:
        achieved = flops / seconds
        cpu_peak = matmul_flops()
        per_report = flops / len(texts)
        gpu_rate = A100_BF16_FLOPS * ASSUMED_GPU_UTILISATION / per_report
        needed = TARGET_REPORTS / (TARGET_HOURS * 3600)
        print(f"encoder: {tokens / len(texts):.0f} tokens/report over both models, "
              f"{per_report / 1e9:.2f} GFLOP/report; achieved "
              f"{achieved / 1e9:.1f} GFLOP/s (this CPU's plain fp32 matmul: "
              f"{cpu_peak / 1e9:.1f} GFLOP/s)")
        rules_seconds = encoder_work(texts, "rules")[0]
        rules_rate = len(texts) / rules_seconds
        print(f"projection: one A100 (312 TFLOP/s BF16 dense, published) at "
              f"{ASSUMED_GPU_UTILISATION:.0%} utilisation runs the encoder at "
              f"{gpu_rate:,.0f} reports/s; {TARGET_REPORTS:,} reports in {TARGET_HOURS} h need "
              f"{needed:,.0f} reports/s, so the encoder needs {needed / gpu_rate:.2f} GPU(s); "
              f"the rules (spaCy, CPU) run at {rules_rate:.0f} reports/s per core here, so "
              f"about {needed / rules_rate:,.0f} cores beside the GPU(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
