"""Accepting messages: AA only after the commit, duplicates, dead letters, storage failures."""

from __future__ import annotations

from collections.abc import Callable

import hl7
from sqlalchemy import Engine
from sqlmodel import Session, select

from nlp_service.intake.receiver import content_digest, receive_message
from nlp_service.storage.db import make_engine
from nlp_service.storage.models import DeadLetter, InboxMessage

REPORT = ["FINDINGS: 5 mm nodule in the right upper lobe.", "IMPRESSION: Small nodule."]


def _msa(ack: str) -> list[str]:
    message = hl7.parse(ack)
    return [str(field) for field in message.segment("MSA")]


def test_accepted_message_is_in_the_inbox_when_aa_is_built(engine: Engine,
                                                           oru: Callable[..., str]) -> None:
    raw = oru("MSG0001", "ACC0001", REPORT).encode()
    receipt = receive_message(engine, raw, source="test")
    assert receipt.ack_code == "AA"
    assert _msa(receipt.ack)[1:3] == ["AA", "MSG0001"]
    with Session(engine) as session:
        row = session.exec(select(InboxMessage)).one()
    assert row.id == receipt.inbox_id
    assert (row.control_id, row.status, row.attempts) == ("MSG0001", "pending", 0)
    assert row.raw == raw.decode()


def test_same_message_twice_is_acknowledged_and_stored_once(engine: Engine,
                                                            oru: Callable[..., str]) -> None:
    first = receive_message(engine, oru("MSG0002", "ACC0002", REPORT).encode(), source="a")
    # The same content with LF separators, as a resend by another interface engine.
    again = receive_message(engine, oru("MSG0002", "ACC0002", REPORT, separator="\n").encode(),
                            source="b")
    assert (first.ack_code, again.ack_code) == ("AA", "AA")
    assert again.duplicate and again.inbox_id == first.inbox_id
    with Session(engine) as session:
        assert len(session.exec(select(InboxMessage)).all()) == 1


def test_reused_control_id_with_other_content_is_refused_and_kept(
        engine: Engine, oru: Callable[..., str]) -> None:
    receive_message(engine, oru("MSG0003", "ACC0003", REPORT).encode(), source="a")
    other = oru("MSG0003", "ACC0099", ["Different report."]).encode()
    receipt = receive_message(engine, other, source="a")
    assert receipt.ack_code == "AR"
    assert "already received" in (receipt.reason or "")
    with Session(engine) as session:
        letter = session.exec(select(DeadLetter)).one()
        assert len(session.exec(select(InboxMessage)).all()) == 1
    assert letter.raw == other and letter.control_id == "MSG0003"


def test_malformed_message_gets_a_negative_ack_with_err_and_is_kept(engine: Engine) -> None:
    raw = b"MSH|^~\\&|RIS|H|RADNLP|H|20260101||ORU^R01|BAD0001|P|2.5.1\rOBX|1|TX|||text\r"
    receipt = receive_message(engine, raw, source="test")
    assert receipt.ack_code in ("AE", "AR")
    ack = hl7.parse(receipt.ack)
    assert str(ack.segment("MSA")[2]) == "BAD0001"
    assert ack.segment("ERR")
    with Session(engine) as session:
        letter = session.exec(select(DeadLetter)).one()
        assert session.exec(select(InboxMessage)).all() == []
    assert letter.raw == raw
    assert letter.reason == receipt.reason and letter.ack_code == receipt.ack_code


def test_garbage_and_oversized_input_are_answered_and_kept(engine: Engine,
                                                           oru: Callable[..., str]) -> None:
    garbage = receive_message(engine, b"\x00\xff not hl7 at all", source="test")
    big = oru("BIG0001", "ACC0100", ["x" * 5000]).encode()
    oversized = receive_message(engine, big, source="test", max_bytes=1000)
    assert garbage.ack_code in ("AE", "AR") and oversized.ack_code == "AR"
    assert "exceeds" in (oversized.reason or "")
    with Session(engine) as session:
        letters = session.exec(select(DeadLetter).order_by(DeadLetter.id)).all()
    assert [letter.raw for letter in letters] == [b"\x00\xff not hl7 at all", big]


def test_database_down_answers_ae_never_aa(oru: Callable[..., str]) -> None:
    # Nothing listens on port 1: every connection attempt fails.
    down = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/test",
                       connect_args={"connect_timeout": 2})
    receipt = receive_message(down, oru("MSG0009", "ACC0009", REPORT).encode(), source="t")
    assert receipt.ack_code == "AE" and receipt.storage_failed
    assert str(hl7.parse(receipt.ack).segment("MSA")[2]) == "MSG0009"


def test_digest_ignores_separator_style() -> None:
    assert content_digest("MSH|a\rPID|b\r") == content_digest("MSH|a\r\nPID|b\n\n")
    assert content_digest("MSH|a\rPID|b\r") != content_digest("MSH|a\rPID|c\r")
