"""Request dependencies; tests override them with ``app.dependency_overrides``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlalchemy import Engine
from sqlmodel import Session

from nlp_service.core.config import Settings
from nlp_service.storage.db import read_only
from pipelines.pipeline import RadiologyPipeline

_pipeline_lock = threading.Lock()


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    """A session for reading (it never holds a SQLite write lock)."""
    with Session(read_only(engine), expire_on_commit=False) as session:
        yield session


def public_url(request: Request) -> str:
    """The service's public base URL (RADNLP_PUBLIC_URL): links and redirects are built on it,
    never on the request's Host header, which any client sets."""
    settings: Settings = request.app.state.settings
    return settings.base_url()


def get_pipeline(request: Request) -> RadiologyPipeline:
    """The service's pipeline, loaded on first use (never at import time)."""
    state = request.app.state
    with _pipeline_lock:
        if getattr(state, "pipeline", None) is None:
            settings: Settings = state.settings
            state.pipeline = RadiologyPipeline.load(settings.pipeline_mode, model=settings.model,
                                                    max_chars=settings.max_report_chars)
    pipeline: RadiologyPipeline = state.pipeline
    return pipeline


# Row ids are PostgreSQL integers; larger numbers are answered 422, never passed to SQL.
MAX_ROW_ID = 2_147_483_647
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="Row id")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip")]

SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
SessionDep = Annotated[Session, Depends(get_session)]
PipelineDep = Annotated[RadiologyPipeline, Depends(get_pipeline)]
