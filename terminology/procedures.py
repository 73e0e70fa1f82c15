"""An ordered procedure (HL7 OBR-4) read as an exam's modality and body region.

The procedure code decides when it is known: a RadLex Playbook RPID through the table derived
from the Playbook (``resources/playbook_procedures.csv``, built by
``python -m terminology.build_playbook``), a CPT code through radiology code ranges
(``resources/cpt_radiology.csv``). The procedure text fills in what the code does not tell,
and gives a finer region within the code's ("US THYROID" under a head-and-neck ultrasound code
is a thyroid exam). Modalities and regions are named as in ``terminology.vocabulary``.
"""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass
from pathlib import Path

from terminology.lexicon import RESOURCES
from terminology.vocabulary import (
    DICOM_MODALITY_CODES,
    REGION_NAMES,
    modality_code,
    modality_region,
    region_name,
    region_within,
)

PLAYBOOK_FILE = RESOURCES / "playbook_procedures.csv"
PLAYBOOK_COLUMNS = ("rpid", "name", "modality", "body_region")
CPT_FILE = RESOURCES / "cpt_radiology.csv"
# Coding system names (OBR-4.3) that mean CPT; HL7 table 0396 writes "C4".
CPT_SYSTEMS = frozenset({"CPT", "CPT4", "CPT-4", "C4"})
# Coding system names under which a bare number is a Playbook RPID ("RPID16" needs none).
PLAYBOOK_SYSTEMS = frozenset({"RPID", "RADLEX", "PLAYBOOK", "RSNA"})
_CPT_CODE = re.compile(r"(?i)\s*(\d{5})(?:-[A-Z0-9]{2})*\s*")
_RPID = re.compile(r"(?i)\s*(?:RPID)?(\d+)\s*")


@dataclass(frozen=True)
class PlaybookProcedure:
    """One Playbook procedure as shipped: RPID, short name, modality code, body region."""

    rpid: str
    name: str
    modality: str | None
    body_region: str | None


@dataclass(frozen=True)
class CptRange:
    """CPT codes ``low``..``high`` with the modality and region they imply (``None``: the
    range does not tell)."""

    low: int
    high: int
    modality: str | None
    region: str | None
    what: str


def _check(modality: str | None, region: str | None, where: str) -> None:
    if modality is not None and modality not in DICOM_MODALITY_CODES:
        raise ValueError(f"{where}: modality {modality!r} is not a vocabulary code")
    if region is not None and not all(part in REGION_NAMES for part in region.split("/")):
        raise ValueError(f"{where}: body region {region!r} is not made of vocabulary regions")


@functools.cache
def playbook_procedures(path: Path = PLAYBOOK_FILE) -> dict[str, PlaybookProcedure]:
    """The shipped Playbook table by RPID ("RPID16")."""
    table: dict[str, PlaybookProcedure] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != PLAYBOOK_COLUMNS:
            raise ValueError(f"{path}: columns {reader.fieldnames} are not {PLAYBOOK_COLUMNS}")
        for number, row in enumerate(reader, start=2):
            procedure = PlaybookProcedure(row["rpid"], row["name"], row["modality"] or None,
                                          row["body_region"] or None)
            _check(procedure.modality, procedure.body_region, f"{path}, line {number}")
            table[procedure.rpid] = procedure
    return table


@functools.cache
def cpt_ranges(path: Path = CPT_FILE) -> tuple[CptRange, ...]:
    """The CPT ranges, narrowest first (lines starting with "#" are comments)."""
    with path.open(encoding="utf-8", newline="") as handle:
        lines = [(n, line) for n, line in enumerate(handle, start=1)
                 if line.strip() and not line.startswith("#")]
    reader = csv.DictReader(line for _, line in lines)
    ranges = []
    for (number, _), row in zip(lines[1:], reader, strict=True):
        where = f"{path}, line {number}"
        try:
            low, high = int(row["low"]), int(row["high"])
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}: low and high must be CPT codes") from error
        if not 10000 <= low <= high <= 99999:
            raise ValueError(f"{where}: need 10000 <= low <= high <= 99999")
        item = CptRange(low, high, row["modality"] or None, row["region"] or None,
                        row["what"] or "")
        _check(item.modality, item.region, where)
        ranges.append(item)
    return tuple(sorted(ranges, key=lambda r: (r.high - r.low, r.low)))


def playbook_procedure(code: str | None) -> PlaybookProcedure | None:
    """The Playbook procedure of an RPID ("RPID16", or "16"), if the table has it."""
    match = _RPID.fullmatch(code or "")
    return playbook_procedures().get(f"RPID{int(match.group(1))}") if match else None


def cpt_modality_region(code: str | None) -> tuple[str | None, str | None]:
    """(modality, body region) a CPT code implies (modifiers such as "-26" ignored): from the
    narrowest range giving each; (None, None) outside the known ranges."""
    match = _CPT_CODE.fullmatch(code or "")
    if not match:
        return None, None
    value = int(match.group(1))
    containing = [r for r in cpt_ranges() if r.low <= value <= r.high]
    return (next((r.modality for r in containing if r.modality), None),
            next((r.region for r in containing if r.region), None))


def code_modality_region(code: str | None,
                         coding_system: str | None) -> tuple[str | None, str | None]:
    """(modality, body region) from a procedure code alone: a Playbook RPID (by its "RPID"
    prefix, or a number under a Playbook coding system), else a CPT code (under a CPT coding
    system, or with none named)."""
    if not code:
        return None, None
    system = (coding_system or "").strip().upper()
    if code.strip().upper().startswith("RPID") or system in PLAYBOOK_SYSTEMS:
        procedure = playbook_procedure(code)
        return (procedure.modality, procedure.body_region) if procedure else (None, None)
    if not system or system in CPT_SYSTEMS:
        return cpt_modality_region(code)
    return None, None


def procedure_modality_region(code: str | None, coding_system: str | None, text: str | None,
                              *, modality: str | None = None) -> tuple[str | None, str | None]:
    """The exam's (modality code, body region name) from its ordered procedure.

    Modality: the code's, else ``modality`` (one known from elsewhere, such as HL7 OBR-24),
    else the text's. Region: the code's, unless the text names a region within it (then the
    finer one); else the text's; else the region the modality implies (mammography: breast).
    """
    code_modality, code_region = code_modality_region(code, coding_system)
    chosen = code_modality or modality_code(modality) or modality_code(text)
    text_region = region_name(text)
    if code_region is None or (text_region and region_within(text_region, code_region)):
        region = text_region or code_region
    else:
        region = code_region
    return chosen, region or modality_region(chosen)
