"""Accepting messages: AA only after the commit, duplicates, dead letters, storage failures."""

from __future__ import annotations

from collections.abc import Callable

import hl7
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from nlp_service.intake.hl7 import build_oru, parse_oru
from nlp_service.intake.receiver import content_digest, receive_message
from nlp_service.storage.db import make_engine
from nlp_service.storage.models import DeadLetter, InboxMessage
from nlp_service.worker import Worker
from pipelines.pipeline import RadiologyPipeline

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


# --- What the worker could never store is refused before the AA (issue 17, cases 3 and 4). --

def _message(control_id: str = "MSG-LIMIT", accession: str = "ACC-LIMIT", **fields: str) -> bytes:
    values = {"mrn": "MRN500001", "mrn_authority": "HOSP", "ordering_provider": "",
              "procedure": ("71250", "CT CHEST WITHOUT CONTRAST", "CPT4"), **fields}
    return build_oru(control_id, accession, "\n".join(REPORT), **values).encode()  # type: ignore[arg-type]


OVERLONG = {  # what is too long, as a message carries it, and where the ERR segment points
    "MSH-10": (lambda n: _message(control_id="C" * n), 199, "MSH^1^10"),
    "PID-3.1": (lambda n: _message(mrn="M" * n), 100, "PID^1^3"),
    "PID-3.4": (lambda n: _message(mrn_authority="A" * n), 100, "PID^1^3"),
    "OBR-3": (lambda n: _message(accession="A" * n), 199, "OBR^1^3"),
    "OBR-4.1": (lambda n: _message(procedure=("7" * n, "CT CHEST", "CPT4")), 64, "OBR^1^4"),
    "OBR-16": (lambda n: _message(ordering_provider="P" * n), 300, "OBR^1^16"),
}


@pytest.mark.parametrize("field_name", list(OVERLONG))
def test_a_value_longer_than_its_column_is_refused_ar_and_kept(
        engine: Engine, rules_pipeline: RadiologyPipeline, field_name: str) -> None:
    build, limit, location = OVERLONG[field_name]
    at_limit = receive_message(engine, build(limit), source="test")
    over = build(limit + 1)
    refused = receive_message(engine, over, source="test")
    assert at_limit.ack_code == "AA", at_limit.ack
    assert refused.ack_code == "AR" and not refused.storage_failed
    err = hl7.parse(refused.ack).segment("ERR")
    assert str(err[2]) == location and str(err[3]).startswith("104^")
    assert f"at most {limit} can be stored" in (refused.reason or "")
    with Session(engine) as session:
        letter = session.exec(select(DeadLetter)).one()
    assert letter.raw == over and letter.ack_code == "AR"
    # What was accepted at the limit is stored by the worker (on PostgreSQL too).
    outcome = Worker(engine, rules_pipeline).run_until_empty()
    assert (outcome.done, outcome.failed, outcome.set_aside) == (1, 0, 0), outcome.errors


@pytest.mark.parametrize("where", ["text", "mrn", "accession"])
def test_an_escaped_nul_is_refused_ar_not_failed_in_the_worker(
        engine: Engine, oru: Callable[..., str], where: str) -> None:
    """The escape \\X00\\ decodes to NUL after parsing: no database stores it, so no AA."""
    mark = "QNULQ"  # put in place of the escape once the message is built (it escapes "\\")
    raw = oru("MSG-NUL", "ACC-NUL" + (mark if where == "accession" else ""),
              [f"FINDINGS: Nodule {mark if where == 'text' else ''}5 mm."],
              mrn="MRN500001" + (mark if where == "mrn" else "")
              ).replace(mark, "\\X00\\").encode()
    refused = receive_message(engine, raw, source="test")
    assert refused.ack_code == "AR" and "NUL" in (refused.reason or ""), refused.ack
    with Session(engine) as session:
        assert session.exec(select(DeadLetter.raw)).all() == [raw]
        assert session.exec(select(InboxMessage)).all() == []


def test_a_report_over_the_length_limit_is_refused_ar_not_failed_in_the_worker(
        engine: Engine, oru: Callable[..., str]) -> None:
    long_text = ["IMPRESSION: " + "x" * 150] * 20  # about 3,200 characters
    raw = oru("MSG-LONG", "ACC-LONG", long_text).encode()
    refused = receive_message(engine, raw, source="test", max_report_chars=3000)
    assert refused.ack_code == "AR", refused.ack
    assert "the limit is 3000" in (refused.reason or "")
    assert receive_message(engine, raw, source="test",
                           max_report_chars=4000).ack_code == "AA"
    with Session(engine) as session:
        assert session.exec(select(DeadLetter.control_id)).all() == ["MSG-LONG"]


def test_an_overlong_control_id_is_ar_with_a_dead_letter_never_send_again_later(
        engine: Engine) -> None:
    """An MSH-10 longer than its column (PostgreSQL refused it on insert) is a permanent
    fault: AR and a dead letter, never the transient AE "send it again later"."""
    raw = _message(control_id="C" * 250)
    receipt = receive_message(engine, raw, source="test")
    assert receipt.ack_code == "AR" and not receipt.storage_failed
    with Session(engine) as session:
        letter = session.exec(select(DeadLetter)).one()
    assert letter.control_id == "C" * 199  # its head: the column holds no more


# --- MSH-10 is unique per sender, as HL7 scopes it (issue 17, case 7). ----------------------

def test_the_same_control_id_from_another_sender_is_another_message(engine: Engine) -> None:
    first = _message(control_id="0001", accession="ACC-A")
    from_elsewhere = first.replace(b"MSH|^~\\&|RIS|", b"MSH|^~\\&|OTHER-RIS|").replace(
        b"ACC-A", b"ACC-B")
    assert receive_message(engine, first, source="a").ack_code == "AA"
    assert receive_message(engine, from_elsewhere, source="b").ack_code == "AA"
    # From the first sender again, other content: still refused.
    again = receive_message(engine, first.replace(b"ACC-A", b"ACC-C"), source="a")
    assert again.ack_code == "AR" and "from this sender" in (again.reason or "")
    with Session(engine) as session:
        senders = session.exec(select(InboxMessage.sending_application)
                               .order_by(col(InboxMessage.id))).all()
    assert senders == ["RIS", "OTHER-RIS"]


# --- One decoding path: MSH-18, else UTF-8, else Windows-1252 (issue 17, case 11). ----------

def _with_charset(text: str, charset: str, encoding: str) -> bytes:
    message = build_oru("MSG-CS", "ACC-CS", text, mrn="MRN1")
    header, rest = message.split("\r", 1)
    if charset:
        header += "|" * 6 + charset  # MSH-12 is the last field build_oru writes
    return (header + "\r" + rest).encode(encoding)


@pytest.mark.parametrize(("text", "charset", "encoding"), [
    ("IMPRESSION: \u201cground glass\u201d opacity \u2013 stable.", "", "cp1252"),
    ("IMPRESSION: 6 mm nodule, caf\u00e9.", "", "utf-8"),
    ("\u6240\u898b: \u53f3\u80ba\u4e0a\u8449\u306b6 mm\u306e\u7d50\u7bc0\u3002", "SJIS",
     "shift_jis"),
    ("IMPRESSION: \u0141\u00f3d\u017a.", "8859/2", "iso8859-2"),
])
def test_every_path_reads_the_declared_or_the_usual_character_set(
        engine: Engine, text: str, charset: str, encoding: str) -> None:
    raw = _with_charset(text, charset, encoding)
    assert parse_oru(raw).reports[0].text == text
    receipt = receive_message(engine, raw, source="test")
    assert receipt.ack_code == "AA"
    with Session(engine) as session:
        row = session.exec(select(InboxMessage)).one()
    assert row.parsed is not None and row.parsed["reports"][0]["text"] == text
    assert text in row.raw  # the raw message is kept as the same text (no C1 controls)


@pytest.mark.parametrize(("charset", "reason"), [
    ("KLINGON", "MSH-18 (character set) 'KLINGON' is not supported"),
    ("UNICODE UTF-8", "is not valid UNICODE UTF-8 (MSH-18)"),
])
def test_a_character_set_the_message_does_not_fit_is_refused_and_kept(
        engine: Engine, charset: str, reason: str) -> None:
    raw = _with_charset("IMPRESSION: \u201cstable\u201d.", charset, "cp1252")
    receipt = receive_message(engine, raw, source="test")
    assert receipt.ack_code == "AR" and reason in (receipt.reason or "")
    assert _msa(receipt.ack)[2] == "MSG-CS"
    with Session(engine) as session:
        assert session.exec(select(DeadLetter.raw)).all() == [raw]
