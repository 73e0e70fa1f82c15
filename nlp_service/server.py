"""Running the service: HTTP API, MLLP listener and worker, together or alone."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable

import uvicorn
from loguru import logger
from sqlalchemy import Engine

from nlp_service.api.main import create_app
from nlp_service.core.config import Settings
from nlp_service.core.logging import configure_logging
from nlp_service.intake.mllp import MLLPServer, tls_context
from nlp_service.notify.dispatcher import Backoff, Dispatcher
from nlp_service.storage.db import make_engine, migrate
from nlp_service.worker import Worker
from pipelines.pipeline import RadiologyPipeline

ReadyHook = Callable[[Settings, int, int], None]


def load_pipeline(settings: Settings, engine: Engine | None = None) -> RadiologyPipeline:
    """The pipeline of the settings' mode; in full mode with the default model and a database,
    the registry's active version (registering the models folder on first use)."""
    model = settings.model
    if settings.pipeline_mode == "full" and model == "default" and engine is not None:
        from nlp_service.model_registry import active_model, models_folder, sync_registry
        from nlp_service.storage.db import session_scope

        folder = models_folder(settings)
        with session_scope(engine) as session:
            sync_registry(session, folder)
            active = active_model(session)
            if active is not None:
                model = str(folder / active.name)
    return RadiologyPipeline.load(settings.pipeline_mode, model=model,
                                  max_chars=settings.max_report_chars)


def make_worker(settings: Settings, engine: Engine,
                pipeline: RadiologyPipeline | None = None) -> Worker:
    from nlp_service.model_registry import models_folder

    follow = settings.pipeline_mode == "full" and settings.model == "default"
    return Worker(engine, pipeline or load_pipeline(settings, engine),
                  batch_size=settings.worker_batch_size,
                  lease_seconds=settings.worker_lease_seconds,
                  max_attempts=settings.worker_max_attempts,
                  models_dir=models_folder(settings) if follow else None)


def make_dispatcher(settings: Settings, engine: Engine) -> Dispatcher:
    return Dispatcher(engine, max_attempts=settings.notify_max_attempts,
                      lease_seconds=settings.notify_lease_seconds,
                      timeout_seconds=settings.notify_timeout_seconds,
                      backoff=Backoff(settings.notify_backoff_base_seconds,
                                      settings.notify_backoff_cap_seconds),
                      escalate_every_seconds=settings.notify_escalate_every_seconds)


def run_service(settings: Settings, *, api: bool = True, mllp: bool = True,
                worker: bool = True, on_ready: ReadyHook | None = None) -> None:
    """Run the chosen parts in this process until interrupted (Ctrl-C or SIGTERM).

    ``on_ready(settings, http_port, mllp_port)`` runs in a thread once everything listens.
    """
    configure_logging(settings.log_level)
    engine = make_engine(settings.database_url)
    migrate(engine)
    in_process_worker = worker and not settings.worker_processes
    pipeline = load_pipeline(settings, engine) if in_process_worker or api else None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: _raise_interrupt())
    worker_thread = None
    runner: Worker | None = None
    if worker and settings.worker_processes:
        from nlp_service.worker_pool import WorkerProcesses

        # Workers in processes of their own: the listener and the API keep this interpreter.
        pool = WorkerProcesses(settings, settings.worker_processes)
        pool.start()
        worker_thread = threading.Thread(target=pool.supervise, args=(stop,),
                                         name="worker-supervisor", daemon=True)
        worker_thread.start()
    elif worker:
        assert pipeline is not None
        runner = make_worker(settings, engine, pipeline)
        worker_thread = threading.Thread(
            target=runner.run_forever, args=(stop, settings.worker_poll_seconds),
            name="worker", daemon=True)
        worker_thread.start()
    dispatcher_thread = None
    if worker and settings.dispatcher:  # notifications go out where reports are stored
        dispatcher_thread = threading.Thread(
            target=make_dispatcher(settings, engine).run_forever,
            args=(stop, settings.notify_poll_seconds), name="dispatcher", daemon=True)
        dispatcher_thread.start()
    try:
        if api or mllp:
            asyncio.run(_serve(settings, engine, pipeline, api=api, mllp=mllp,
                               on_ready=on_ready, worker=runner))
        else:
            if on_ready is not None:
                threading.Thread(target=on_ready, args=(settings, 0, 0), daemon=True).start()
            while not stop.wait(1.0):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if worker_thread is not None:
            worker_thread.join(timeout=60)
        if dispatcher_thread is not None:
            dispatcher_thread.join(timeout=30)
        engine.dispose()
        logger.info("stopped")


def _raise_interrupt() -> None:
    raise KeyboardInterrupt


async def _serve(settings: Settings, engine: Engine, pipeline: RadiologyPipeline | None, *,
                 api: bool, mllp: bool, on_ready: ReadyHook | None,
                 worker: Worker | None = None) -> None:
    listener = None
    if mllp:
        tls = (tls_context(settings.mllp_tls_cert, settings.mllp_tls_key)
               if settings.mllp_tls_cert and settings.mllp_tls_key else None)
        listener = MLLPServer(engine, host=settings.mllp_host, port=settings.mllp_port,
                              max_bytes=settings.max_message_bytes,
                              max_report_chars=settings.max_report_chars,
                              allowed_sources=settings.mllp_allowed_sources, ssl_context=tls)
        await listener.start()
    http = None
    if api:
        app = create_app(settings, engine=engine, pipeline=pipeline, run_migrations=False)
        app.state.worker = worker  # activating a model swaps the worker's pipeline too
        config = uvicorn.Config(app, host=settings.http_host, port=settings.http_port,
                                log_level="warning")
        http = uvicorn.Server(config)
    try:
        if http is not None:
            serving = asyncio.create_task(http.serve())
            while not http.started and not serving.done():
                await asyncio.sleep(0.05)
            if serving.done():
                serving.result()  # e.g. the port is taken: raise it
        if on_ready is not None:
            threading.Thread(target=on_ready, daemon=True, args=(
                settings, settings.http_port if api else 0,
                listener.port if listener else 0)).start()
        if http is not None:
            await serving
        else:
            await asyncio.Event().wait()
    finally:
        if http is not None:
            http.should_exit = True
        if listener is not None:
            await listener.stop()
