"""Model versions: the registry, activation, and re-analysis of stored reports."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from nlp_service.api.deps import EngineDep, PipelineDep, SettingsDep
from nlp_service.model_registry import activate, describe, models_folder, sync_registry
from nlp_service.reanalysis import reanalyze
from nlp_service.storage.db import session_scope
from pipelines.pipeline import RadiologyPipeline

router = APIRouter(prefix="/api/v1", tags=["models"])


class ReanalyzeRequest(BaseModel):
    accessions: list[str] | None = Field(default=None, max_length=100_000,
                                         description="None: every current report.")
    include_same_model: bool = Field(default=False, description="Also reports the active "
                                                                "model already made.")


@router.get("/models", summary="Model versions")
def models(engine: EngineDep, settings: SettingsDep) -> Any:
    """Every model version with its parent, data snapshot, metrics, and which is active (the
    registry in the database; new folders under the models folder are registered)."""
    folder = models_folder(settings)
    with session_scope(engine) as session:
        return {"items": [describe(row) for row in sync_registry(session, folder)]}


@router.post("/models/{version}/activate", summary="Activate a model version")
async def activate_model(version: str, request: Request, engine: EngineDep,
                         settings: SettingsDep) -> Any:
    """Make ``version`` the active one in the registry: every worker, in any process, loads it
    at its next claim; this service's own pipeline loads it now."""
    folder = models_folder(settings)
    principal = getattr(request.state, "principal", None)

    def write() -> str:
        with session_scope(engine) as session:
            row = activate(session, version, folder,
                           actor=principal.name if principal is not None else None)
            return row.name

    try:
        name = await run_in_threadpool(write)
    except (FileNotFoundError, ValueError) as exc:
        raise HTTPException(status_code=404 if isinstance(exc, FileNotFoundError) else 422,
                            detail=str(exc)) from exc
    if settings.pipeline_mode == "full":
        pipeline = await run_in_threadpool(RadiologyPipeline.load, "full",
                                           model=str(folder / name),
                                           max_chars=settings.max_report_chars)
        request.app.state.pipeline = pipeline
        worker = getattr(request.app.state, "worker", None)
        if worker is not None:
            worker.pipeline = pipeline
    return {"active": version, "loaded": settings.pipeline_mode == "full"}


@router.post("/reports/reanalyze", summary="Re-analyse stored reports with the active model")
async def reanalyze_reports(body: ReanalyzeRequest, engine: EngineDep,
                            pipeline: PipelineDep) -> Any:
    """Each report becomes a new version with the new analysis (FHIR and follow-ups too)."""
    counts = await run_in_threadpool(reanalyze, engine, pipeline, body.accessions,
                                     only_other_models=not body.include_same_model)
    return {"model_version": pipeline.model_version, **counts}
