"""Sending HL7 files over MLLP (``radnlp ingest``), with the ``hl7`` package's MLLP client."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hl7.client import MLLPClient

from nlp_service.intake.hl7 import peek_control_id

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples" / "hl7"
_MESSAGE_START = re.compile(r"(?m)^(?=MSH\|)")


@dataclass(frozen=True)
class Sent:
    """One message sent and the ACK it got."""

    source: str
    control_id: str | None
    ack_code: str
    ack: str


def split_messages(text: str) -> list[str]:
    """The messages of a file: each starts with an MSH segment; segments end with CR."""
    text = text.replace("\x0b", "").replace("\x1c", "")
    messages = []
    for chunk in _MESSAGE_START.split(text):
        segments = [s for s in re.split(r"\r\n|\r|\n", chunk) if s.strip()]
        if segments:
            messages.append("\r".join(segments) + "\r")
    return messages


def ack_code(ack: str) -> str:
    """MSA-1 of an ACK message, or "" if it has none."""
    for segment in re.split(r"[\r\n]+", ack):
        if segment.startswith("MSA"):
            fields = segment.split(segment[3:4] or "|")
            return fields[1] if len(fields) > 1 else ""
    return ""


def read_messages(paths: Iterable[Path]) -> Iterator[tuple[str, str]]:
    """(source, message) for every message of every file."""
    for path in paths:
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        for number, message in enumerate(split_messages(text), 1):
            yield f"{path.name}#{number}", message


def send_messages(messages: Iterable[tuple[str, str]], host: str, port: int,
                  timeout: float = 60.0) -> Iterator[Sent]:
    """Send each message on one kept-open MLLP connection and yield its ACK."""
    with MLLPClient(host, port) as client:
        client.socket.settimeout(timeout)
        for source, message in messages:
            ack = client.send_message(message)
            ack_text = ack.decode("utf-8", "replace") if isinstance(ack, bytes) else str(ack)
            yield Sent(source, peek_control_id(message), ack_code(ack_text), ack_text)
