"""Model versions: where trained artefacts live and which one is the default."""

from __future__ import annotations

import json
from pathlib import Path

MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_FILE = MODELS_DIR / "DEFAULT"
CARD_JSON = "card.json"


def model_dir(version: str = "default") -> Path:
    """The folder of a model version; ``"default"`` is the one named in ``models/DEFAULT``,
    and a path to a folder is taken as is."""
    if version == "default":
        if not DEFAULT_FILE.is_file():
            raise FileNotFoundError(f"No default model: {DEFAULT_FILE} is missing. Train one "
                                    "with `radnlp train` or run with --mode rules.")
        version = DEFAULT_FILE.read_text().strip()
    candidate = Path(version)
    folder = candidate if candidate.is_dir() else MODELS_DIR / version
    if not (folder / CARD_JSON).is_file():
        raise FileNotFoundError(f"Model version {version!r} not found: no {CARD_JSON} in "
                                f"{folder}.")
    return folder


def model_version(folder: Path) -> str:
    return str(json.loads((folder / CARD_JSON).read_text())["version"])
