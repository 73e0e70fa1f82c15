"""ParsedMessage round trip through JSON (how the inbox keeps what the intake parsed)."""

from __future__ import annotations

import json

from nlp_service.intake.client import SAMPLES_DIR, read_messages
from nlp_service.intake.hl7 import parse_oru
from nlp_service.intake.message import ParsedMessage


def test_every_sample_survives_the_json_round_trip() -> None:
    messages = [parse_oru(raw) for _, raw in read_messages(sorted(SAMPLES_DIR.glob("*.hl7")))]
    assert len(messages) >= 20
    for message in messages:
        data = json.loads(json.dumps(message.to_dict()))
        restored = ParsedMessage.from_dict(data)
        assert restored == message
        assert all(r.observed_at is None or r.observed_at.tzinfo for r in restored.reports)
