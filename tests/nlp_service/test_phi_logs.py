"""No protected health information in the service's logs: a full run over the samples (and
some refused messages), logged at DEBUG, must not contain an MRN, a patient name or report
text."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import hl7
import pytest
from hl7.client import MLLPClient
from loguru import logger

from nlp_service.core.logging import FORMAT
from nlp_service.intake.client import SAMPLES_DIR, read_messages
from tests.conftest import LiveService


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    sink = io.StringIO()
    handler = logger.add(sink, level="DEBUG", format=FORMAT, backtrace=True, diagnose=False)
    yield sink
    logger.remove(handler)


def _phi(messages: list[str]) -> set[str]:
    """MRNs, patient name parts and report text lines of the messages."""
    found: set[str] = set()
    for raw in messages:
        message = hl7.parse(raw.replace("\n", "\r"))
        for pid in message.segments("PID"):
            found.add(str(pid[3][0][0]))
            found.update(part for part in re.split(r"[\^ ]", str(pid[5])) if len(part) > 2)
        for obx in message.segments("OBX"):
            value = str(obx[5])
            found.update(line.strip() for line in re.split(r"\\\.br\\|[~\n]", value)
                         if len(line.strip()) >= 20)
    return found


def test_a_full_run_logs_no_phi(live_service: LiveService, captured_logs: io.StringIO) -> None:
    messages = [m for _, m in read_messages(sorted(SAMPLES_DIR.glob("*.hl7")))]
    with MLLPClient("127.0.0.1", live_service.mllp_port) as client:
        for message in messages:
            client.send_message(message)
        client.send_message(messages[0])  # a duplicate
        pid = next(s for s in messages[1].split("\r") if s.startswith("PID"))
        # Refused: wrong type, carrying a real PID.
        client.send_message(f"MSH|^~\\&|A|B|C|D|2026||ADT^A01|PHI1|P|2.5.1\r{pid}\r")
    live_service.drain()
    logs = captured_logs.getvalue()
    assert "stored inbox message" in logs and "refused message" in logs  # it did log
    phi = _phi(messages)
    assert len(phi) > 50
    leaked = sorted(item for item in phi if item in logs)
    assert leaked == []
