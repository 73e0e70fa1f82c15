"""What the intake reads out of an HL7 v2 ORU^R01 message, independent of the HL7 library."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, Literal

AckCode = Literal["AA", "AE", "AR"]
# OBR-25 result status (HL7 table 0123) as stored: preliminary, final, corrected, cancelled.
ResultStatus = Literal["P", "F", "C", "X"]


@dataclass(frozen=True)
class ParsedReport:
    """One OBR group: a radiology report with its order and result metadata."""

    accession: str
    text: str
    result_status: ResultStatus
    placer_number: str | None = None
    procedure_code: str | None = None
    procedure_name: str | None = None
    procedure_system: str | None = None
    modality: str | None = None
    body_region: str | None = None
    observed_at: datetime | None = None
    ordering_provider: str | None = None
    interpreter: str | None = None


@dataclass(frozen=True)
class ParsedMessage:
    """An ORU^R01 message: header, patient identifier, and one report per OBR group."""

    control_id: str
    version: str
    message_type: str
    patient_mrn: str
    patient_mrn_authority: str | None = None
    patient_birth_date: date | None = None
    sending_application: str | None = None
    sending_facility: str | None = None
    message_time: datetime | None = None
    reports: list[ParsedReport] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (times in ISO 8601), read back by ``from_dict``."""
        data = asdict(self)
        data["message_time"] = _iso(self.message_time)
        data["patient_birth_date"] = (self.patient_birth_date.isoformat()
                                      if self.patient_birth_date else None)
        for report, parsed in zip(data["reports"], self.reports, strict=True):
            report["observed_at"] = _iso(parsed.observed_at)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParsedMessage:
        reports = [ParsedReport(**{**report, "observed_at": _time(report["observed_at"])})
                   for report in data["reports"]]
        birth = data.get("patient_birth_date")
        return cls(**{**data, "message_time": _time(data["message_time"]), "reports": reports,
                      "patient_birth_date": date.fromisoformat(birth) if birth else None})


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


class HL7MessageError(ValueError):
    """A message that cannot be accepted, with what the ACK's ERR segment should say.

    ``error_code`` is from HL7 table 0357 (e.g. 100 segment sequence error, 101 required field
    missing, 102 data type error, 200 unsupported message type, 203 unsupported version id,
    207 application internal error); ``ack_code`` is AE (error) or AR (rejected).
    ``segment_sequence`` is which occurrence of ``segment`` (1 for the first OBR, 2 for the next).
    """

    def __init__(self, reason: str, *, ack_code: AckCode = "AE", error_code: int = 207,
                 segment: str | None = None, field_position: int | None = None,
                 segment_sequence: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.ack_code = ack_code
        self.error_code = error_code
        self.segment = segment
        self.field_position = field_position
        self.segment_sequence = segment_sequence
