"""Fill ``radlex``/``radlex_name`` in the lexicon files by exact lookup in a RadLex term list.

Run: ``python -m terminology.build_codes --radlex ../shared/data/radlex_terms.csv``.
The term list is CSV without header: preferred name, RID, parent RID. A concept gets a RID when
its name, else one of its synonyms, else its hand-set ``radlex_name`` hint equals (ignoring case)
a RadLex preferred name that has exactly one RID. Nothing is guessed: no match keeps ``null``,
and a hint that the list lacks stops the run. Running twice changes nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
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


def fill_file(path: Path, radlex: RadLexIndex) -> tuple[int, int]:
    """Rewrite one lexicon file with RadLex codes; returns (concepts with a RID, concepts)."""
    concepts = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    coded = 0
    for concept in concepts:
        found = radlex_for(concept, radlex)
        concept["radlex"], concept["radlex_name"] = found if found else (None, None)
        coded += found is not None
    path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in concepts),
                    encoding="utf-8")
    return coded, len(concepts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--radlex", type=Path, required=True, help="RadLex terms CSV")
    parser.add_argument("--resources", type=Path, default=RESOURCES, help="lexicon folder")
    args = parser.parse_args(argv)
    radlex = read_radlex(args.radlex)
    total_coded = total = 0
    for name in FILE_OF_KIND.values():
        path = args.resources / name
        try:
            coded, count = fill_file(path, radlex)
        except LookupError as error:
            print(f"{path}: {error}", file=sys.stderr)
            return 1
        print(f"{name}: {coded}/{count} with a RadLex RID")
        total_coded, total = total_coded + coded, total + count
    print(f"total: {total_coded}/{total} with a RadLex RID")
    return 0


if __name__ == "__main__":
    sys.exit(main())
