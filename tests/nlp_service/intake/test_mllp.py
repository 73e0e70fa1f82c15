"""The MLLP listener on a real socket, fed by the ``hl7`` package's MLLPClient."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import hl7
import pytest
from hl7.client import MLLPClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from nlp_service.intake.client import SAMPLES_DIR, read_messages, split_messages
from nlp_service.intake.mllp import (
    END_BLOCK,
    START_BLOCK,
    BackgroundMLLPServer,
    FrameReader,
    MLLPServer,
    frame,
    tls_context,
)
from nlp_service.storage.models import DeadLetter, InboxMessage


@pytest.fixture
def listener(engine: Engine) -> Iterator[MLLPServer]:
    with BackgroundMLLPServer(MLLPServer(engine, port=0, max_bytes=50_000)) as server:
        yield server


def _ack_fields(ack: str) -> tuple[str, str]:
    msa = hl7.parse(ack).segment("MSA")
    return str(msa[1]), str(msa[2])


def test_all_samples_on_one_connection_get_aa_and_are_stored(
        listener: MLLPServer, engine: Engine) -> None:
    messages = list(read_messages(sorted(SAMPLES_DIR.glob("*.hl7"))))
    assert len(messages) >= 20
    with MLLPClient("127.0.0.1", listener.port) as client:
        acks = [client.send_message(message) for _, message in messages]
    expected_ids = [hl7.parse(message).segment("MSH")[10][0] for _, message in messages]
    assert [_ack_fields(ack.decode()) for ack in acks] == [("AA", str(i)) for i in expected_ids]
    with Session(engine) as session:
        stored = session.exec(select(InboxMessage.control_id)).all()
    assert sorted(stored) == sorted(str(i) for i in expected_ids)


def test_bad_message_is_answered_and_the_connection_stays_open(
        listener: MLLPServer, engine: Engine, oru: Callable[..., str]) -> None:
    with MLLPClient("127.0.0.1", listener.port) as client:
        bad = client.send_message("MSH|^~\\&|X|Y|Z|W|2026||ADT^A01|ADT1|P|2.5.1\rPID|1\r")
        good = client.send_message(oru("OK1", "ACC-OK1", ["FINDINGS: No effusion."]))
        duplicate = client.send_message(oru("OK1", "ACC-OK1", ["FINDINGS: No effusion."]))
    assert _ack_fields(bad.decode()) == ("AR", "ADT1")
    assert hl7.parse(bad.decode()).segment("ERR")
    assert _ack_fields(good.decode()) == ("AA", "OK1")
    assert _ack_fields(duplicate.decode()) == ("AA", "OK1")
    with Session(engine) as session:
        assert session.exec(select(InboxMessage.control_id)).all() == ["OK1"]
        assert session.exec(select(DeadLetter.control_id)).all() == ["ADT1"]


def test_oversized_block_is_refused_without_dropping_the_connection(
        listener: MLLPServer, engine: Engine, oru: Callable[..., str]) -> None:
    huge = oru("HUGE1", "ACC-H", ["x" * 200] * 400)  # about 100 kB, over the 50 kB limit
    with socket.create_connection(("127.0.0.1", listener.port), timeout=30) as sock:
        sock.sendall(START_BLOCK + huge.encode() + END_BLOCK)
        first = _read_frame(sock)
        sock.sendall(START_BLOCK + oru("AFTER1", "ACC-A", ["No effusion."]).encode()
                     + END_BLOCK)
        second = _read_frame(sock)
    assert _ack_fields(first)[0] == "AR"
    assert _ack_fields(second) == ("AA", "AFTER1")
    with Session(engine) as session:
        letter = session.exec(select(DeadLetter)).one()
    assert letter.raw == huge.encode()[:50_000]
    assert "exceeds" in letter.reason


def _read_frame(sock: socket.socket) -> str:
    data = b""
    while not data.endswith(END_BLOCK):
        chunk = sock.recv(65536)
        assert chunk, "connection closed before the ACK"
        data += chunk
    return data[1:-2].decode()


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 1000])
def test_frame_reader_reassembles_blocks_split_anywhere(chunk_size: int) -> None:
    stream = (b"noise" + START_BLOCK + b"MSH|one" + END_BLOCK + START_BLOCK + b"MSH|two\r"
              + END_BLOCK + b"\r\n" + START_BLOCK + b"MSH|" + b"3" * 40 + END_BLOCK)
    reader = FrameReader(max_bytes=20)
    payloads = []
    for i in range(0, len(stream), chunk_size):
        payloads += reader.feed(stream[i:i + chunk_size])
    assert [(p.data, p.size) for p in payloads] == [
        (b"MSH|one", 7), (b"MSH|two\r", 8), ((b"MSH|" + b"3" * 40)[:20], 44)]


def test_split_messages_handles_batches_and_line_endings() -> None:
    text = "MSH|^~\\&|A\nPID|1\n\nMSH|^~\\&|B\r\nPID|2\r\n"
    assert split_messages(text) == ["MSH|^~\\&|A\rPID|1\r", "MSH|^~\\&|B\rPID|2\r"]


def _answer(sock: socket.socket) -> bytes:
    """What the listener sends back; b"" when it closes (or resets) the connection."""
    try:
        return sock.recv(1024)
    except ConnectionResetError:
        return b""


def test_only_allowed_sources_may_connect(engine: Engine, oru: Callable[..., str]) -> None:
    refusing = MLLPServer(engine, port=0, allowed_sources="10.1.2.0/24, ::1")
    with BackgroundMLLPServer(refusing) as listener, \
            socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(frame(oru("DENY1", "ACC-D", ["No effusion."])))
        assert _answer(sock) == b""
    allowing = MLLPServer(engine, port=0, allowed_sources=["127.0.0.0/8"])
    with BackgroundMLLPServer(allowing) as listener, \
            MLLPClient("127.0.0.1", listener.port) as client:
        ack = client.send_message(oru("ALLOW1", "ACC-A", ["No effusion."])).decode()
    assert _ack_fields(ack) == ("AA", "ALLOW1")
    with Session(engine) as session:
        assert session.exec(select(InboxMessage.control_id)).all() == ["ALLOW1"]
    with pytest.raises(ValueError):
        MLLPServer(engine, allowed_sources="not-an-address")


def test_tls_listener(engine: Engine, tmp_path: Path, oru: Callable[..., str]) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server = MLLPServer(engine, port=0, ssl_context=tls_context(str(cert), str(key)))
    with BackgroundMLLPServer(server) as listener:
        client_context = ssl.create_default_context(cafile=str(cert))
        with socket.create_connection(("localhost", listener.port), timeout=10) as raw, \
                client_context.wrap_socket(raw, server_hostname="localhost") as sock:
            assert sock.version() in ("TLSv1.2", "TLSv1.3")
            sock.sendall(frame(oru("TLS1", "ACC-T", ["No effusion."])))
            assert _ack_fields(_read_frame(sock)) == ("AA", "TLS1")
        with socket.create_connection(("localhost", listener.port), timeout=10) as plain:
            plain.sendall(frame(oru("PLAIN1", "ACC-P", ["No effusion."])))
            # A plain-text sender gets no ACK (a TLS alert at most).
            assert b"MSA" not in _answer(plain)
    with Session(engine) as session:
        assert session.exec(select(InboxMessage.control_id)).all() == ["TLS1"]
