"""The lexicon: concepts (findings, anatomy, modalities, body regions) loaded from JSON Lines."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Kind = Literal["finding", "anatomy", "modality", "body_region"]
KINDS: tuple[Kind, ...] = get_args(Kind)
FINDING_REGIONS = frozenset(
    {"chest", "abdomen", "neuro", "msk", "vascular", "breast", "thyroid", "general"}
)
RESOURCES = Path(__file__).parent / "resources"
FILE_OF_KIND: dict[Kind, str] = {
    "finding": "findings.jsonl",
    "anatomy": "anatomy.jsonl",
    "modality": "modalities.jsonl",
    "body_region": "body_regions.jsonl",
}


class Concept(BaseModel):
    """One lexicon concept with its surface forms and codes (``None`` where none is verified)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9]+(_[a-z0-9]+)*$")
    name: str = Field(min_length=1)
    kind: Kind
    region: str | None = None
    synonyms: tuple[str, ...] = ()
    laterality: Literal["left", "right"] | None = None
    parent: str | None = None
    code: str | None = None
    radlex: str | None = Field(default=None, pattern=r"^RID\d+$")
    radlex_name: str | None = None
    snomed: str | None = Field(default=None, pattern=r"^\d+$")
    snomed_display: str | None = None
    snomed_source: str | None = None

    @field_validator("name")
    @classmethod
    def _name_is_lowercase(cls, name: str) -> str:
        if name != name.lower():
            raise ValueError(f"preferred name must be lowercase: {name!r}")
        return name

    @field_validator("synonyms")
    @classmethod
    def _synonyms_not_blank(cls, synonyms: tuple[str, ...]) -> tuple[str, ...]:
        if any(not s.strip() for s in synonyms):
            raise ValueError("synonyms must not be blank")
        return synonyms

    @property
    def surface_forms(self) -> tuple[str, ...]:
        """The preferred name and synonyms, without case-insensitive repeats."""
        seen: set[str] = set()
        forms = []
        for form in (self.name, *self.synonyms):
            if form.lower() not in seen:
                seen.add(form.lower())
                forms.append(form)
        return tuple(forms)


class Lexicon:
    """All concepts, indexed by id and kind."""

    def __init__(self, concepts: Iterable[Concept]) -> None:
        self.concepts: list[Concept] = list(concepts)
        self._by_id: dict[str, Concept] = {}
        for concept in self.concepts:
            if concept.id in self._by_id:
                raise ValueError(f"duplicate concept id {concept.id!r}")
            self._by_id[concept.id] = concept
        self._by_kind: dict[str, list[Concept]] = {kind: [] for kind in KINDS}
        for concept in self.concepts:
            self._by_kind[concept.kind].append(concept)
        self._check_references()

    def _check_references(self) -> None:
        region_ids = {c.id for c in self._by_kind["body_region"]}
        for concept in self.concepts:
            if concept.parent is not None and concept.parent not in self._by_id:
                raise ValueError(f"{concept.id}: unknown parent {concept.parent!r}")
            if concept.kind == "finding" and concept.region not in FINDING_REGIONS:
                raise ValueError(f"{concept.id}: finding region {concept.region!r} is not one "
                                 f"of {sorted(FINDING_REGIONS)}")
            if concept.kind == "anatomy" and region_ids and concept.region not in region_ids:
                raise ValueError(f"{concept.id}: anatomy region {concept.region!r} is not a "
                                 "body region id")

    def __len__(self) -> int:
        return len(self.concepts)

    def of_kind(self, kind: Kind) -> list[Concept]:
        """Concepts of one kind (``KeyError`` for an unknown kind)."""
        return list(self._by_kind[kind])

    def get(self, concept_id: str) -> Concept:
        """The concept with this id (``KeyError`` if unknown)."""
        return self._by_id[concept_id]

    def terms(self, kind: Kind | None = None) -> Iterator[tuple[str, Concept]]:
        """Every surface form with its concept, for one kind or all."""
        for concept in self._by_kind[kind] if kind else self.concepts:
            for form in concept.surface_forms:
                yield form, concept


def read_concepts(path: Path, kind: Kind) -> Iterator[tuple[int, Concept]]:
    """(line number, concept) from one JSON Lines file; ``ValueError`` naming file and line."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                concept = Concept.model_validate(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: invalid JSON: {error}") from error
            except ValidationError as error:
                raise ValueError(f"{path}, line {number}: invalid concept: {error}") from error
            if concept.kind != kind:
                raise ValueError(f"{path}, line {number}: kind {concept.kind!r} in a file of "
                                 f"{kind!r} concepts")
            yield number, concept


@functools.cache
def load_lexicon(path_dir: str | Path | None = None) -> Lexicon:
    """The lexicon in ``path_dir`` (the shipped one by default); files absent there are empty."""
    folder = Path(path_dir) if path_dir is not None else RESOURCES
    paths = {kind: folder / name for kind, name in FILE_OF_KIND.items()}
    if not any(path.is_file() for path in paths.values()):
        raise ValueError(f"{folder}: no lexicon files ({', '.join(FILE_OF_KIND.values())})")
    where: dict[str, str] = {}
    concepts = []
    for kind, path in paths.items():
        if not path.is_file():
            continue
        for number, concept in read_concepts(path, kind):
            if concept.id in where:
                raise ValueError(f"{path}, line {number}: duplicate id {concept.id!r} "
                                 f"(first at {where[concept.id]})")
            where[concept.id] = f"{path.name}, line {number}"
            concepts.append(concept)
    try:
        return Lexicon(concepts)
    except ValueError as error:
        raise ValueError(f"{folder}: {error}") from error
