"""Export and import of annotated reports: gold-form JSON Lines and spaCy ``DocBin``.

In a ``DocBin`` each report is a ``spacy.blank("en")`` doc whose spans are in
``doc.spans["annotations"]`` (token-aligned, expanded outward where the offsets fall inside a
token); everything else, including the exact character offsets of spans that are not token
aligned, is in ``doc.user_data["radnlp.annotations"]``, so a round trip loses nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import spacy
from pydantic import ValidationError
from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span

from annotations.document import AnnotatedReport

SPAN_GROUP = "annotations"
USER_DATA_KEY = "radnlp.annotations"
_SPAN_ATTRIBUTES = ("assertion", "concept", "laterality", "source", "status")


def to_jsonl_text(reports: Iterable[AnnotatedReport]) -> str:
    """Reports in the gold JSON Lines form, one line each."""
    return "".join(_jsonl_line(report) for report in reports)


def write_jsonl(reports: Iterable[AnnotatedReport], path: str | Path) -> int:
    """Write reports in the gold JSON Lines form; return how many were written."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for report in reports:
            out.write(_jsonl_line(report))
            count += 1
    return count


def iter_jsonl_lines(lines: Iterable[str], *,
                     source: str | None = None) -> Iterator[AnnotatedReport]:
    """Stream reports from gold-form JSON lines; errors start with ``{source}:{number}``
    (``line {number}`` without a source)."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{source}:{number}" if source else f"line {number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: not valid JSON: {error}") from error
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
        try:
            yield AnnotatedReport.from_gold_dict(data)
        except ValidationError as error:
            raise ValueError(f"{where}: invalid annotated report: {_describe(error)}") from error


def iter_jsonl(path: str | Path) -> Iterator[AnnotatedReport]:
    """Stream reports from a gold-form JSON Lines file; errors name the file and line."""
    with Path(path).open(encoding="utf-8") as lines:
        yield from iter_jsonl_lines(lines, source=str(path))


def read_jsonl(path: str | Path) -> list[AnnotatedReport]:
    """Read every report of a gold-form JSON Lines file."""
    return list(iter_jsonl(path))


def read_jsonl_text(text: str) -> list[AnnotatedReport]:
    """Read every report of gold-form JSON Lines text; errors name the line."""
    return list(iter_jsonl_lines(text.splitlines()))


def _describe(error: ValidationError) -> str:
    """Pydantic's errors on one line each: field path, then message."""
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'report'}: "
        f"{item['msg'].removeprefix('Value error, ')}" for item in error.errors())


def _jsonl_line(report: AnnotatedReport) -> str:
    return json.dumps(report.to_gold_dict(), ensure_ascii=False) + "\n"


def to_doc(report: AnnotatedReport, nlp: Language) -> Doc:
    """The report as a doc tokenized by ``nlp``, its spans in ``doc.spans["annotations"]``."""
    doc = nlp.make_doc(report.text)
    group: list[Span] = []
    entries: list[dict[str, Any]] = []
    for span in report.spans:
        entry: dict[str, Any] = {name: getattr(span, name) for name in _SPAN_ATTRIBUTES}
        token_span = doc.char_span(span.start, span.end, label=span.label,
                                   alignment_mode="expand")
        entry["grouped"] = token_span is not None
        if token_span is None:
            entry["label"] = span.label
        else:
            group.append(token_span)
        if token_span is None or (token_span.start_char, token_span.end_char) != (span.start,
                                                                                 span.end):
            entry["start"], entry["end"] = span.start, span.end
        entries.append(entry)
    doc.spans[SPAN_GROUP] = group
    doc.user_data[USER_DATA_KEY] = {
        "id": report.id, "split": report.split, "modality": report.modality,
        "model_version": report.model_version, "annotator": report.annotator,
        "spans": entries,
        "recommendations": [rec.model_dump() for rec in report.recommendations],
    }
    return doc


def from_doc(doc: Doc, *, default_id: str = "doc") -> AnnotatedReport:
    """Rebuild a report from a doc made by ``to_doc``.

    A doc without our user data (made by another tool) gives a report of annotator spans from
    ``doc.spans["annotations"]``, with id ``default_id``.
    """
    group = list(doc.spans[SPAN_GROUP]) if SPAN_GROUP in doc.spans else []
    data = doc.user_data.get(USER_DATA_KEY)
    if data is None:
        return AnnotatedReport.model_validate({"id": default_id, "text": doc.text, "spans": [
            {"start": s.start_char, "end": s.end_char, "label": s.label_} for s in group]})
    grouped = iter(group)
    spans = []
    for entry in data["spans"]:
        attributes = {name: entry[name] for name in _SPAN_ATTRIBUTES}
        if entry["grouped"]:
            token_span = next(grouped, None)
            if token_span is None:
                raise ValueError(f"report {data['id']!r}: doc.spans[{SPAN_GROUP!r}] has fewer "
                                 "spans than its user data describes")
            start = entry.get("start", token_span.start_char)
            end = entry.get("end", token_span.end_char)
            label = token_span.label_
        else:
            start, end, label = entry["start"], entry["end"], entry["label"]
        spans.append({"start": start, "end": end, "label": label, **attributes})
    return AnnotatedReport.model_validate({
        "id": data["id"], "text": doc.text, "split": data["split"], "modality": data["modality"],
        "spans": spans, "recommendations": list(data["recommendations"]),
        "model_version": data["model_version"], "annotator": data["annotator"]})


def to_docbin(reports: Iterable[AnnotatedReport]) -> bytes:
    """Serialise reports as a spaCy ``DocBin`` (with user data)."""
    # A fresh pipeline per call: a shared vocab would keep every token string ever exported.
    nlp = spacy.blank("en")
    doc_bin = DocBin(store_user_data=True)
    for report in reports:
        doc_bin.add(to_doc(report, nlp))
    return doc_bin.to_bytes()


def from_docbin(data: bytes) -> list[AnnotatedReport]:
    """Read reports from ``DocBin`` bytes written by ``to_docbin``."""
    doc_bin = DocBin(store_user_data=True).from_bytes(data)
    return [from_doc(doc, default_id=f"doc-{index}")
            for index, doc in enumerate(doc_bin.get_docs(spacy.blank("en").vocab), 1)]
