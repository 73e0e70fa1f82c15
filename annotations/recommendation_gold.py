"""Real gold recommendations: real reports annotated for recommendations only.

The real gold set (``real.jsonl``) was chosen for its findings, so it holds few recommendations.
This set adds real reports chosen for the requests they make, screened by wording that is much
wider than the extractor's grammar (any "suggest", "may", "would", "further", "correlat", ...),
plus reports at random, and annotates their recommendations by the guidelines
(``annotations/gold/GUIDELINES.md``, RECOMMENDATION). Reports already in ``real.jsonl`` are left
out: their recommendations are annotated there.

``python -m annotations.recommendation_gold prepare --out annotations/gold/_work/recs``
    Selects the reports (deterministic) and writes ``batch_N.jsonl`` lines (id, split, source,
    text, empty ``recommendations``) for annotators to fill in as ``annotated_N.jsonl``.

``python -m annotations.recommendation_gold build --work annotations/gold/_work/recs
--annotator NAME --out annotations/gold/real_recommendations.jsonl``
    Checks every annotated line (offsets, vocabulary of each attribute) and writes the set
    sorted by id; any error stops it before anything is written.

``prepare --more`` writes a second round, ``more_N.jsonl`` (annotated as
``more_annotated_N.jsonl``): every other CMC train report with request wording, and every report
of the CMC test file with it plus ``CMC_RANDOM`` of that file without (ids ``cmc-test-...``).

The recommendations of ``real.jsonl`` are annotated by the same guidelines: ``prepare`` also
writes its reports as ``real_batch_N.jsonl``; ``build`` checks ``real_annotated_*.jsonl`` and
replaces the ``recommendations`` of those reports in ``real.jsonl`` (nothing else changes).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from annotations.real_gold import (
    CMC_PREFIX,
    CMC_TEST_PREFIX,
    OPENI_PREFIX,
    SEED,
    SelectedReport,
    citation,
    split_of,
)

REAL_GOLD = Path(__file__).parent / "gold" / "real.jsonl"
OPENI_RANDOM = 20
CMC_SCREENED = 90
CMC_RANDOM = 20
BATCH_SIZE = 105
# Much wider than any extractor: every word a request could hang on, so the selection does not
# inherit the extractor's blind spots.
REQUEST_WORDING = re.compile(
    r"(?i)\b(recommend\w*|suggest\w*|advis\w*|consider\w*|follow[- ]?up|would|could|may|might|"
    r"should|helpful|useful|benefit|further|correlat\w*|comparison with|indicated|obtain\w*|"
    r"repeat|dedicated|evaluat\w*|characteriz\w*|workup|work-up|referr\w*|biopsy|consult\w*|"
    r"discussed|called|notified|communicated)\b")
KINDS = ("imaging", "clinical_correlation", "comparison_with_prior", "consultation",
         "communication")
MODALITIES = ("CT", "MR", "US", "XR", "NM", "PT", "MG", "RF", "XA")
BODY_REGIONS = ("chest", "abdomen", "pelvis", "abdomen/pelvis", "chest/abdomen/pelvis", "head",
                "neck", "head/neck", "spine", "breast", "extremity", "upper extremity",
                "lower extremity", "thyroid", "kidney", "liver", "heart", "whole body")


def _body(text: str, body_start: int) -> str:
    return text[body_start:]


def select(data_dir: Path, seed: int = SEED) -> list[SelectedReport]:
    """Open-i dev reports whose findings/impression have request wording (all of them) and
    ``OPENI_RANDOM`` without; ``CMC_SCREENED`` CMC train reports whose impression has request
    wording and ``CMC_RANDOM`` without; none of them already in ``real.jsonl``."""
    from pipelines.corpora import read_cmc, read_openi

    taken = {json.loads(line)["id"] for line in REAL_GOLD.read_text().splitlines() if line}
    rng = random.Random(f"recommendations-{seed}")
    chosen: list[SelectedReport] = []
    openi = [r for r in read_openi(data_dir / "openi_dev")
             if r.body_start < len(r.text) and f"{OPENI_PREFIX}{r.id}" not in taken]
    hits = [r for r in openi if REQUEST_WORDING.search(_body(r.text, r.body_start))]
    others = [r for r in openi if r not in hits]
    for report in hits + rng.sample(others, OPENI_RANDOM):
        report_id = f"{OPENI_PREFIX}{report.id}"
        chosen.append(SelectedReport(report_id, report.text, citation(report_id) or "", "XR"))
    cmc = [r for r in read_cmc(data_dir / "cmc2007_train.xml")
           if f"{CMC_PREFIX}{r.id}" not in taken]
    cmc_hits = [r for r in cmc if REQUEST_WORDING.search(r.text[r.impression_start:])]
    cmc_others = [r for r in cmc if r not in cmc_hits]
    for cmc_report in (rng.sample(cmc_hits, min(CMC_SCREENED, len(cmc_hits)))
                       + rng.sample(cmc_others, CMC_RANDOM)):
        report_id = f"{CMC_PREFIX}{cmc_report.id}"
        chosen.append(SelectedReport(report_id, cmc_report.text, citation(report_id) or ""))
    rng.shuffle(chosen)
    return chosen


def select_more(data_dir: Path, annotated: set[str], seed: int = SEED) -> list[SelectedReport]:
    """The second round: every CMC train report with request wording not yet annotated, every
    report of the CMC test file with it, and ``CMC_RANDOM`` of that file without."""
    from pipelines.corpora import read_cmc

    taken = annotated | {json.loads(line)["id"]
                         for line in REAL_GOLD.read_text().splitlines() if line}
    rng = random.Random(f"recommendations-more-{seed}")
    chosen: list[SelectedReport] = []
    for prefix, name in ((CMC_PREFIX, "cmc2007_train.xml"),
                         (CMC_TEST_PREFIX, "cmc2007_test_nocodes.xml")):
        reports = [r for r in read_cmc(data_dir / name) if f"{prefix}{r.id}" not in taken]
        hits = [r for r in reports if REQUEST_WORDING.search(r.text[r.impression_start:])]
        extra = (rng.sample([r for r in reports if r not in hits], CMC_RANDOM)
                 if prefix == CMC_TEST_PREFIX else [])
        for report in hits + extra:
            report_id = f"{prefix}{report.id}"
            chosen.append(SelectedReport(report_id, report.text, citation(report_id) or ""))
    rng.shuffle(chosen)
    return chosen


def prepare_more(out: Path, data_dir: Path) -> list[Path]:
    """Write the second round's batches after the first round's (``more_N.jsonl``)."""
    annotated = {json.loads(line)["id"] for path in out.glob("annotated_*.jsonl")
                 for line in path.read_text().splitlines() if line}
    lines: list[dict[str, Any]] = [
        {"id": report.id, "split": split_of(report.id), "source": report.source,
         "modality": report.modality, "text": report.text, "recommendations": []}
        for report in select_more(data_dir, annotated)]
    return _write_batches(out, "more", lines)


def prepare(out: Path, data_dir: Path, *, force: bool = False) -> list[Path]:
    """Write the selection as batches to fill in."""
    out.mkdir(parents=True, exist_ok=True)
    if any(out.glob("batch_*.jsonl")) and not force:
        raise SystemExit(f"{out} already has batches; --force starts again")
    reports = select(data_dir)
    lines: list[dict[str, Any]] = [
        {"id": report.id, "split": split_of(report.id), "source": report.source,
         "modality": report.modality, "text": report.text, "recommendations": []}
        for report in reports]
    real = [json.loads(line) for line in REAL_GOLD.read_text().splitlines() if line]
    return (_write_batches(out, "batch", lines)
            + _write_batches(out, "real_batch", [_upgraded(data) for data in real]))


def _upgraded(data: dict[str, Any]) -> dict[str, Any]:
    """A ``real.jsonl`` line to re-annotate: its recommendations in the current form."""
    recs = [{**{k: v for k, v in rec.items() if k != "modality"}, "kind": "imaging",
             "modalities": [rec["modality"]] if rec.get("modality") else [],
             "next_step": None, "finding": None} for rec in data.get("recommendations", [])]
    return {key: data.get(key) for key in ("id", "split", "source", "modality", "text")} | {
        "recommendations": recs}


def _write_batches(out: Path, name: str, lines: Sequence[dict[str, Any]]) -> list[Path]:
    paths = []
    for number, first in enumerate(range(0, len(lines), BATCH_SIZE), start=1):
        path = out / f"{name}_{number}.jsonl"
        with path.open("w") as handle:
            for line in lines[first:first + BATCH_SIZE]:
                handle.write(json.dumps(line) + "\n")
        paths.append(path)
    return paths


def check_recommendation(rec: Any, text: str, where: str) -> list[str]:
    """What is wrong with one annotated recommendation (empty when nothing)."""
    if not isinstance(rec, dict):
        return [f"{where}: not an object"]
    errors = []
    start, end = rec.get("start"), rec.get("end")
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
        return [f"{where}: bad offsets {start}..{end}"]
    if text[start:end] != rec.get("text"):
        errors.append(f"{where}: text[{start}:{end}] is {text[start:end]!r}, not "
                      f"{rec.get('text')!r}")
    if rec.get("kind") not in KINDS:
        errors.append(f"{where}: kind {rec.get('kind')!r} not in {KINDS}")
    errors += _check_step(rec, where)
    if rec.get("body_region") not in (None, *BODY_REGIONS):
        errors.append(f"{where}: body_region {rec.get('body_region')!r} not in {BODY_REGIONS}")
    if not isinstance(rec.get("conditional"), bool):
        errors.append(f"{where}: conditional must be true or false")
    if not isinstance(rec.get("short_interval", False), bool):
        errors.append(f"{where}: short_interval must be true or false")
    step = rec.get("next_step")
    if step is not None:
        errors += (_check_step(step, f"{where} next_step") if isinstance(step, dict)
                   else [f"{where}: next_step must be an object or null"])
    if rec.get("finding") is not None and not isinstance(rec.get("finding"), str):
        errors.append(f"{where}: finding must be a string or null")
    return errors


def _check_step(step: dict[str, Any], where: str) -> list[str]:
    errors = []
    modalities = step.get("modalities")
    if not isinstance(modalities, list) or any(m not in MODALITIES for m in modalities):
        errors.append(f"{where}: modalities {modalities!r} must be a list of {MODALITIES}")
    low, high = step.get("interval_min_days"), step.get("interval_max_days")
    if (low is None) != (high is None) or (
            low is not None and not (isinstance(low, int) and isinstance(high, int)
                                     and 0 <= low <= high)):
        errors.append(f"{where}: interval {low}..{high} must be two days 0 <= min <= max, "
                      "or both null")
    return errors


def check_line(data: Any, where: str) -> list[str]:
    """What is wrong with one annotated report line."""
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        return [f"{where}: not a report line with text"]
    if data.get("split") != split_of(str(data.get("id"))):
        return [f"{where}: split of {data.get('id')} must be {split_of(str(data.get('id')))}"]
    recs = data.get("recommendations")
    if not isinstance(recs, list):
        return [f"{where}: recommendations must be a list"]
    return [error for number, rec in enumerate(recs)
            for error in check_recommendation(rec, data["text"], f"{where} rec {number}")]


def read_annotated(paths: Iterable[Path]) -> tuple[list[dict[str, Any]], list[str]]:
    lines: list[dict[str, Any]] = []
    errors: list[str] = []
    seen: set[str] = set()
    for path in paths:
        for number, raw in enumerate(path.read_text().splitlines(), start=1):
            if not raw.strip():
                continue
            where = f"{path.name}:{number}"
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as error:
                errors.append(f"{where}: {error}")
                continue
            errors += check_line(data, where)
            if data.get("id") in seen:
                errors.append(f"{where}: {data.get('id')} annotated twice")
            seen.add(data.get("id"))
            lines.append(data)
    return lines, errors


def build(work: Path, annotator: str, out: Path) -> int:
    lines, errors = read_annotated(sorted([*work.glob("annotated_*.jsonl"),
                                           *work.glob("more_annotated_*.jsonl")]))
    real_lines, real_errors = read_annotated(sorted(work.glob("real_annotated_*.jsonl")))
    if errors or real_errors:
        raise SystemExit("\n".join(errors + real_errors))
    if not lines:
        raise SystemExit(f"no annotated_*.jsonl lines in {work}")
    if real_lines:
        _update_real(real_lines)
    with out.open("w") as handle:
        for data in sorted(lines, key=lambda line: line["id"]):
            handle.write(json.dumps({
                "id": data["id"], "split": data["split"], "source": data["source"],
                "modality": data.get("modality"), "text": data["text"],
                "recommendations": data["recommendations"], "annotator": annotator,
                "annotated": "recommendations"}) + "\n")
    return len(lines)


def _update_real(annotated: Sequence[dict[str, Any]]) -> None:
    """Replace the recommendations of ``real.jsonl`` reports by their re-annotation."""
    by_id = {data["id"]: data for data in annotated}
    updated = []
    for raw in REAL_GOLD.read_text().splitlines():
        data = json.loads(raw)
        if data["id"] in by_id:
            if by_id[data["id"]]["text"] != data["text"]:
                raise SystemExit(f"{data['id']}: text differs from real.jsonl")
            data["recommendations"] = by_id[data["id"]]["recommendations"]
        updated.append(json.dumps(data))
    REAL_GOLD.write_text("\n".join(updated) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m annotations.recommendation_gold",
                                     description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="select reports and write batches")
    prep.add_argument("--out", type=Path, required=True)
    prep.add_argument("--data", type=Path, default=Path("../shared/data"))
    prep.add_argument("--force", action="store_true")
    prep.add_argument("--more", action="store_true",
                      help="the second round (CMC train and test reports with request wording)")
    make = commands.add_parser("build", help="check annotated batches and write the set")
    make.add_argument("--work", type=Path, required=True)
    make.add_argument("--annotator", required=True)
    make.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "prepare":
        paths = (prepare_more(args.out, args.data) if args.more
                 else prepare(args.out, args.data, force=args.force))
        for path in paths:
            print(path)
    else:
        print(f"{build(args.work, args.annotator, args.out)} reports -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
