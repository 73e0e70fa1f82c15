"""The MLLP listener: framed HL7 messages over TCP, one ACK per message, connections kept open.

Framing is ``0x0B message 0x1C 0x0D``. Each message is stored (in a worker thread, so a slow
database never blocks other connections) before its ACK is written back.

Fairness: a connection has one message in work at a time (its next block waits for the ACK),
and large messages are parsed in a pool of their own: four senders of 500 KB messages (seconds
of parsing each) keep that pool busy, never the one small messages go through, so a small
message's ACK does not wait behind them (``benchmarks/intake_fairness.py`` measures it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from loguru import logger
from sqlalchemy import Engine

from nlp_service.intake.receiver import Receipt, receive_message

START_BLOCK = b"\x0b"
# Messages larger than this (tens of OBR groups) are parsed in the large-message pool.
LARGE_MESSAGE_BYTES = 64_000
END_BLOCK = b"\x1c\r"


def frame(message: bytes | str) -> bytes:
    """``message`` wrapped in an MLLP block."""
    data = message.encode("utf-8") if isinstance(message, str) else message
    return START_BLOCK + data + END_BLOCK


@dataclass(frozen=True)
class Payload:
    """One MLLP block: its bytes (only the first ``max_bytes`` when it was too large)."""

    data: bytes
    size: int


class FrameReader:
    """Splits a byte stream into MLLP payloads; bytes outside a block are dropped.

    A block larger than ``max_bytes`` is not buffered whole: its head is kept and its size
    counted, so the listener can refuse it without running out of memory.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buffer = bytearray()
        self._in_block = False
        self._head: bytes | None = None
        self._dropped = 0

    def feed(self, data: bytes) -> list[Payload]:
        """Payloads completed by ``data``."""
        self._buffer.extend(data)
        out: list[Payload] = []
        while True:
            if not self._in_block:
                start = self._buffer.find(START_BLOCK)
                if start < 0:
                    self._buffer.clear()
                    return out
                del self._buffer[:start + 1]
                self._in_block, self._head, self._dropped = True, None, 0
            end = self._buffer.find(END_BLOCK)
            if end < 0:
                if len(self._buffer) > self.max_bytes + 1:
                    if self._head is None:
                        self._head = bytes(self._buffer[:self.max_bytes])
                    # Keep the last byte: it may be the first half of the end marker.
                    self._dropped += len(self._buffer) - 1
                    del self._buffer[:-1]
                return out
            block = bytes(self._buffer[:end])
            del self._buffer[:end + len(END_BLOCK)]
            self._in_block = False
            if self._head is not None:
                out.append(Payload(self._head, self._dropped + len(block)))
            else:
                out.append(Payload(block[:self.max_bytes], len(block)))


class MLLPServer:
    """An asyncio MLLP listener that hands each message to ``receive`` (blocking, threaded)."""

    def __init__(self, engine: Engine, *, host: str = "127.0.0.1", port: int = 2575,
                 max_bytes: int = 2_000_000, threads: int = 4,
                 allowed_sources: str | Sequence[str] = (),
                 ssl_context: ssl.SSLContext | None = None,
                 max_report_chars: int | None = None,
                 large_message_bytes: int = LARGE_MESSAGE_BYTES, large_threads: int = 1) -> None:
        self.engine = engine
        self.host = host
        self.port = port
        self.max_bytes = max_bytes
        self.max_report_chars = max_report_chars
        self.allowed = parse_networks(allowed_sources)
        self.ssl_context = ssl_context
        self.large_message_bytes = large_message_bytes
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mllp")
        self._large_executor = ThreadPoolExecutor(max_workers=large_threads,
                                                  thread_name_prefix="mllp-large")
        self._server: asyncio.Server | None = None
        self.messages_received = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port,
                                                  limit=2**20, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("MLLP listening on {}:{}", self.host, self.port)

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self._executor.shutdown(wait=True)
        self._large_executor.shutdown(wait=True)

    def _receive(self, payload: Payload, source: str) -> Receipt:
        return receive_message(self.engine, payload.data, source=source,
                               max_bytes=self.max_bytes, size=payload.size,
                               max_report_chars=self.max_report_chars)

    def executor_for(self, payload: Payload) -> ThreadPoolExecutor:
        """The pool a message is parsed in: large ones have their own (see the module)."""
        large = self.large_message_bytes < payload.size <= self.max_bytes
        return self._large_executor if large else self._executor

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        source = f"mllp:{peer[0]}" if peer else "mllp"
        if self.allowed and not (peer and _allowed(peer[0], self.allowed)):
            logger.warning("MLLP connection from {} refused: not an allowed source", source)
            writer.close()
            return
        frames = FrameReader(self.max_bytes)
        loop = asyncio.get_running_loop()
        try:
            while data := await reader.read(65536):
                for payload in frames.feed(data):
                    self.messages_received += 1
                    receipt = await loop.run_in_executor(
                        self.executor_for(payload),
                        functools.partial(self._receive, payload, source))
                    writer.write(frame(receipt.ack))
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:  # one bad connection never takes the listener down
            logger.exception("MLLP connection from {} failed", source)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


def parse_networks(sources: str | Sequence[str]) -> list[IPv4Network | IPv6Network]:
    """Allowed sources from "10.0.0.5, 192.168.1.0/24" (or a list); bad entries raise."""
    items = sources.split(",") if isinstance(sources, str) else list(sources)
    return [ip_network(item.strip(), strict=False) for item in items if item.strip()]


def _allowed(address: str, networks: list[IPv4Network | IPv6Network]) -> bool:
    try:
        ip = ip_address(address.split("%")[0])
    except ValueError:
        return False
    return any(ip in network for network in networks if ip.version == network.version)


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2 or later) from PEM files."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


class BackgroundMLLPServer:
    """An MLLP server running on its own event loop in a thread (for tests and tools)."""

    def __init__(self, server: MLLPServer) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="mllp-loop")

    def __enter__(self) -> MLLPServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout=30)
        return self.server

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
