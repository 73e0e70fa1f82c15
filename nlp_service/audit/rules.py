"""Which later exam satisfies a recommendation, and the due window when none is stated."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

RULES_FILE = Path(__file__).resolve().parent / "resources" / "follow_up_rules.json"


@dataclass(frozen=True)
class FollowUpRules:
    """Follow-up matching rules (shipped in ``resources/follow_up_rules.json``).

    - ``default_window_days``: (min, max) days from the report when no interval is stated, by
      finding concept name or recommended modality (the finding wins); "*" for any other.
    - ``grace_days``: days after the due window still counted on time.
    - ``satisfying_modalities``: recommended modality -> exam modalities that satisfy it.
    - ``contained_regions``: exam region -> smaller regions it also covers (an MRI abdomen
      covers a recommended MRI liver). Combined regions ("chest/abdomen/pelvis") cover each
      of their parts.
    """

    default_window_days: dict[str, tuple[int, int]] = field(
        default_factory=lambda: {"*": (0, 90)})
    grace_days: int = 0
    satisfying_modalities: dict[str, tuple[str, ...]] = field(default_factory=dict)
    contained_regions: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FollowUpRules:
        windows = {key: (int(low), int(high))
                   for key, (low, high) in data.get("default_window_days", {}).items()}
        if "*" not in windows:
            raise ValueError("default_window_days needs a '*' entry")
        for key, (low, high) in windows.items():
            if not 0 <= low <= high:
                raise ValueError(f"default_window_days[{key!r}]: need 0 <= min <= max")
        if int(data.get("grace_days", 0)) < 0:
            raise ValueError("grace_days must be >= 0")
        return cls(
            default_window_days=windows, grace_days=int(data.get("grace_days", 0)),
            satisfying_modalities={k: tuple(v) for k, v in
                                   data.get("satisfying_modalities", {}).items()},
            contained_regions={k: tuple(v) for k, v in data.get("contained_regions", {}).items()},
        )

    def to_dict(self) -> dict[str, Any]:
        return {"default_window_days": {k: list(v) for k, v in self.default_window_days.items()},
                "grace_days": self.grace_days,
                "satisfying_modalities": {k: list(v) for k, v in
                                          self.satisfying_modalities.items()},
                "contained_regions": {k: list(v) for k, v in self.contained_regions.items()}}

    def due_window(self, report_time: datetime, modality: str | None, finding: str | None,
                   interval_min_days: int | None,
                   interval_max_days: int | None) -> tuple[datetime, datetime, bool]:
        """(due start, due end, whether the default window was used)."""
        stated = stated_window_days(interval_min_days, interval_max_days)
        if stated is not None:
            (low, high), default = stated, False
        else:
            windows = self.default_window_days
            low, high = windows.get(finding or "", windows.get(modality or "", windows["*"]))
            default = True
        return report_time + timedelta(days=low), report_time + timedelta(days=high), default

    def modality_satisfied(self, recommended: str | None, exam: str | None) -> bool:
        if recommended is None:
            return exam is not None
        return exam in self.satisfying_modalities.get(recommended, (recommended,))

    def covered_regions(self, exam_region: str) -> set[str]:
        """Every region an exam of ``exam_region`` covers."""
        parts = set(exam_region.split("/"))
        covered = {exam_region, *parts}
        for part in list(covered):
            covered.update(self.contained_regions.get(part, ()))
        return covered

    def region_satisfied(self, recommended: str | None, exam: str | None) -> bool:
        if recommended is None:
            return True
        if exam is None:
            return False
        covered = self.covered_regions(exam)
        return recommended in covered or set(recommended.split("/")) <= covered


def stated_window_days(interval_min_days: int | None,
                       interval_max_days: int | None) -> tuple[int, int] | None:
    """(low, high) days of a stated interval (one stated bound serves as both); ``None``
    when the report states none."""
    bounds = [d for d in (interval_min_days, interval_max_days) if d is not None]
    return (bounds[0], bounds[-1]) if bounds else None


@lru_cache(maxsize=1)
def default_rules() -> FollowUpRules:
    return FollowUpRules.from_dict(json.loads(RULES_FILE.read_text(encoding="utf-8")))
