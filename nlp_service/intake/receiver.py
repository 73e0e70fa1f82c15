"""Accepting one HL7 message: validate, commit to the inbox, then answer with an ACK.

An AA is only ever built after the inbox row is committed; every refusal is kept as a dead
letter with its reason; a storage failure answers AE so the sender keeps the message.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from loguru import logger
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import select

from nlp_service.core.metrics import MESSAGES_ACKED, MESSAGES_DUPLICATE, MESSAGES_RECEIVED
from nlp_service.intake.hl7 import build_ack, parse_oru, peek_control_id
from nlp_service.intake.message import AckCode, HL7MessageError
from nlp_service.storage.db import session_scope
from nlp_service.storage.models import DeadLetter, InboxMessage


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


def decode_message(raw: bytes) -> str:
    """HL7 bytes as text: UTF-8, or Latin-1 (the usual v2 default) when that fails."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def content_digest(text: str) -> str:
    """Digest of a message that ignores segment separator style and trailing blank lines."""
    segments = [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s]
    return hashlib.sha256("\r".join(segments).encode("utf-8")).hexdigest()


def receive_message(engine: Engine, raw: bytes, *, source: str, max_bytes: int = 2_000_000,
                    size: int | None = None) -> Receipt:
    """Validate ``raw``, store it, and return the ACK to send back (counted in metrics)."""
    MESSAGES_RECEIVED.labels(transport=source.split(":", 1)[0]).inc()
    receipt = _receive(engine, raw, source=source, max_bytes=max_bytes, size=size)
    MESSAGES_ACKED.labels(code=receipt.ack_code).inc()
    if receipt.duplicate:
        MESSAGES_DUPLICATE.inc()
    return receipt


def _receive(engine: Engine, raw: bytes, *, source: str, max_bytes: int,
             size: int | None) -> Receipt:
    """``size`` is the message's real size when ``raw`` is only its head (a message too large to
    buffer); such a message is refused and its head kept.
    """
    size = len(raw) if size is None else size
    if size > max_bytes:
        error = HL7MessageError(f"message of {size} bytes exceeds the limit of {max_bytes}",
                                ack_code="AR", error_code=207)
        return _refuse(engine, raw, source, error)
    text = decode_message(raw)
    try:
        message = parse_oru(text)
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
            row = InboxMessage(control_id=message.control_id, sha256=digest, raw=text,
                               parsed=message.to_dict(), source=source)
            session.add(row)
            session.flush()
            inbox_id = row.id
    except IntegrityError:
        return _duplicate(engine, raw, text, source, message.control_id, digest)
    except SQLAlchemyError as exc:
        return _storage_failed(text, message.control_id, exc)
    logger.debug("stored inbox message {} from {}", inbox_id, source)
    return Receipt(ack=build_ack(text, "AA"), ack_code="AA", control_id=message.control_id,
                   inbox_id=inbox_id)


def _duplicate(engine: Engine, raw: bytes, text: str, source: str, control_id: str,
               digest: str) -> Receipt:
    try:
        with session_scope(engine) as session:
            existing = session.exec(select(InboxMessage).where(
                InboxMessage.control_id == control_id)).one_or_none()
    except SQLAlchemyError as exc:
        return _storage_failed(text, control_id, exc)
    if existing is None:  # the clash was not on the control id
        return _storage_failed(text, control_id, RuntimeError("integrity error"))
    if existing.sha256 == digest:
        logger.info("duplicate of inbox message {} acknowledged", existing.id)
        return Receipt(ack=build_ack(text, "AA", text="duplicate; already received"),
                       ack_code="AA", control_id=control_id, inbox_id=existing.id,
                       duplicate=True)
    error = HL7MessageError(f"MSH-10 control id {control_id!r} was already received with "
                            "different content", ack_code="AR", error_code=207,
                            segment="MSH", field_position=10)
    return _refuse(engine, raw, source, error)


def _refuse(engine: Engine, raw: bytes, source: str, error: HL7MessageError) -> Receipt:
    control_id = peek_control_id(raw)
    try:
        with session_scope(engine) as session:
            session.add(DeadLetter(control_id=control_id, raw=raw, source=source,
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
