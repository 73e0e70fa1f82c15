"""Which later exam satisfies a recommendation, and the due window when none is stated."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, get_args

from pipelines.schema import FindingOut, RecommendationKind, RecommendationOut

# The default_window_days key used when a report asks for "short-interval follow-up".
SHORT_INTERVAL = "short-interval"
RULES_FILE = Path(__file__).resolve().parent / "resources" / "follow_up_rules.json"
# Every kind of recommendation the analysis contract knows.
KINDS: tuple[str, ...] = get_args(RecommendationKind)


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
    - ``tracked_kinds``: the kinds of recommendation the worklist and the rates cover unless a
      query names others (imaging and consultation: the others, such as "correlate
      clinically", ask for no exam that could close them).
    """

    default_window_days: dict[str, tuple[int, int]] = field(
        default_factory=lambda: {"*": (0, 90)})
    grace_days: int = 0
    satisfying_modalities: dict[str, tuple[str, ...]] = field(default_factory=dict)
    contained_regions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tracked_kinds: tuple[str, ...] = ("imaging", "consultation")

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
        tracked = tuple(data.get("tracked_kinds", cls.tracked_kinds))
        unknown = sorted(set(tracked) - set(KINDS))
        if not tracked or unknown:
            raise ValueError(f"tracked_kinds: unknown kind(s) "
                             f"{', '.join(unknown) or '(none given)'}; kinds: {', '.join(KINDS)}")
        return cls(
            default_window_days=windows, grace_days=int(data.get("grace_days", 0)),
            satisfying_modalities={k: tuple(v) for k, v in
                                   data.get("satisfying_modalities", {}).items()},
            contained_regions={k: tuple(v) for k, v in data.get("contained_regions", {}).items()},
            tracked_kinds=tuple(dict.fromkeys(tracked)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"default_window_days": {k: list(v) for k, v in self.default_window_days.items()},
                "grace_days": self.grace_days,
                "satisfying_modalities": {k: list(v) for k, v in
                                          self.satisfying_modalities.items()},
                "contained_regions": {k: list(v) for k, v in self.contained_regions.items()},
                "tracked_kinds": list(self.tracked_kinds)}

    def due_window(self, report_time: datetime, modality: str | None, finding: str | None,
                   interval_min_days: int | None, interval_max_days: int | None, *,
                   short_interval: bool = False) -> tuple[datetime, datetime, bool]:
        """(due start, due end, whether the default window was used). Without a stated
        interval: the window of "short-interval" when the report says so, else of the
        finding, else of the modality, else "*"."""
        stated = stated_window_days(interval_min_days, interval_max_days)
        if stated is not None:
            (low, high), default = stated, False
        else:
            windows = self.default_window_days
            low, high = windows.get(finding or "", windows.get(modality or "", windows["*"]))
            if short_interval:
                low, high = windows.get(SHORT_INTERVAL, (low, high))
            default = True
        return report_time + timedelta(days=low), report_time + timedelta(days=high), default

    def modality_satisfied(self, recommended: str | Sequence[str] | None,
                           exam: str | None) -> bool:
        """Whether an exam of modality ``exam`` fulfils a request for ``recommended`` (one
        modality or acceptable alternatives: any of them will do)."""
        wanted = [recommended] if isinstance(recommended, str) else list(recommended or ())
        if not wanted:
            return exam is not None
        return any(exam in self.satisfying_modalities.get(code, (code,)) for code in wanted)

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


@dataclass(frozen=True)
class DueWindow:
    start: datetime
    end: datetime
    default: bool  # no interval was stated: the rules' default window


def finding_name(finding: FindingOut | None) -> str | None:
    """How follow-ups name the finding a recommendation concerns (concept, else its text)."""
    if finding is None:
        return None
    return finding.concept.name if finding.concept else finding.text.lower()


def concerned_finding(recommendation: RecommendationOut,
                      findings: Sequence[FindingOut]) -> FindingOut | None:
    index = recommendation.finding_index
    return findings[index] if index is not None and 0 <= index < len(findings) else None


def recommendation_due_window(report_time: datetime, recommendation: RecommendationOut,
                              findings: Sequence[FindingOut],
                              rules: FollowUpRules | None = None) -> DueWindow:
    """The one due window of a recommendation: the FHIR ServiceRequest's occurrencePeriod,
    the stored recommendation's and its follow-up's window all come from here."""
    rules = rules or default_rules()
    start, end, default = rules.due_window(
        report_time, recommendation.modality,
        finding_name(concerned_finding(recommendation, findings)),
        recommendation.interval_min_days, recommendation.interval_max_days,
        short_interval=recommendation.short_interval)
    return DueWindow(start, end, default)


@lru_cache(maxsize=1)
def default_rules() -> FollowUpRules:
    return FollowUpRules.from_dict(json.loads(RULES_FILE.read_text(encoding="utf-8")))
