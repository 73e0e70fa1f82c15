"""The model registry: the versioned folders under ``pipelines/models`` and which one is active.

A version is a folder holding ``card.json`` and the two overlays (``ner/``, ``assertion/``); the
active one is named in ``DEFAULT``, which ``--mode full`` loads. Listing does not import torch.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pipelines.models import CARD_JSON, MODELS_DIR

DEFAULT_NAME = "DEFAULT"
TASKS = ("ner", "assertion")


def metrics_summary(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The headline numbers of an ``evaluate(...).as_dict()``: FINDING F1, assertion accuracy,
    and F1 by label (overlap and exact)."""
    if not metrics:
        return {}
    overlap, exact = metrics.get("entities_overlap", {}), metrics.get("entities_exact", {})
    return {
        "reports": metrics.get("reports"),
        "finding_f1_overlap": overlap.get("FINDING", {}).get("f1"),
        "finding_f1_exact": exact.get("FINDING", {}).get("f1"),
        "assertion_accuracy": metrics.get("assertion", {}).get("accuracy"),
        "assertion_macro_f1": metrics.get("assertion", {}).get("macro_f1"),
        "by_label": {label: {"f1_overlap": overlap[label].get("f1"),
                             "f1_exact": exact.get(label, {}).get("f1")}
                     for label in overlap},
    }


def active_version(models_dir: Path = MODELS_DIR) -> str:
    """The version named in ``DEFAULT``; ``FileNotFoundError`` when there is none."""
    default = models_dir / DEFAULT_NAME
    if not default.is_file():
        raise FileNotFoundError(f"No active model: {default} is missing.")
    return default.read_text().strip()


def check_version(folder: Path) -> list[str]:
    """What keeps a model folder from loading (empty when it would load)."""
    from safetensors import safe_open

    from pipelines.training import CONFIG_FILE, OVERLAY_FILE

    problems = []
    try:
        card = json.loads((folder / CARD_JSON).read_text())
        if "version" not in card:
            problems.append(f"{CARD_JSON} has no version")
    except (OSError, ValueError) as exc:
        problems.append(f"{CARD_JSON}: {exc}")
    for task in TASKS:
        try:
            meta = json.loads((folder / task / CONFIG_FILE).read_text())
            if meta.get("task") != task:
                problems.append(f"{task}/{CONFIG_FILE} is for task {meta.get('task')!r}")
            # Reads only the header: a truncated or foreign file fails here, cheaply.
            with safe_open(str(folder / task / OVERLAY_FILE), framework="pt") as overlay:
                if not list(overlay.keys()):
                    problems.append(f"{task}/{OVERLAY_FILE} holds no tensors")
        except Exception as exc:
            problems.append(f"{task}: {type(exc).__name__}: {exc}")
    return problems


def list_versions(models_dir: Path = MODELS_DIR) -> list[dict[str, Any]]:
    """Every model folder with a card, oldest first: version, folder name, parent, created,
    headline test metrics of the full mode, and whether it is the active one."""
    try:
        active: str | None = active_version(models_dir)
    except FileNotFoundError:
        active = None
    versions = []
    for folder in sorted(p for p in models_dir.iterdir() if (p / CARD_JSON).is_file()):
        try:
            card = json.loads((folder / CARD_JSON).read_text())
        except ValueError:
            continue  # a half-written card is not a version yet
        versions.append({
            "version": card.get("version", folder.name), "name": folder.name,
            "parent": card.get("parent"), "created": card.get("created"),
            "metrics": metrics_summary(card.get("metrics", {}).get("full")),
            "active": folder.name == active,
        })
    return sorted(versions, key=lambda v: (v["created"] or "", v["name"]))


def activate(version: str, models_dir: Path = MODELS_DIR) -> None:
    """Make ``version`` (a folder name under ``models_dir``) the active model, after checking
    that it loads; ``DEFAULT`` is replaced atomically, so a reader never sees it half-written."""
    if not version or Path(version).name != version or version in {".", ".."}:
        raise ValueError(f"Not a model version name: {version!r}")
    folder = models_dir / version
    if not (folder / CARD_JSON).is_file():
        raise FileNotFoundError(f"Model version {version!r} not found: no {CARD_JSON} in "
                                f"{folder}.")
    problems = check_version(folder)
    if problems:
        raise ValueError(f"Model version {version!r} does not load: {'; '.join(problems)}")
    handle, temporary = tempfile.mkstemp(dir=models_dir, prefix=f".{DEFAULT_NAME}.")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(f"{version}\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, models_dir / DEFAULT_NAME)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
