"""The model registry in the database: versions, their lineage and metrics, and the active one.

Artefacts stay folders (``card.json`` and the overlays) under the models folder
(``RADNLP_MODELS_DIR``, by default the installed ``pipelines/models``), which may be read-only:
activating a version writes only the database. Every worker reads the active version when it
claims a batch (``Worker.follow_active_model``), so an activation reaches workers in every
process and on every machine; a running API loads it at once.

The first time a database meets a models folder, its versions are registered and the one its
``DEFAULT`` names becomes active.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from annotations.registry import active_version as folder_default
from annotations.registry import check_version, metrics_summary
from nlp_service.core.config import Settings
from nlp_service.storage.models import ModelVersion, utcnow
from pipelines.models import CARD_JSON, MODELS_DIR


def models_folder(settings: Settings) -> Path:
    """Where model versions' artefacts live."""
    return Path(settings.models_dir) if settings.models_dir else MODELS_DIR


def sync_registry(session: Session, models_dir: Path) -> list[ModelVersion]:
    """Register every version folder under ``models_dir`` not yet in the database (metadata
    from its card); with no active version yet, the one ``DEFAULT`` names becomes active."""
    known = {row.version: row for row in session.exec(select(ModelVersion)).all()}
    if models_dir.is_dir():
        for folder in sorted(p for p in models_dir.iterdir() if (p / CARD_JSON).is_file()):
            try:
                card = json.loads((folder / CARD_JSON).read_text())
            except ValueError:
                continue  # a half-written card is not a version yet
            version = str(card.get("version", folder.name))
            if version in known:
                continue
            row = ModelVersion(version=version, name=folder.name, parent=card.get("parent"),
                               data_snapshot=card.get("data"),
                               metrics=card.get("metrics"), created=card.get("created"))
            session.add(row)
            known[version] = row
    if not any(row.active for row in known.values()):
        try:
            named = folder_default(models_dir)
        except FileNotFoundError:
            named = None
        chosen = next((row for row in known.values() if named in (row.name, row.version)),
                      None)
        if chosen is not None:
            chosen.active, chosen.activated_at, chosen.activated_by = True, utcnow(), "DEFAULT"
            session.add(chosen)
    session.flush()
    return sorted(known.values(), key=lambda r: (r.created or "", r.name))


def version_folder(models_dir: Path, version: str) -> Path | None:
    """The folder of ``version`` (its name, or the version its card gives), if any."""
    if not models_dir.is_dir():
        return None
    for folder in sorted(p for p in models_dir.iterdir() if (p / CARD_JSON).is_file()):
        if folder.name == version:
            return folder
        try:
            if json.loads((folder / CARD_JSON).read_text()).get("version") == version:
                return folder
        except ValueError:
            continue
    return None


def active_model(session: Session) -> ModelVersion | None:
    return session.exec(select(ModelVersion).where(col(ModelVersion.active))).first()


def activate(session: Session, version: str, models_dir: Path, *,
             actor: str | None = None) -> ModelVersion:
    """Make ``version`` (a version or its folder name) the active one, after checking that its
    folder loads; ``FileNotFoundError`` if it is unknown, ``ValueError`` if it does not load."""
    sync_registry(session, models_dir)
    row = session.exec(select(ModelVersion).where(
        (col(ModelVersion.version) == version) | (col(ModelVersion.name) == version))).first()
    if row is None:
        raise FileNotFoundError(f"Model version {version!r} not found under {models_dir}.")
    problems = check_version(models_dir / row.name)
    if problems:
        raise ValueError(f"Model version {version!r} does not load: {'; '.join(problems)}")
    for other in session.exec(select(ModelVersion).where(col(ModelVersion.active))).all():
        other.active = False
        session.add(other)
    row.active, row.activated_at, row.activated_by = True, utcnow(), actor
    session.add(row)
    session.flush()
    return row


def describe(row: ModelVersion) -> dict[str, Any]:
    """A version as the API and the CLI list it."""
    return {"version": row.version, "name": row.name, "parent": row.parent,
            "created": row.created, "metrics": metrics_summary((row.metrics or {}).get("full")),
            "active": row.active,
            "activated_at": row.activated_at.isoformat() if row.activated_at else None,
            "activated_by": row.activated_by}
