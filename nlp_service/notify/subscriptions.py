"""FHIR R4 Subscriptions (rest-hook) and webhooks: creating them, reading their criteria, and
keeping a Subscription's ``status`` and ``error`` as its deliveries succeed or fail.

A criteria string is a search on one resource type (``Observation?interpretation=AA``); it
matches a resource when every parameter matches (a comma between values: any of them), with
the token and reference values the search index uses.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sqlmodel import Session

from nlp_service.fhir.mapping import validate_resource
from nlp_service.fhir.search import SEARCH_PARAMETERS, search_values
from nlp_service.storage.fhir_store import FhirWriter, content_search_values
from nlp_service.storage.models import NotificationTarget, utcnow

SUBSCRIPTION_STATUSES = ("requested", "active", "error", "off")
# Resource types a Subscription may watch: those the service writes.
WATCHABLE = ("Observation", "ServiceRequest", "Task", "Communication")


class SubscriptionError(ValueError):
    """A Subscription or webhook that cannot be accepted, with the reason."""


@dataclass(frozen=True)
class Criteria:
    resource_type: str
    parameters: list[tuple[str, list[str]]]


def parse_criteria(criteria: str) -> Criteria:
    """``Type?name=value[,value]&...``, checked against the search parameters of ``Type``
    (token and reference parameters only: a notification is about one resource's values)."""
    resource_type, _, query = criteria.strip().partition("?")
    if resource_type not in WATCHABLE:
        raise SubscriptionError(f"criteria must search one of {', '.join(WATCHABLE)}; got "
                                f"{resource_type!r}")
    known = SEARCH_PARAMETERS[resource_type]
    parameters = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        kind = known.get(name)
        if kind not in ("token", "reference"):
            allowed = sorted(key for key, k in known.items() if k in ("token", "reference"))
            raise SubscriptionError(f"criteria parameter {name!r} is not a token or reference "
                                    f"search parameter of {resource_type}; allowed: "
                                    f"{', '.join(allowed)}")
        if not value:
            raise SubscriptionError(f"criteria parameter {name!r} has no value")
        parameters.append((name, value.split(",")))
    return Criteria(resource_type, parameters)


def matches_criteria(criteria: str, resource: dict[str, Any]) -> bool:
    """Whether ``resource`` is one the search ``criteria`` would find."""
    try:
        parsed = parse_criteria(criteria)
    except SubscriptionError:
        return False
    if resource.get("resourceType") != parsed.resource_type:
        return False
    values = search_values({k: v for k, v in resource.items() if k != "meta"})
    have: dict[str, set[str]] = {}
    for name, value in [*values.tokens, *values.references]:
        have.setdefault(name, set()).add(value)
    for name, wanted in parsed.parameters:
        found = have.get(name, set())
        if not any(value in found or f"{parsed.resource_type}/{value}" in found
                   or any(ref.endswith(f"/{value}") for ref in found) for value in wanted):
            return False
    return True


def create_subscription(session: Session, body: dict[str, Any]) -> NotificationTarget:
    """Accept a Subscription resource (rest-hook): validate it, store it (status ``active``)
    as a FHIR resource and as a notification target."""
    if body.get("resourceType") != "Subscription":
        raise SubscriptionError("the body must be a Subscription resource")
    try:
        validate_resource({k: v for k, v in body.items() if k not in ("id", "meta")})
    except ValueError as error:
        raise SubscriptionError(f"not a valid R4 Subscription: {error}") from error
    channel = body.get("channel") or {}
    if channel.get("type") != "rest-hook":
        raise SubscriptionError("only channel.type rest-hook is supported")
    endpoint = channel.get("endpoint") or ""
    if urlsplit(endpoint).scheme not in ("http", "https") or not urlsplit(endpoint).netloc:
        raise SubscriptionError("channel.endpoint must be an http or https URL")
    headers = list(channel.get("header") or [])
    for header in headers:
        if ":" not in header:
            raise SubscriptionError(f"channel.header {header!r} is not 'Name: value'")
    criteria = body.get("criteria") or ""
    parse_criteria(criteria)
    resource_id = uuid.uuid4().hex
    resource = {**{k: v for k, v in body.items() if k != "meta"}, "id": resource_id,
                "status": "active"}
    resource.pop("error", None)
    target = NotificationTarget(kind="subscription", url=endpoint, headers=headers,
                                criteria=criteria, payload=channel.get("payload"),
                                status="active", fhir_id=resource_id)
    session.add(target)
    put_subscription(session, resource)
    return target


def put_subscription(session: Session, resource: dict[str, Any]) -> dict[str, Any]:
    writer = FhirWriter(session, utcnow())
    stored = writer.put(validate_resource(resource), content_search_values(resource))
    writer.flush()
    return stored


def set_subscription_status(session: Session, target: NotificationTarget, status: str,
                            error: str | None) -> None:
    """Record a Subscription's state after a delivery (a new version of its resource when the
    state changes)."""
    if target.status == status and target.error == error:
        return
    target.status, target.error = status, error
    session.add(target)
    if target.fhir_id is None:
        return
    writer = FhirWriter(session, utcnow())
    current = writer.current("Subscription", target.fhir_id)
    if current is None:
        return
    resource = {k: v for k, v in current.items() if k != "meta"}
    resource["status"] = status
    if error:
        resource["error"] = error[:1000]
    else:
        resource.pop("error", None)
    writer.put(validate_resource(resource), content_search_values(resource))
    writer.flush()


def create_webhook(session: Session, *, url: str, event_kinds: list[str],
                   name: str | None = None, secret: str | None = None) -> NotificationTarget:
    """A webhook target; its secret (given, or made here) signs every body (HMAC-SHA256)."""
    from nlp_service.notify.events import EVENT_KINDS  # events imports this module

    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise SubscriptionError("url must be an http or https URL")
    unknown = sorted(set(event_kinds) - set(EVENT_KINDS))
    if unknown:
        raise SubscriptionError(f"unknown event kinds {unknown}; known: {', '.join(EVENT_KINDS)}")
    target = NotificationTarget(kind="webhook", url=url, name=name,
                                secret=secret or secrets.token_urlsafe(32),
                                event_kinds=list(event_kinds), status="active")
    session.add(target)
    session.flush()
    return target
