"""Measurements ("6 mm", "1.2 x 0.8 cm", "up to 6 mm", "subcentimeter", "15 mL") on findings."""

from __future__ import annotations

import re
from dataclasses import dataclass

from spacy.language import Language
from spacy.tokens import Doc, Span

from pipelines.spans import overlapping, sentence_bounds

MAX_FINDING_TOKENS = 16  # longer findings are not looked up by position

NUMBER = r"\d+(?:\.\d+)?|\.\d+"
UNITS = {"mm": "mm", "millimeter": "mm", "millimeters": "mm", "cm": "cm", "centimeter": "cm",
         "centimeters": "cm", "ml": "mL", "cc": "mL", "cm3": "mL", "milliliters": "mL",
         "milliliter": "mL", "m": "m"}
QUALIFIERS = {"up to": "up to", "less than": "less than", "under": "less than", "<": "less than",
              "greater than": "greater than", "more than": "greater than", ">": "greater than",
              "over": "greater than"}
MEASUREMENT_PATTERN = re.compile(
    rf"""(?ix)
    (?:(?P<qualifier>up\ to|less\ than|under|greater\ than|more\ than|over|<|>)\s*)?
    (?P<dims>(?:{NUMBER})(?:\s*(?:mm|cm)?\s*(?:x|×|by)\s*(?:{NUMBER}))*)
    \s*(?P<unit>millimeters?|centimeters?|milliliters?|mm|cm3|cm|ml|cc|m)\b
    |(?P<subcm>sub-?\s?centimeter|sub-?cm)
    """
)
DIMENSION_SPLIT = re.compile(r"\s*(?:mm|cm)?\s*(?:x|×|by)\s*", re.I)


@dataclass(frozen=True)
class MeasurementMatch:
    """A size or volume in the text; ``value`` is the largest dimension."""

    start_char: int
    end_char: int
    text: str
    value: float
    unit: str
    dimensions: tuple[float, ...]
    qualifier: str | None = None


def find_measurements(text: str) -> list[MeasurementMatch]:
    """Every measurement in ``text``, in order."""
    found = []
    for match in MEASUREMENT_PATTERN.finditer(text):
        if match.group("subcm"):
            found.append(MeasurementMatch(match.start(), match.end(), match.group(), 1.0, "cm",
                                          (), "subcentimeter"))
            continue
        dimensions = tuple(float(x) for x in DIMENSION_SPLIT.split(match.group("dims")))
        qualifier = match.group("qualifier")
        found.append(MeasurementMatch(
            match.start(), match.end(), match.group(), max(dimensions),
            UNITS[match.group("unit").lower()], dimensions if len(dimensions) > 1 else (),
            QUALIFIERS[qualifier.lower()] if qualifier else None,
        ))
    return found


class MeasurementAttacher:
    """Finds measurements and attaches each to the nearest finding in its sentence."""

    def __init__(self, nlp: Language, name: str, *, max_distance: int = 12) -> None:
        self.name = name
        self.max_distance = max_distance

    def __call__(self, doc: Doc) -> Doc:
        doc._.measurements = find_measurements(doc.text)
        ents = list(doc.ents)
        ent_starts = [ent.start for ent in ents]
        for finding in ents:
            finding._.measurements = []
        for measurement in doc._.measurements:
            located = doc.char_span(measurement.start_char, measurement.end_char,
                                    alignment_mode="expand")
            if located is None:
                continue
            nearest = self._nearest_finding(located, ents, ent_starts)
            if nearest is not None:
                nearest._.measurements.append(measurement)
        return doc

    def _nearest_finding(self, span: Span, ents: list[Span],
                         ent_starts: list[int]) -> Span | None:
        starts, _ = sentence_bounds(span.doc)
        sentence = starts[span.start]
        window = overlapping(ents, ent_starts, span.start - self.max_distance,
                             span.end + self.max_distance, max_length=MAX_FINDING_TOKENS)
        candidates = [ent for ent in window
                      if starts[ent.start] == sentence and not ent._.is_negated]
        best, best_distance = None, self.max_distance + 1
        for ent in candidates:
            # A measurement usually precedes its finding ("6 mm nodule") or follows it closely
            # ("nodule measuring 6 mm"); prefer the following finding on ties.
            distance = ent.start - span.end if ent.start >= span.end else span.start - ent.end + 1
            if distance < best_distance:
                best, best_distance = ent, distance
        return best
