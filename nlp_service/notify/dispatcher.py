"""The dispatcher: claims due deliveries like the worker claims inbox messages (a lease, and
``FOR UPDATE SKIP LOCKED`` on PostgreSQL), sends them, and records the outcome.

- At least once: a delivery is marked delivered only after the receiver answered 2xx; a
  dispatcher that dies mid-send leaves a lease that runs out, and the delivery is sent again
  with the same idempotency key (the event id).
- Order per patient: a delivery waits while an earlier one to the same target about the same
  patient is still undelivered (a dead one no longer holds the line).
- Retries back off exponentially with jitter, up to ``max_attempts``; then the delivery is
  dead (a dead letter), which an admin can send again.

Webhooks get the event as JSON, signed: ``X-Radnlp-Signature: sha256=HEX`` where HEX is the
HMAC-SHA256, keyed with the webhook's secret, of ``"{X-Radnlp-Timestamp}.{body}"``.
Subscriptions get what R4 describes for rest-hook: with no ``channel.payload`` an empty POST to
the endpoint; with one, the resource is PUT to ``{endpoint}/{type}/{id}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from loguru import logger
from sqlalchemy import Engine, and_, func, or_, tuple_
from sqlmodel import Session, col, select

from nlp_service.notify.subscriptions import set_subscription_status
from nlp_service.storage.db import session_scope
from nlp_service.storage.fhir_store import current_resource
from nlp_service.storage.models import Delivery, NotificationTarget, OutboxEvent, utcnow

SIGNATURE_HEADER = "X-Radnlp-Signature"
TIMESTAMP_HEADER = "X-Radnlp-Timestamp"
EVENT_HEADER = "X-Radnlp-Event"
IDEMPOTENCY_HEADER = "Idempotency-Key"
UNDELIVERED = ("pending", "delivering")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver checks (constant-time)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits base * 2**(n-1), at most ``cap``,
    times a random factor in [0.5, 1] so receivers coming back are not hit all at once."""

    base_seconds: float = 2.0
    cap_seconds: float = 600.0

    def delay(self, attempts: int) -> float:
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        return ceiling * random.uniform(0.5, 1.0)


@dataclass
class DispatchOutcome:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Send:
    delivery_id: int
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    target_id: int


class Dispatcher:
    """Delivers the outbox's deliveries from ``engine``."""

    def __init__(self, engine: Engine, *, batch_size: int = 32, lease_seconds: float = 60.0,
                 max_attempts: int = 10, backoff: Backoff | None = None,
                 timeout_seconds: float = 10.0, concurrency: int = 8,
                 dispatcher_id: str | None = None,
                 escalate_every_seconds: float | None = None) -> None:
        if batch_size < 1 or max_attempts < 1 or lease_seconds <= 0 or concurrency < 1:
            raise ValueError("batch_size, max_attempts and concurrency must be >= 1 and "
                             "lease_seconds > 0")
        self.engine = engine
        self.batch_size = batch_size
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.backoff = backoff or Backoff()
        self.timeout = timeout_seconds
        self.concurrency = concurrency
        self.dispatcher_id = (dispatcher_id
                              or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}")
        self._client = httpx.Client(timeout=timeout_seconds)
        # How often run_forever writes the escalation schedule's due steps (None: never).
        self.escalate_every = escalate_every_seconds
        self._escalated_at = float("-inf")

    def close(self) -> None:
        self._client.close()

    def claim(self, now: datetime | None = None) -> list[_Send]:
        """Claim due deliveries, at most one per (target, patient) and only the earliest
        undelivered one of each, and build their requests."""
        now = now or utcnow()
        with session_scope(self.engine) as session:
            due = or_(and_(col(Delivery.status) == "pending", col(Delivery.next_attempt_at) <= now),
                      and_(col(Delivery.status) == "delivering", col(Delivery.lease_until) < now))
            rows = list(session.exec(select(Delivery).where(due).order_by(col(Delivery.id))
                                     .limit(self.batch_size * 4)
                                     .with_for_update(skip_locked=True)))
            if not rows:
                return []
            pairs = list({(row.target_id, row.patient_key) for row in rows})
            first = {(target, patient): lowest for target, patient, lowest in session.exec(
                select(Delivery.target_id, Delivery.patient_key, func.min(Delivery.id))
                .where(col(Delivery.status).in_(UNDELIVERED),
                       tuple_(col(Delivery.target_id), col(Delivery.patient_key)).in_(pairs))
                .group_by(col(Delivery.target_id), col(Delivery.patient_key))).all()}
            chosen = [row for row in rows
                      if first.get((row.target_id, row.patient_key)) == row.id][:self.batch_size]
            if not chosen:
                return []
            targets = {t.id: t for t in session.exec(select(NotificationTarget).where(
                col(NotificationTarget.id).in_({row.target_id for row in chosen})))}
            events = {e.id: e for e in session.exec(select(OutboxEvent).where(
                col(OutboxEvent.id).in_({row.event_id for row in chosen})))}
            sends = []
            for row in chosen:
                row.status, row.claimed_by = "delivering", self.dispatcher_id
                row.lease_until = now + self.lease
                row.attempts += 1
                session.add(row)
                sends.append(self._request(session, row, targets[row.target_id],
                                           events[row.event_id]))
        return sends

    def _request(self, session: Session, row: Delivery, target: NotificationTarget,
                 event: OutboxEvent) -> _Send:
        assert row.id is not None and target.id is not None
        headers = {IDEMPOTENCY_HEADER: event.event_id, EVENT_HEADER: event.kind}
        for header in target.headers:
            name, _, value = header.partition(":")
            headers[name.strip()] = value.strip()
        if target.kind == "webhook":
            body = json.dumps(event.payload, sort_keys=True, separators=(",", ":")).encode()
            timestamp = str(int(time.time()))
            headers.update({"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                            SIGNATURE_HEADER: sign(target.secret or "", timestamp, body)})
            return _Send(row.id, "POST", target.url, headers, body, target.id)
        if target.payload and event.focus:
            resource_type, _, resource_id = event.focus.partition("/")
            current = current_resource(session, resource_type, resource_id)
            resource = current.resource if current is not None else {}
            headers["Content-Type"] = "application/fhir+json"
            return _Send(row.id, "PUT", f"{target.url.rstrip('/')}/{event.focus}", headers,
                         json.dumps(resource).encode(), target.id)
        return _Send(row.id, "POST", target.url, headers, b"", target.id)

    def _deliver(self, send: _Send) -> str | None:
        """Send one request; None when the receiver took it, else why not."""
        try:
            response = self._client.request(send.method, send.url, headers=send.headers,
                                            content=send.body)
        except httpx.HTTPError as error:
            return f"{type(error).__name__}: {error}"[:2000]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}: {response.text[:500]}"

    def run_once(self) -> DispatchOutcome:
        """Claim one batch, send it (in parallel across patients) and record the outcomes."""
        sends = self.claim()
        outcome = DispatchOutcome(claimed=len(sends))
        if not sends:
            return outcome
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(sends))) as pool:
            results = list(pool.map(self._deliver, sends))
        now = utcnow()
        with session_scope(self.engine) as session:
            rows = {row.id: row for row in session.exec(select(Delivery).where(
                col(Delivery.id).in_([send.delivery_id for send in sends])))}
            targets = {t.id: t for t in session.exec(select(NotificationTarget).where(
                col(NotificationTarget.id).in_({send.target_id for send in sends})))}
            for send, error in zip(sends, results, strict=True):
                row = rows[send.delivery_id]
                if row.claimed_by != self.dispatcher_id or row.status != "delivering":
                    continue  # our lease ran out and another dispatcher took it over
                row.lease_until, row.claimed_by = None, None
                target = targets[send.target_id]
                if error is None:
                    row.status, row.delivered_at, row.last_error = "delivered", now, None
                    outcome.delivered += 1
                else:
                    row.last_error = error
                    outcome.errors.append(error)
                    if row.attempts >= self.max_attempts:
                        row.status = "dead"
                        outcome.dead += 1
                        logger.warning("delivery {} dead after {} attempts", row.id, row.attempts)
                    else:
                        row.status = "pending"
                        row.next_attempt_at = now + timedelta(
                            seconds=self.backoff.delay(row.attempts))
                        outcome.retried += 1
                session.add(row)
                if target.kind == "subscription":
                    set_subscription_status(session, target, "active" if error is None
                                            else "error", error)
        return outcome

    def run_until_idle(self) -> DispatchOutcome:
        """Dispatch until nothing is due now; the totals."""
        total = DispatchOutcome()
        while (outcome := self.run_once()).claimed:
            total.claimed += outcome.claimed
            total.delivered += outcome.delivered
            total.retried += outcome.retried
            total.dead += outcome.dead
            total.errors += outcome.errors
        return total

    def run_forever(self, stop: threading.Event, poll_seconds: float = 0.2) -> None:
        """Dispatch until ``stop`` is set, waiting ``poll_seconds`` when nothing is due."""
        logger.info("dispatcher {} started", self.dispatcher_id)
        try:
            while not stop.is_set():
                try:
                    self._escalate_when_due()
                    if not self.run_once().claimed:
                        stop.wait(poll_seconds)
                except Exception:  # e.g. the database went away: wait and try again
                    logger.exception("dispatch failed")
                    stop.wait(poll_seconds * 10)
        finally:
            self.close()
        logger.info("dispatcher {} stopped", self.dispatcher_id)


    def _escalate_when_due(self) -> None:
        from nlp_service.notify.escalation import escalate  # escalation imports the audit

        if self.escalate_every is None or (
                time.monotonic() - self._escalated_at < self.escalate_every):
            return
        self._escalated_at = time.monotonic()
        with session_scope(self.engine) as session:
            written = escalate(session, utcnow())
        if written:
            logger.info("escalation schedule: {} events", len(written))


def dead_letters(session: Session, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """Dead deliveries with their event and target, newest first."""
    rows = session.exec(select(Delivery, OutboxEvent, NotificationTarget)
                        .join(OutboxEvent, col(OutboxEvent.id) == col(Delivery.event_id))
                        .join(NotificationTarget,
                              col(NotificationTarget.id) == col(Delivery.target_id))
                        .where(Delivery.status == "dead").order_by(col(Delivery.id).desc())
                        .offset(offset).limit(limit)).all()
    return [{"id": d.id, "event_id": e.event_id, "kind": e.kind, "target_id": t.id,
             "target": t.url, "attempts": d.attempts, "last_error": d.last_error}
            for d, e, t in rows]


def resend(session: Session, delivery_id: int) -> Delivery | None:
    """Send a dead delivery again (from a fresh count of attempts); None if there is no dead
    delivery of that id."""
    row = session.get(Delivery, delivery_id)
    if row is None or row.status != "dead":
        return None
    row.status, row.attempts, row.next_attempt_at = "pending", 0, utcnow()
    row.last_error = None
    session.add(row)
    return row
