"""Derive ``resources/playbook_procedures.csv`` (RPID -> modality, body region) from the RadLex
Playbook, so the service never reads the Playbook itself at run time.

Run: ``python -m terminology.build_playbook ../shared/data/radlex_playbook.csv``
(``--radlex`` names the RadLex term list, by default ``radlex_terms.csv`` beside the Playbook).

The Playbook CSV has no header; each row is: RPID, short code, short name, long name, a
Playbook abbreviated name ("CT ABD PELVIS WO & W IVCON"), the same spelled out, a definition
sentence ("A computed tomography RADIOLOGY ORDERABLE imaging procedure focused on the ABDOMEN
..."), and 26 RIDs joined by "|" ("0" where empty). The RID positions, as the RadLex names of the
RIDs found there show: 0 modality, 1 procedure type, 2 population, 3-7 body regions, 8-12
modifiers, 13-14 anatomic focus, 15 laterality, 16-17 reason, 19 technique, 20-21
pharmaceutical, 22-25 views.

- Modality: the vocabulary code of the modality RID when a lexicon modality carries that RID
  (CT, MR, US, MG, PET); else the Playbook's own abbreviation, the first word of the
  abbreviated name, read by ``modality_code`` ("XRAY" -> XR, "RF", "XA", "NM", "PT&CT" -> PT,
  "NM&CT" -> NM); rows without a modality RID use the definition's modality words
  ("radio-fluoroscopy" -> RF). Procedures with imaging guidance by an unnamed modality ("RP",
  "IR") get none.
- Body region: the RadLex names of the body region RIDs read by ``region_name`` ("thorax" ->
  chest, "lumbar vertebral column" -> spine), a known combination by its name
  ("abdomen/pelvis"), others joined with "/" in the order of ``body_regions.jsonl``; when the
  anatomic focus names a region within the single body region, that finer region ("kidney" in
  the abdomen, "heart" in the chest); without a body region RID, the focus's region ("elbow" ->
  upper extremity).
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import Counter
from pathlib import Path

from terminology.lexicon import load_lexicon
from terminology.procedures import PLAYBOOK_COLUMNS, PLAYBOOK_FILE
from terminology.vocabulary import (
    REGION_NAMES,
    concept_region,
    modality_code,
    region_name,
    region_within,
)

RID_COUNT = 26
MODALITY_POSITION = 0
BODY_REGION_POSITIONS = range(3, 8)
FOCUS_POSITIONS = range(13, 15)
DEFINITION_MODALITY = re.compile(r"^\s*(?:An?\s+)?(.*?)\s+RADIOLOGY\b")


def read_radlex_names(path: Path) -> dict[str, str]:
    """RID -> RadLex preferred name, from the term list (name, RID, parent RID; no header)."""
    with path.open(encoding="utf-8", newline="") as rows:
        return {row[1].strip(): row[0].strip() for row in csv.reader(rows) if len(row) >= 2}


def combine_regions(names: list[str]) -> str | None:
    """Region names of one procedure as one: a known combination by its name, else "/"."""
    unique = list(dict.fromkeys(names))
    if not unique:
        return None
    if len(unique) == 1:
        return unique[0]
    parts = {part for name in unique for part in name.split("/")}
    known = next((name for name in sorted(REGION_NAMES) if set(name.split("/")) == parts), None)
    order = {concept_region(c): n for n, c in enumerate(load_lexicon().of_kind("body_region"))}
    return known or "/".join(sorted(parts, key=lambda part: order.get(part, len(order))))


def procedure_modality(rids: list[str], abbreviated: str, definition: str,
                       modality_rids: dict[str, str]) -> str | None:
    rid = rids[MODALITY_POSITION]
    if rid in modality_rids:
        return modality_rids[rid]
    words = abbreviated.split()
    code = modality_code(words[0]) if words else None
    if code is None and rid == "0":
        found = DEFINITION_MODALITY.match(definition)
        code = modality_code(found.group(1)) if found else None
    return code


def procedure_region(rids: list[str], radlex: dict[str, str]) -> str | None:
    def regions(positions: range) -> list[str]:
        names = [region_name(radlex.get(rids[p], "")) for p in positions if rids[p] != "0"]
        return [name for name in names if name]

    body = combine_regions(regions(BODY_REGION_POSITIONS))
    focus = regions(FOCUS_POSITIONS)
    if body is None:
        return combine_regions(focus)
    finer = [name for name in focus if name != body and region_within(name, body)]
    return finer[0] if finer and "/" not in body else body


def build(playbook: Path, radlex_path: Path) -> tuple[list[dict[str, str]], Counter[str]]:
    radlex = read_radlex_names(radlex_path)
    modality_rids = {c.radlex: c.code for c in load_lexicon().of_kind("modality")
                     if c.radlex and c.code}
    rows: list[dict[str, str]] = []
    stats: Counter[str] = Counter()
    with playbook.open(encoding="utf-8", errors="replace", newline="") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row:
                continue
            if len(row) != 8 or not re.fullmatch(r"RPID\d+", row[0].strip()):
                raise ValueError(f"{playbook}, row {number}: expected 8 columns starting with "
                                 f"an RPID, got {row[:2]!r}")
            rids = [rid.strip() for rid in row[7].split("|")][:RID_COUNT]
            rids += ["0"] * (RID_COUNT - len(rids))
            modality = procedure_modality(rids, row[4], row[6], modality_rids)
            region = procedure_region(rids, radlex)
            stats["rows"] += 1
            stats["with modality"] += modality is not None
            stats["with body region"] += region is not None
            if modality is None and region is None:
                continue
            name = (row[2] or row[4] or row[3] or row[5]).strip()
            rows.append({"rpid": row[0].strip(), "name": name, "modality": modality or "",
                         "body_region": region or ""})
    rows.sort(key=lambda r: int(r["rpid"][4:]))
    return rows, stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("playbook", type=Path, help="RadLex Playbook CSV (radlex_playbook.csv)")
    parser.add_argument("--radlex", type=Path, help="RadLex term list CSV (default: "
                        "radlex_terms.csv beside the Playbook)")
    parser.add_argument("--out", type=Path, default=PLAYBOOK_FILE, help="table to write")
    args = parser.parse_args(argv)
    radlex_path = args.radlex or args.playbook.with_name("radlex_terms.csv")
    try:
        rows, stats = build(args.playbook, radlex_path)
    except (OSError, ValueError) as error:
        print(error, file=sys.stderr)
        return 1
    with args.out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=PLAYBOOK_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{stats['rows']} Playbook procedures: {stats['with modality']} with a modality, "
          f"{stats['with body region']} with a body region; {len(rows)} written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
