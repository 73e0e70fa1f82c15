"""``radnlp notify``: webhooks, dispatching, the escalation schedule and dead letters from
the command line (each command calls the same functions as the API)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

notify_app = typer.Typer(help="Notifications: webhooks, dispatch, escalation, dead letters.",
                         no_args_is_help=True)


def _engine() -> Any:
    from nlp_service.core.config import Settings
    from nlp_service.storage.db import make_engine, migrate

    engine = make_engine(Settings().database_url)
    migrate(engine)
    return engine


@notify_app.command("webhook-add")
def webhook_add(
    url: Annotated[str, typer.Argument(help="http(s) URL the events are POSTed to.")],
    kind: Annotated[list[str] | None, typer.Option(
        "--kind", help="An event kind to send (repeat); none: all.")] = None,
    name: Annotated[str | None, typer.Option(help="A name for the webhook.")] = None,
) -> None:
    """Register a webhook; prints its id and HMAC secret (shown only now)."""
    from nlp_service.notify.subscriptions import SubscriptionError, create_webhook
    from nlp_service.storage.db import session_scope

    try:
        with session_scope(_engine()) as session:
            target = create_webhook(session, url=url, event_kinds=kind or [], name=name)
            typer.echo(json.dumps({"id": target.id, "secret": target.secret}))
    except SubscriptionError as error:
        raise typer.BadParameter(str(error)) from error


@notify_app.command("dispatch")
def dispatch(once: Annotated[bool, typer.Option(
        "--once", help="Send what is due now, then exit.")] = False) -> None:
    """Deliver notifications (the dispatcher alone; `radnlp serve` runs one too)."""
    import threading

    from nlp_service.core.config import Settings
    from nlp_service.server import make_dispatcher

    current = Settings()
    dispatcher = make_dispatcher(current, _engine())
    if once:
        outcome = dispatcher.run_until_idle()
        dispatcher.close()
        typer.echo(f"delivered {outcome.delivered}, retried {outcome.retried}, "
                   f"dead {outcome.dead}")
        return
    stop = threading.Event()
    try:
        dispatcher.run_forever(stop, current.notify_poll_seconds)
    except KeyboardInterrupt:
        stop.set()


@notify_app.command("escalate")
def escalate_now(as_of: Annotated[str | None, typer.Option(
        "--as-of", help="ISO 8601 date to evaluate the schedule on (default now).")] = None,
) -> None:
    """Write the escalation schedule's reminders that have come due."""
    from nlp_service.notify.escalation import escalate
    from nlp_service.storage.db import session_scope

    when = datetime.now(UTC)
    if as_of is not None:
        try:
            when = datetime.fromisoformat(as_of)
        except ValueError as error:
            raise typer.BadParameter(f"not an ISO 8601 date: {as_of!r}") from error
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    with session_scope(_engine()) as session:
        written = escalate(session, when)
        typer.echo(json.dumps([{"event_id": e.event_id, "kind": e.kind,
                                "accession": e.accession} for e in written], indent=2))


@notify_app.command("dead-letters")
def list_dead() -> None:
    """Deliveries that ran out of attempts."""
    from nlp_service.notify.dispatcher import dead_letters
    from nlp_service.storage.db import session_scope

    with session_scope(_engine()) as session:
        typer.echo(json.dumps(dead_letters(session), indent=2))


@notify_app.command("resend")
def resend_dead(delivery_id: Annotated[int, typer.Argument(help="A dead delivery's id.")],
                ) -> None:
    """Send a dead delivery again."""
    from nlp_service.notify.dispatcher import resend
    from nlp_service.storage.db import session_scope

    with session_scope(_engine()) as session:
        if resend(session, delivery_id) is None:
            typer.echo(f"no dead delivery {delivery_id}", err=True)
            raise typer.Exit(1)
    typer.echo(f"delivery {delivery_id} is pending again")
