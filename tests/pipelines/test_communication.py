"""Documented communication of results: who was told, how, when and whether read-back is
noted, read from the sentences the recommendation rules call "communication"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from pipelines.communication import read_communication
from pipelines.schema import ReportAnalysis


@pytest.mark.parametrize(("sentence", "recipient", "method", "day", "time", "read_back"), [
    ("These findings were discussed with Dr. Maria Lopez by telephone at 14:20 on 01/15/2026, "
     "with read-back confirmed.", "Maria Lopez", "telephone", date(2026, 1, 15), "14:20", True),
    ("Findings communicated to the ordering provider via secure message at 3:45 PM.",
     "the ordering provider", "secure_message", None, "15:45", False),
    ("Dr. Smith was notified in person at 0915 hours on January 3, 2026.", "Smith",
     "in_person", date(2026, 1, 3), "09:15", False),
    ("Results called to the emergency department physician at 11:05 pm, who read back the "
     "findings.", "the emergency department physician", "telephone", None, "23:05", True),
    ("Critical result notification documented.", None, None, None, None, False),
    ("The patient's nurse, Jane Doe, RN, was paged at 12:30 am.", "Jane Doe", "page", None,
     "00:30", False),
    ("Discussed with Dr. Ng at 2 pm on 2026-02-03; he repeated back the results.", "Ng", None,
     date(2026, 2, 3), "14:00", True),
])
def test_who_how_when_and_read_back(sentence: str, recipient: str | None, method: str | None,
                                    day: date | None, time: str | None,
                                    read_back: bool) -> None:
    info = read_communication(sentence)
    assert (info.recipient, info.method, info.date, info.time, info.read_back) == (
        recipient, method, day, time, read_back)


@pytest.mark.parametrize("sentence", [
    "Discussed with Dr. Ng at 3.",  # a bare number is no clock time
    "Discussed with Dr. Ng at 25:10.",
    "Discussed with Dr. Ng at 13 pm.",
])
def test_no_clock_time_is_made_up(sentence: str) -> None:
    assert read_communication(sentence).time is None


def test_an_impossible_date_is_left_empty() -> None:
    assert read_communication("Discussed with Dr. Ng at 10:00 on 13/45/2026.").date is None


def test_the_analysis_carries_the_communication(
        analyze: Callable[[str], ReportAnalysis]) -> None:
    analysis = analyze("IMPRESSION: Right tension pneumothorax. Findings discussed with "
                       "Dr. Omar Said by phone at 10:42, read back.\nRecommend follow-up "
                       "chest radiograph in 1 day.")
    kinds = [rec.kind for rec in analysis.recommendations]
    assert kinds == ["communication", "imaging"]
    communication = analysis.recommendations[0].communication
    assert communication is not None and communication.model_dump(mode="json") == {
        "recipient": "Omar Said", "method": "telephone", "date": None, "time": "10:42",
        "read_back": True}
    assert analysis.recommendations[1].communication is None
    assert ReportAnalysis.model_validate_json(analysis.model_dump_json()) == analysis
