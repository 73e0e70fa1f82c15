"""Fill RadLex (and verified SNOMED CT) codes in the lexicon files by exact lookup.

Run: ``python -m terminology.build_codes --radlex ../shared/data/radlex_terms.csv
--snomed terminology/resources/snomed_verified.csv``.
The term list is CSV without header: preferred name, RID, parent RID. A concept gets a RID when
its name, else one of its synonyms, else its hand-set ``radlex_name`` hint equals (ignoring case)
a RadLex preferred name that has exactly one RID. Nothing is guessed: no match keeps ``null``,
and a hint that the list lacks stops the run. Running twice changes nothing.

SNOMED CT codes come only from ``snomed_verified.csv``: codes seen in a named public source
next to their display. A concept takes a code when the display (without its semantic tag or a
"Structure of" prefix) equals the concept's name, its RadLex name, or (anatomy and findings) one
of its synonyms, and at least one source is not the Belgian imaging-indication value set, which
also lists invalid codes.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

from terminology.lexicon import FILE_OF_KIND, RESOURCES

RadLexIndex = dict[str, tuple[str, str]]


def read_radlex(path: Path) -> RadLexIndex:
    """Lowercased preferred name -> (RID, name as spelled by RadLex); ambiguous names left out."""
    rids_of: dict[str, set[tuple[str, str]]] = {}
    with path.open(encoding="utf-8", newline="") as rows:
        for name, rid, _parent in csv.reader(rows):
            rids_of.setdefault(name.strip().lower(), set()).add((rid.strip(), name.strip()))
    return {key: next(iter(hits)) for key, hits in rids_of.items() if len(hits) == 1}


def radlex_for(concept: dict, radlex: RadLexIndex) -> tuple[str, str] | None:
    """(RID, RadLex name) for a concept: by name, then synonyms, then the ``radlex_name`` hint."""
    hint = concept.get("radlex_name")
    for term in (concept["name"], *concept.get("synonyms", []), *([hint] if hint else [])):
        if term.lower() in radlex:
            return radlex[term.lower()]
    if hint:
        raise LookupError(f"{concept['id']}: radlex_name hint {hint!r} is not in the RadLex list")
    return None


SnomedRow = dict[str, str]
UNTRUSTED_SOURCES = ("ehealth.fgov.be",)


def read_snomed(path: Path) -> dict[str, SnomedRow]:
    """Lowercased display (semantic tag and "Structure of" removed) -> verified row."""
    rows: dict[str, SnomedRow] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            sources = [s.strip() for s in row["source"].split(" ; ") if s.strip()]
            trusted = [s for s in sources if not any(u in s for u in UNTRUSTED_SOURCES)]
            if not trusted:
                continue
            display = re.sub(r"\s*\((?:disorder|finding|body structure|qualifier value|"
                             r"morphologic abnormality)\)$", "", row["snomed_display"])
            display = re.sub(r"^structure of |\s+structure$", "", display.strip().lower())
            rows.setdefault(display, {**row, "source": " ; ".join(trusted)})
    return rows


def snomed_for(concept: dict, snomed: dict[str, SnomedRow]) -> SnomedRow | None:
    """The verified row whose display names this concept, if any."""
    names = [concept["name"], concept.get("radlex_name") or ""]
    if concept["kind"] != "body_region":
        names += concept.get("synonyms", [])
    for name in names:
        if name and name.lower() in snomed:
            return snomed[name.lower()]
    return None


def fill_file(path: Path, radlex: RadLexIndex,
              snomed: dict[str, SnomedRow] | None = None) -> tuple[int, int]:
    """Rewrite one lexicon file with codes; returns (concepts with a RID, concepts)."""
    concepts = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    coded = 0
    for concept in concepts:
        found = radlex_for(concept, radlex)
        concept["radlex"], concept["radlex_name"] = found if found else (None, None)
        coded += found is not None
        if snomed is not None:
            row = snomed_for(concept, snomed)
            concept["snomed"] = row["snomed_code"] if row else None
            concept["snomed_display"] = row["snomed_display"] if row else None
            concept["snomed_source"] = row["source"] if row else None
    path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in concepts),
                    encoding="utf-8")
    return coded, len(concepts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--radlex", type=Path, required=True, help="RadLex terms CSV")
    parser.add_argument("--snomed", type=Path, help="verified SNOMED CT codes CSV")
    parser.add_argument("--resources", type=Path, default=RESOURCES, help="lexicon folder")
    args = parser.parse_args(argv)
    radlex = read_radlex(args.radlex)
    snomed = read_snomed(args.snomed) if args.snomed else None
    total_coded = total = 0
    for name in FILE_OF_KIND.values():
        path = args.resources / name
        try:
            coded, count = fill_file(path, radlex, snomed)
        except LookupError as error:
            print(f"{path}: {error}", file=sys.stderr)
            return 1
        with_snomed = sum('"snomed": "' in line for line in path.read_text().splitlines())
        print(f"{name}: {coded}/{count} with a RadLex RID, {with_snomed} with SNOMED CT")
        total_coded, total = total_coded + coded, total + count
    print(f"total: {total_coded}/{total} with a RadLex RID")
    return 0


if __name__ == "__main__":
    sys.exit(main())
