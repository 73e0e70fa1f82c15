"""Property tests over hostile input: MLLP framing and the whole receive path never raise and
always answer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import hl7
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from nlp_service.intake.mllp import END_BLOCK, START_BLOCK, FrameReader
from nlp_service.intake.receiver import receive_message

# A payload cannot hold the end marker's first byte (0x1C) in valid MLLP.
payloads = st.binary(min_size=1, max_size=300).filter(lambda b: b"\x1c" not in b
                                                      and b.strip() != b"")


def test_frames_survive_any_chunking(figures: Callable[[str], None]) -> None:
    cases = 0

    @settings(max_examples=300, deadline=None, database=None)
    @given(st.lists(payloads, min_size=1, max_size=8), st.binary(max_size=20).filter(
        lambda b: b"\x0b" not in b), st.lists(st.integers(min_value=1, max_value=64),
                                             min_size=1))
    def check(blocks: list[bytes], noise: bytes, chunks: list[int]) -> None:
        nonlocal cases
        cases += 1
        stream = noise + b"".join(START_BLOCK + block + END_BLOCK for block in blocks)
        reader = FrameReader(max_bytes=10_000)
        got, position, turn = [], 0, 0
        while position < len(stream):
            size = chunks[turn % len(chunks)]
            got += reader.feed(stream[position:position + size])
            position, turn = position + size, turn + 1
        assert [p.data for p in got] == blocks

    check()
    figures(f"MLLP framing: {cases} generated streams, every block recovered")


SEGMENTS = ["MSH|^~\\&|RIS|H|RADNLP|H|20260101||ORU^R01|F{n}|P|2.5.1",
            "PID|1||MRN{n}^^^HOSP^MR", "OBR|1||ACC{n}|71250^CT CHEST^CPT4|||20260101||||||||"
            "||||||||||F", "OBX|1|TX|||No effusion \\T\\ no edema.||||||F", "PV1|1|O",
            "ZDS|x", "NTE|1||note", "OBX|2|FT|||a\\.br\\b||||||F"]


VALID = "\r".join(SEGMENTS[:4])


def test_any_input_gets_an_ack_and_nothing_raises(engine: Engine,
                                                  figures: Callable[[str], None]) -> None:
    codes: Counter[str] = Counter()

    @settings(max_examples=150, deadline=None, database=None)
    @given(raw=st.one_of(
        st.binary(max_size=400),
        st.text(max_size=400),
        st.lists(st.sampled_from(SEGMENTS), max_size=8).map(lambda s: "\r".join(s)),
        st.lists(st.sampled_from(SEGMENTS), min_size=3, max_size=8).flatmap(
            lambda s: st.tuples(st.just("\r".join(s)), st.integers(0, 200),
                                st.characters())).map(lambda t: t[0][:t[1]] + t[2] + t[0][t[1]:]),
        # A valid message with a few characters inserted (control ids vary, so some pass).
        st.tuples(st.integers(0, 10**6), st.integers(40, len(VALID)), st.text(max_size=3)).map(
            lambda t: VALID.replace("F{n}", f"V{t[0]}")[:t[1]] + t[2]
            + VALID.replace("F{n}", f"V{t[0]}")[t[1]:]),
    ))
    def check(raw: bytes | str) -> None:
        data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
        receipt = receive_message(engine, data, source="fuzz", max_bytes=10_000)
        assert receipt.ack_code in ("AA", "AE", "AR")
        msa = hl7.parse(receipt.ack).segment("MSA")
        assert str(msa[1]) == receipt.ack_code
        codes[receipt.ack_code] += 1

    check()
    figures(f"HL7 receive path: {sum(codes.values())} generated inputs, every one answered "
            f"({', '.join(f'{code} {n}' for code, n in sorted(codes.items()))})")
