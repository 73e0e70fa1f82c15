"""Critical and actionable findings (ACR Actionable Reporting Work Group categories, from the
data file ``resources/critical_findings.json``) and whether their communication is documented
in time: the figures by month, modality and radiologist, with the reports behind each.

A finding is critical when a rule of the table names its concept and it is present, of this
exam (not historical, hypothetical or in the indication), with the change and size the rule
asks for. The communication is the report's first "communication" recommendation (the
pipeline's reading of who, how, when); its time is the stated clock time, placed on the stated
date or the exam's date in the exam's time zone, or else the time the report was issued.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlmodel import Session, col, select

from nlp_service.storage.models import CriticalFinding
from pipelines.schema import FindingOut, RecommendationOut, ReportAnalysis

TABLE_FILE = Path(__file__).parent / "resources" / "critical_findings.json"
Compliance = Literal["in_time", "late", "not_documented"]
COMPLIANCE: tuple[Compliance, ...] = ("in_time", "late", "not_documented")
CriticalGroup = Literal["month", "modality", "radiologist", "category"]


@dataclass(frozen=True)
class CriticalRule:
    id: str
    category: int
    concepts: frozenset[str]
    change_in: frozenset[str] | None = None
    unless_change: frozenset[str] = frozenset()
    min_size_mm: float | None = None
    with_concept: str | None = None


@dataclass(frozen=True)
class CriticalTable:
    """The categories (name, target minutes) and the rules, in order."""

    categories: dict[int, tuple[str, int]]
    rules: list[CriticalRule]

    @classmethod
    def load(cls, path: Path = TABLE_FILE) -> CriticalTable:
        data = json.loads(path.read_text())
        categories = {int(key): (value["name"], int(value["target_minutes"]))
                      for key, value in data["categories"].items()}
        rules = []
        for item in data["rules"]:
            if int(item["category"]) not in categories:
                raise ValueError(f"rule {item['id']!r}: unknown category {item['category']}")
            rules.append(CriticalRule(
                id=item["id"], category=int(item["category"]),
                concepts=frozenset(name.lower() for name in item["concepts"]),
                change_in=frozenset(item["change_in"]) if "change_in" in item else None,
                unless_change=frozenset(item.get("unless_change", ())),
                min_size_mm=item.get("min_size_mm"), with_concept=item.get("with_concept")))
        return cls(categories, sorted(rules, key=lambda rule: rule.category))

    def target_minutes(self, category: int) -> int:
        return self.categories[category][1]


@functools.cache
def critical_table() -> CriticalTable:
    return CriticalTable.load()


@dataclass(frozen=True)
class CriticalMatch:
    finding_index: int
    concept: str
    rule: str
    category: int
    target_minutes: int


def is_current_finding(finding: FindingOut) -> bool:
    """Present, of this exam: not absent or possible, historical, hypothetical or the reason
    for the exam."""
    return (finding.assertion == "present" and not finding.historical
            and not finding.hypothetical and not finding.in_indication)


def critical_findings(analysis: ReportAnalysis,
                      table: CriticalTable | None = None) -> list[CriticalMatch]:
    """The critical findings of ``analysis``, with the rule and category each matches."""
    from nlp_service.storage.reports import largest_size_mm  # storage imports audit

    table = table or critical_table()
    current = [(index, finding) for index, finding in enumerate(analysis.findings)
               if finding.concept is not None and is_current_finding(finding)]
    present = {finding.concept.name.lower() for _, finding in current if finding.concept}
    matches = []
    for index, finding in current:
        assert finding.concept is not None
        name = finding.concept.name.lower()
        for rule in table.rules:
            if name not in rule.concepts or finding.change in rule.unless_change:
                continue
            if rule.change_in is not None and finding.change not in rule.change_in:
                continue
            if rule.with_concept is not None and rule.with_concept.lower() not in present:
                continue
            if rule.min_size_mm is not None:
                size = largest_size_mm(finding)
                if size is None or size < rule.min_size_mm:
                    continue
            matches.append(CriticalMatch(index, finding.concept.name, rule.id, rule.category,
                                         table.target_minutes(rule.category)))
            break
    return matches


def documented_communication(analysis: ReportAnalysis) -> RecommendationOut | None:
    """The report's first documented communication of results, if any."""
    return next((rec for rec in analysis.recommendations if rec.kind == "communication"), None)


def communication_time(communication: RecommendationOut, *, exam_time: datetime | None,
                       issued_at: datetime | None) -> tuple[datetime | None, str | None]:
    """When the communication happened and how that is known: ``stated`` (a clock time in the
    text, on the stated date or else the exam's, in the exam's time zone; a time before the
    exam on the exam's date is the next day), or ``report_issued`` (no time stated: the report
    that documents it bounds it)."""
    details = communication.communication
    if details is not None and details.time is not None and exam_time is not None:
        hour, minute = map(int, details.time.split(":"))
        day = details.date or exam_time.date()
        moment = datetime.combine(day, time(hour, minute), tzinfo=exam_time.tzinfo)
        if details.date is None and moment < exam_time:
            moment += timedelta(days=1)
        return moment, "stated"
    if issued_at is not None:
        return issued_at, "report_issued"
    return None, None


def compliance_of(row: CriticalFinding) -> Compliance:
    if row.communicated_at is None or row.report_time is None:
        return "not_documented"
    delay = row.communicated_at - row.report_time
    return "in_time" if delay <= timedelta(minutes=row.target_minutes) else "late"


def critical_row_values(analysis: ReportAnalysis, *, exam_time: datetime | None,
                        issued_at: datetime | None) -> list[dict[str, Any]]:
    """The ``CriticalFinding`` values of a report version's critical findings (without the
    report's own columns)."""
    matches = critical_findings(analysis)
    if not matches:
        return []
    communication = documented_communication(analysis)
    communicated_at, source = (communication_time(communication, exam_time=exam_time,
                                                  issued_at=issued_at)
                               if communication is not None else (None, None))
    details = None
    if communication is not None:
        details = {"text": communication.text, "start": communication.start,
                   "end": communication.end,
                   **(communication.communication.model_dump(mode="json")
                      if communication.communication else {})}
    return [{"finding_index": match.finding_index, "concept": match.concept,
             "rule": match.rule, "category": match.category,
             "target_minutes": match.target_minutes, "communicated_at": communicated_at,
             "communication_time_source": source, "communication": details}
            for match in matches]


def critical_row_dict(row: CriticalFinding) -> dict[str, Any]:
    delay = (round((row.communicated_at - row.report_time).total_seconds() / 60, 1)
             if row.communicated_at is not None and row.report_time is not None else None)
    return {"id": row.id, "report_id": row.report_id, "accession": row.accession,
            "finding_index": row.finding_index, "concept": row.concept, "rule": row.rule,
            "category": row.category, "target_minutes": row.target_minutes,
            "modality": row.modality, "radiologist": row.radiologist,
            "ordering_provider": row.ordering_provider, "report_time": row.report_time,
            "reported_at": row.reported_at, "communicated_at": row.communicated_at,
            "communication_time_source": row.communication_time_source,
            "minutes_to_communication": delay, "communication": row.communication,
            "observation_id": row.observation_id, "compliance": compliance_of(row)}


def critical_of_report(session: Session, report_id: int) -> list[dict[str, Any]]:
    """The critical findings of one report version, with their verdicts."""
    rows = session.exec(select(CriticalFinding).where(CriticalFinding.report_id == report_id)
                        .order_by(col(CriticalFinding.finding_index))).all()
    return [critical_row_dict(row) for row in rows]


def list_critical(session: Session, *, report_from: datetime | None = None,
                  report_to: datetime | None = None, accession: str | None = None,
                  modality: str | None = None, radiologist: str | None = None,
                  compliance: Compliance | None = None) -> list[CriticalFinding]:
    """The critical findings of current report versions, oldest exam first."""
    query = select(CriticalFinding).where(col(CriticalFinding.is_current).is_(True))
    if report_from is not None:
        query = query.where(col(CriticalFinding.report_time) >= report_from)
    if report_to is not None:
        query = query.where(col(CriticalFinding.report_time) < report_to)
    if accession is not None:
        query = query.where(CriticalFinding.accession == accession)
    if modality is not None:
        query = query.where(CriticalFinding.modality == modality)
    if radiologist is not None:
        query = query.where(CriticalFinding.radiologist == radiologist)
    rows = list(session.exec(query.order_by(col(CriticalFinding.report_time),
                                            col(CriticalFinding.id))))
    return [row for row in rows if compliance is None or compliance_of(row) == compliance]


def _group_key(row: CriticalFinding, group: CriticalGroup) -> str:
    if group == "month":
        return row.report_time.strftime("%Y-%m") if row.report_time else "unknown"
    if group == "category":
        return str(row.category)
    value = row.modality if group == "modality" else row.radiologist
    return value or "unknown"


def communication_compliance(rows: Sequence[CriticalFinding],
                             group: CriticalGroup) -> list[dict[str, Any]]:
    """Per group: critical findings, how many were communicated in time, late, or not
    documented, the rate in time, and the accessions behind each count."""
    groups: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = _group_key(row, group)
        entry = groups.setdefault(key, {
            group: key, "critical": 0, **dict.fromkeys(COMPLIANCE, 0),
            "reports": {name: [] for name in COMPLIANCE}})
        verdict = compliance_of(row)
        entry["critical"] += 1
        entry[verdict] += 1
        if row.accession not in entry["reports"][verdict]:
            entry["reports"][verdict].append(row.accession)
    for entry in groups.values():
        entry["rate_in_time"] = round(entry["in_time"] / entry["critical"], 4)
    return [groups[key] for key in sorted(groups)]
