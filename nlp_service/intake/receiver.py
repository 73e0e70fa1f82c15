"""Accepting one HL7 message: validate, commit to the inbox, then answer with an ACK.

An AA is only ever built after the inbox row is committed; every refusal is kept as a dead
letter with its reason; a storage failure answers AE so the sender keeps the message. A message
the worker could never store (a field longer than its column, a report over the length limit)
is refused AR before the AA: a permanent fault is never answered as a transient one, which
would have the sender retry it forever.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from loguru import logger
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlmodel import select

from nlp_service.core.config import settings
from nlp_service.core.metrics import MESSAGES_ACKED, MESSAGES_DUPLICATE, MESSAGES_RECEIVED
from nlp_service.fhir.mapping import mrn_system
from nlp_service.intake.hl7 import build_ack, decode_hl7, parse_oru, peek_control_id
from nlp_service.intake.message import AckCode, HL7MessageError, ParsedMessage
from nlp_service.storage.db import session_scope
from nlp_service.storage.models import (
    DeadLetter,
    FhirSearchToken,
    InboxMessage,
    Report,
    column_length,
)


@dataclass(frozen=True)
class Receipt:
    """The answer to one message and what happened to it."""

    ack: str
    ack_code: AckCode
    control_id: str | None
    inbox_id: int | None = None
    duplicate: bool = False
    reason: str | None = None
    storage_failed: bool = False


class _StoredField(NamedTuple):
    """Where a parsed value comes from in the message and the column the worker stores it in."""

    segment: str
    position: int
    label: str
    column: Any


# A value longer than its column is refused here, before the AA, not found out by the worker
# (PostgreSQL refuses it; the sender, answered AA, would never learn).
_MESSAGE_COLUMNS = {  # ParsedMessage attribute: where it is stored
    "control_id": _StoredField("MSH", 10, "MSH-10 (message control id)",
                               InboxMessage.control_id),
    "sending_application": _StoredField("MSH", 3, "MSH-3 (sending application)",
                                        InboxMessage.sending_application),
    "sending_facility": _StoredField("MSH", 4, "MSH-4 (sending facility)",
                                     InboxMessage.sending_facility),
    "patient_mrn": _StoredField("PID", 3, "PID-3.1 (MRN)", Report.patient_mrn),
    "patient_mrn_authority": _StoredField("PID", 3, "PID-3.4 (assigning authority)",
                                          Report.mrn_authority),
}
_REPORT_COLUMNS = {  # ParsedReport attribute: where it is stored
    "accession": _StoredField("OBR", 3, "the accession (OBR-3, or ORC-3, OBR-2, ...)",
                              Report.accession),
    "placer_number": _StoredField("OBR", 2, "OBR-2 (placer order number)",
                                  Report.placer_number),
    "procedure_code": _StoredField("OBR", 4, "OBR-4.1 (procedure code)", Report.procedure_code),
    "procedure_name": _StoredField("OBR", 4, "OBR-4.2 (procedure name)", Report.procedure_name),
    "procedure_system": _StoredField("OBR", 4, "OBR-4.3 (procedure coding system)",
                                     Report.procedure_system),
    "ordering_provider": _StoredField("OBR", 16, "OBR-16 (ordering provider)",
                                      Report.ordering_provider),
    "interpreter": _StoredField("OBR", 32, "OBR-32 (principal result interpreter)",
                                Report.interpreter),
}


def _too_long(stored: _StoredField, length: int, *, sequence: int = 1) -> HL7MessageError:
    limit = column_length(stored.column)
    return HL7MessageError(f"{stored.label} is {length} characters long; at most {limit} can "
                           "be stored", ack_code="AR", error_code=104, segment=stored.segment,
                           segment_sequence=sequence, field_position=stored.position)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def check_storable(message: ParsedMessage, *, max_report_chars: int) -> None:
    """Raise an AR ``HL7MessageError`` for the first value the worker could never store."""
    # A raw NUL byte is refused by the parser; the escape \X00\ decodes to one after parsing.
    if any("\x00" in text for text in _strings(message.to_dict())):
        raise HL7MessageError("a field decodes to a NUL character (the escape \\X00\\): no "
                              "database stores it", ack_code="AR", error_code=102)
    for attribute, stored in _MESSAGE_COLUMNS.items():
        value = getattr(message, attribute)
        if value is not None and len(value) > column_length(stored.column):
            raise _too_long(stored, len(value))
    # The patient's identifier is also searchable as "system|MRN" (the system names the
    # assigning authority, percent-encoded).
    token = f"{mrn_system(message.patient_mrn_authority)}|{message.patient_mrn}"
    identifier = _StoredField("PID", 3, "PID-3 (MRN with its assigning authority, as a FHIR "
                                        "identifier)", FhirSearchToken.value)
    if len(token) > column_length(identifier.column):
        raise _too_long(identifier, len(token))
    for sequence, report in enumerate(message.reports, 1):  # the n-th OBR group
        for attribute, stored in _REPORT_COLUMNS.items():
            value = getattr(report, attribute)
            if value is not None and len(value) > column_length(stored.column):
                raise _too_long(stored, len(value), sequence=sequence)
        if len(report.text) > max_report_chars:
            # Its OBX lines together: the limit is RADNLP_MAX_REPORT_CHARS, as the worker's.
            raise HL7MessageError(
                f"the report text (OBX-5) of OBR {sequence} is {len(report.text)} characters "
                f"long; the limit is {max_report_chars}", ack_code="AR", error_code=104,
                segment="OBR", segment_sequence=sequence)


def content_digest(text: str) -> str:
    """Digest of a message that ignores segment separator style and trailing blank lines."""
    segments = [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s]
    return hashlib.sha256("\r".join(segments).encode("utf-8")).hexdigest()


def receive_message(engine: Engine, raw: bytes, *, source: str, max_bytes: int = 2_000_000,
                    size: int | None = None, max_report_chars: int | None = None) -> Receipt:
    """Validate ``raw``, store it, and return the ACK to send back (counted in metrics).
    ``max_report_chars`` defaults to the service setting (RADNLP_MAX_REPORT_CHARS)."""
    MESSAGES_RECEIVED.labels(transport=source.split(":", 1)[0]).inc()
    receipt = _receive(engine, raw, source=source, max_bytes=max_bytes, size=size,
                       max_report_chars=max_report_chars or settings.max_report_chars)
    MESSAGES_ACKED.labels(code=receipt.ack_code).inc()
    if receipt.duplicate:
        MESSAGES_DUPLICATE.inc()
    return receipt


def _receive(engine: Engine, raw: bytes, *, source: str, max_bytes: int,
             size: int | None, max_report_chars: int) -> Receipt:
    """``size`` is the message's real size when ``raw`` is only its head (a message too large to
    buffer); such a message is refused and its head kept.
    """
    size = len(raw) if size is None else size
    if size > max_bytes:
        error = HL7MessageError(f"message of {size} bytes exceeds the limit of {max_bytes}",
                                ack_code="AR", error_code=207)
        return _refuse(engine, raw, source, error)
    try:
        text = decode_hl7(raw)
        message = parse_oru(text)
        check_storable(message, max_report_chars=max_report_chars)
    except HL7MessageError as refusal:
        return _refuse(engine, raw, source, refusal)
    except Exception as exc:  # a parser bug must still be answered and kept
        logger.exception("HL7 parser failed")
        return _refuse(engine, raw, source, HL7MessageError(
            f"internal error while parsing: {type(exc).__name__}", ack_code="AE",
            error_code=207))
    digest = content_digest(text)
    try:
        with session_scope(engine) as session:
            row = InboxMessage(control_id=message.control_id,
                               sending_application=message.sending_application or "",
                               sending_facility=message.sending_facility or "",
                               sha256=digest, raw=text, parsed=message.to_dict(), source=source)
            session.add(row)
            session.flush()
            inbox_id = row.id
    except IntegrityError:
        return _duplicate(engine, raw, text, source, message, digest)
    except DataError as exc:  # a value the database refuses: sending it again cannot help
        logger.error("message refused by the database: {}", type(exc.orig).__name__)
        return _refuse(engine, raw, source, HL7MessageError(
            f"a value cannot be stored ({type(exc.orig).__name__})", ack_code="AR",
            error_code=102))
    except SQLAlchemyError as exc:
        return _storage_failed(text, message.control_id, exc)
    logger.debug("stored inbox message {} from {}", inbox_id, source)
    return Receipt(ack=build_ack(text, "AA"), ack_code="AA", control_id=message.control_id,
                   inbox_id=inbox_id)


def _duplicate(engine: Engine, raw: bytes, text: str, source: str, message: ParsedMessage,
               digest: str) -> Receipt:
    """The control id is unique per sender (MSH-3 and MSH-4), as HL7 scopes it."""
    control_id = message.control_id
    try:
        with session_scope(engine) as session:
            existing = session.exec(select(InboxMessage).where(
                InboxMessage.control_id == control_id,
                InboxMessage.sending_application == (message.sending_application or ""),
                InboxMessage.sending_facility == (message.sending_facility or ""),
            )).one_or_none()
    except SQLAlchemyError as exc:
        return _storage_failed(text, control_id, exc)
    if existing is None:  # the clash was not on the control id
        return _storage_failed(text, control_id, RuntimeError("integrity error"))
    if existing.sha256 == digest:
        logger.info("duplicate of inbox message {} acknowledged", existing.id)
        return Receipt(ack=build_ack(text, "AA", text="duplicate; already received"),
                       ack_code="AA", control_id=control_id, inbox_id=existing.id,
                       duplicate=True)
    error = HL7MessageError(f"MSH-10 control id {control_id!r} was already received from this "
                            "sender with different content", ack_code="AR", error_code=207,
                            segment="MSH", field_position=10)
    return _refuse(engine, raw, source, error)


def _refuse(engine: Engine, raw: bytes, source: str, error: HL7MessageError) -> Receipt:
    control_id = peek_control_id(raw)
    try:
        with session_scope(engine) as session:
            # A control id too long to store is the refusal's reason; its head finds it.
            kept_id = control_id[:column_length(DeadLetter.control_id)] if control_id else None
            session.add(DeadLetter(control_id=kept_id, raw=raw, source=source,
                                   ack_code=error.ack_code, error_code=error.error_code,
                                   reason=error.reason))
    except SQLAlchemyError as exc:
        logger.error("dead letter not stored ({}); the sender keeps the message",
                     type(exc).__name__)
        error = HL7MessageError(f"{error.reason}; the message could not be kept",
                                ack_code="AE", error_code=error.error_code,
                                segment=error.segment, field_position=error.field_position)
        return Receipt(ack=build_ack(raw, "AE", error=error), ack_code="AE",
                       control_id=control_id, reason=error.reason, storage_failed=True)
    logger.info("refused message from {}: {} {}", source, error.ack_code, error.error_code)
    return Receipt(ack=build_ack(raw, error.ack_code, error=error), ack_code=error.ack_code,
                   control_id=control_id, reason=error.reason)


def _storage_failed(text: str, control_id: str, exc: Exception) -> Receipt:
    logger.error("inbox unavailable: {}", type(exc).__name__)
    error = HL7MessageError("the message could not be stored; send it again later",
                            ack_code="AE", error_code=207)
    return Receipt(ack=build_ack(text, "AE", error=error), ack_code="AE",
                   control_id=control_id, reason=error.reason, storage_failed=True)
