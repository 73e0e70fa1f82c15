"""Property tests over hostile input: MLLP framing and the whole receive path never raise and
always answer."""

from __future__ import annotations

import hl7
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from nlp_service.intake.mllp import END_BLOCK, START_BLOCK, FrameReader
from nlp_service.intake.receiver import receive_message

# A payload cannot hold the end marker's first byte (0x1C) in valid MLLP.
payloads = st.binary(min_size=1, max_size=300).filter(lambda b: b"\x1c" not in b
                                                      and b.strip() != b"")


@settings(max_examples=300, deadline=None)
@given(st.lists(payloads, min_size=1, max_size=8), st.binary(max_size=20).filter(
    lambda b: b"\x0b" not in b), st.lists(st.integers(min_value=1, max_value=64), min_size=1))
def test_frames_survive_any_chunking(blocks: list[bytes], noise: bytes,
                                     chunks: list[int]) -> None:
    stream = noise + b"".join(START_BLOCK + block + END_BLOCK for block in blocks)
    reader = FrameReader(max_bytes=10_000)
    got, position, turn = [], 0, 0
    while position < len(stream):
        size = chunks[turn % len(chunks)]
        got += reader.feed(stream[position:position + size])
        position, turn = position + size, turn + 1
    assert [p.data for p in got] == blocks


SEGMENTS = ["MSH|^~\\&|RIS|H|RADNLP|H|20260101||ORU^R01|F{n}|P|2.5.1",
            "PID|1||MRN{n}^^^HOSP^MR", "OBR|1||ACC{n}|71250^CT CHEST^CPT4|||20260101||||||||"
            "||||||||||F", "OBX|1|TX|||No effusion \\T\\ no edema.||||||F", "PV1|1|O",
            "ZDS|x", "NTE|1||note", "OBX|2|FT|||a\\.br\\b||||||F"]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(
    st.binary(max_size=400),
    st.text(max_size=400),
    st.lists(st.sampled_from(SEGMENTS), max_size=8).map(lambda s: "\r".join(s)),
    st.lists(st.sampled_from(SEGMENTS), min_size=3, max_size=8).flatmap(
        lambda s: st.tuples(st.just("\r".join(s)), st.integers(0, 200), st.characters())).map(
        lambda t: t[0][:t[1]] + t[2] + t[0][t[1]:]),
))
def test_any_input_gets_an_ack_and_nothing_raises(engine: Engine, raw: bytes | str) -> None:
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    receipt = receive_message(engine, data, source="fuzz", max_bytes=10_000)
    assert receipt.ack_code in ("AA", "AE", "AR")
    msa = hl7.parse(receipt.ack).segment("MSA")
    assert str(msa[1]) == receipt.ack_code
