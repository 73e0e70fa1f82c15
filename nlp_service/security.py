"""API keys (only their SHA-256 is stored) and signed browser sessions that refer to a key.

A key reads ``radnlp_<key id>_<secret>``: the key id is public (lists, logs, sessions), the
secret is 32 random bytes. Roles: ``ingest`` (HL7 over HTTP), ``ehr`` (FHIR and report reads),
``auditor`` (follow-up audit, read only), ``navigator`` (the follow-up audit, and acting on
follow-ups: decisions, assignment, notes), ``annotator`` (annotation workflow), ``admin``
(everything).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime

from sqlmodel import Session, col, func, select

from nlp_service.storage.models import ApiKey

ROLES = ("ingest", "ehr", "auditor", "navigator", "annotator", "admin")
# The roles that read stored reports (admin reads everything): annotators do not, so they
# annotate only texts given to them or tasks others made.
REPORT_READERS = ("ehr", "auditor", "navigator")
KEY_PREFIX = "radnlp"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    """The key id inside a presented key, or None when it is not shaped like one of ours."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]


def create_key(session: Session, *, name: str, roles: list[str]) -> tuple[str, ApiKey]:
    """A new key and its stored record; the key itself is returned once and never stored."""
    unknown = sorted(set(roles) - set(ROLES))
    if not roles or unknown:
        raise ValueError(f"unknown role(s) {', '.join(unknown) or '(none given)'}; "
                         f"roles: {', '.join(ROLES)}")
    if not name.strip():
        raise ValueError("a key needs a name")
    key_id = secrets.token_hex(6)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    key = f"{KEY_PREFIX}_{key_id}_{secret}"
    record = ApiKey(key_id=key_id, key_hash=hash_key(key), name=name.strip(),
                    roles=sorted(set(roles), key=ROLES.index))
    session.add(record)
    session.flush()
    return key, record


def find_key(session: Session, key: str) -> ApiKey | None:
    """The live (not revoked) record of a presented key, or None."""
    key_id = key_id_of(key)
    if key_id is None:
        return None
    record = session.exec(select(ApiKey).where(ApiKey.key_id == key_id)).first()
    if record is None or record.revoked_at is not None:
        return None
    if not hmac.compare_digest(record.key_hash, hash_key(key)):
        return None
    return record


def live_key(session: Session, key_id: str) -> ApiKey | None:
    record = session.exec(select(ApiKey).where(ApiKey.key_id == key_id)).first()
    return record if record is not None and record.revoked_at is None else None


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.exec(select(ApiKey).order_by(col(ApiKey.id))).all())


def count_live_keys(session: Session) -> int:
    return session.exec(select(func.count()).select_from(ApiKey)
                        .where(col(ApiKey.revoked_at).is_(None))).one()


def revoke_key(session: Session, key_id: str) -> ApiKey | None:
    """Revoke a key (its sessions end with it); None when there is no such key."""
    record = session.exec(select(ApiKey).where(ApiKey.key_id == key_id)).first()
    if record is not None and record.revoked_at is None:
        record.revoked_at = datetime.now(UTC)
        session.add(record)
    return record


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_session(secret: bytes, key_id: str, *, max_age: int, now: float | None = None) -> str:
    """A cookie value naming ``key_id`` until ``max_age`` seconds from now, HMAC-signed."""
    expires = int((time.time() if now is None else now) + max_age)
    payload = _b64(json.dumps({"kid": key_id, "exp": expires}, separators=(",", ":")).encode())
    signature = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}"


def read_session(secret: bytes, value: str, *, now: float | None = None) -> str | None:
    """The key id of a valid, unexpired session cookie, or None."""
    if not value.isascii():  # ours are base64; compare_digest refuses other text
        return None
    payload, _, signature = value.partition(".")
    expected = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    if not signature or not hmac.compare_digest(signature, expected):
        return None
    try:
        data = json.loads(_unb64(payload))
        key_id, expires = str(data["kid"]), int(data["exp"])
    except (ValueError, KeyError, TypeError):
        return None
    return key_id if expires > (time.time() if now is None else now) else None
