"""Guideline checks of follow-up recommendations, and CMS QPP measures 364, 405 and 406.

Pure functions over one report's ``ReportAnalysis`` and the ``ReportFacts`` the analysis does
not carry (patient age, exam). Sources of the rules:

- Fleischner 2017: MacMahon H, et al. Guidelines for management of incidental pulmonary nodules
  detected on CT images: from the Fleischner Society 2017. Radiology 2017;284(1):228-243.
- Lung-RADS v2022: American College of Radiology, Lung-RADS v2022 assessment categories and
  management (November 2022).
- Incidental thyroid nodules: Hoang JK, et al. Managing incidental thyroid nodules detected on
  imaging: white paper of the ACR Incidental Thyroid Findings Committee. JACR 2015;12:143-150.
- Adrenal: Mayo-Smith WW, et al. Management of incidental adrenal masses: a white paper of the
  ACR Incidental Findings Committee. JACR 2017;14:1038-1044.
- Renal: Herts BR, et al. Management of the incidental renal mass on CT: a white paper of the ACR
  Incidental Findings Committee. JACR 2018;15:264-273; Silverman SG, et al. Bosniak
  classification of cystic renal masses, version 2019. Radiology 2019;292:475-488.
- CMS QPP 2024 MIPS CQM specifications of measures 364, 405 and 406 (see ``evaluate_measures``).

The report's words come from the analysis contract: finding descriptors (texture, benign and
suspicious features, Bosniak class, attenuation), the clinical context (cancer, screening,
Lung-RADS, risk, thyroid disease), statements declining follow-up and the readings of each
recommendation, all read by the pipeline (``pipelines.report_features``) and measured there.
The checks below are decision tables over them; the only text read here is the procedure name
of the order (``ReportFacts``), by the same reader.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from pipelines.recommendations import GUIDELINES
from pipelines.report_features import ClinicalContextInfo, TextItems, read_clinical_context
from pipelines.schema import Descriptor, FindingOut, Mention, RecommendationOut, ReportAnalysis
from pipelines.sections import INDICATION_SECTIONS
from terminology.vocabulary import modality_code, modality_mentions, region_names

Verdict = Literal["consistent", "inconsistent", "not_applicable", "insufficient_information"]
Kind = Literal["pulmonary nodule", "thyroid nodule", "renal cyst", "adrenal nodule"]

FLEISCHNER = "Fleischner 2017"
LUNG_RADS = "Lung-RADS v2022"
THYROID_ACR = "ACR incidental thyroid nodule (QPP 406)"
ABDOMINAL_ACR = "ACR incidental renal/adrenal (QPP 405)"

TOLERANCE_DAYS = 30  # a stated interval may miss the guideline's window by about a month
MASS_MM = 30  # Fleischner covers nodules < 3 cm; larger opacities are masses

# --- Decision tables over the analysis. --------------------------------------------------------

CONCLUSION_SECTIONS = frozenset({"impression", "recommendation", "addendum"})

PULMONARY_NODULE_CONCEPTS = frozenset({
    "pulmonary nodule", "solitary pulmonary nodule", "ground-glass nodule", "part-solid nodule",
    "subsolid nodule", "calcified granuloma", "granuloma"})
GENERIC_CONCEPTS = frozenset({"nodule", "cyst", "lesion", "mass", "calcified granuloma",
                              "granuloma"})
KIND_CONCEPTS: dict[str, Kind] = {
    **dict.fromkeys(PULMONARY_NODULE_CONCEPTS, "pulmonary nodule"),
    "thyroid nodule": "thyroid nodule",
    "renal cyst": "renal cyst", "complex renal cyst": "renal cyst",
    "adrenal nodule": "adrenal nodule", "adrenal adenoma": "adrenal nodule"}
# Guideline kind of a generic finding by the organ the pipeline read for it.
ORGAN_KINDS: dict[tuple[str, str], Kind] = {
    ("lung", "nodule"): "pulmonary nodule", ("lung", "calcified granuloma"): "pulmonary nodule",
    ("lung", "granuloma"): "pulmonary nodule", ("thyroid", "nodule"): "thyroid nodule",
    ("kidney", "cyst"): "renal cyst", ("adrenal", "nodule"): "adrenal nodule",
    ("adrenal", "mass"): "adrenal nodule", ("adrenal", "lesion"): "adrenal nodule"}
# Descriptor values that make a nodule benign for Fleischner 2017 and QPP 364.
BENIGN_NODULE = frozenset({"calcified", "granuloma", "benign", "hamartoma", "fat-containing",
                           "intrapulmonary lymph node"})
# Benign and suspicious adrenal features (Mayo-Smith 2017; QPP 405's "likely benign").
BENIGN_ADRENAL = frozenset({"adenoma", "lipid-rich", "myelolipoma", "macroscopic fat",
                            "fat-containing", "signal drop", "under 10 HU", "stable for years"})
SUSPICIOUS_ADRENAL = frozenset({"heterogeneous", "necrosis", "irregular", "enlarging",
                                "suspicious"})
ADRENAL_BENIGN_HU = 10
# Suspicious thyroid features (Hoang 2015; QPP 406 exclusions).
SUSPICIOUS_THYROID = frozenset({"microcalcification", "invasion", "suspicious",
                                "abnormal lymph nodes", "FDG avid"})
BOSNIAK_BENIGN = ("I", "II", "I/II")
# Guideline names the pipeline reads that are sources for pulmonary nodule follow-up.
NAMED_GUIDELINES = frozenset(name for _, name in GUIDELINES) - {"BI-RADS", "O-RADS", "LI-RADS"}


def _first(descriptors: Iterable[Descriptor], values: frozenset[str]) -> Descriptor | None:
    """The first descriptor (in text order) whose value is one of ``values``."""
    return min((d for d in descriptors if d.value in values), key=lambda d: d.start,
               default=None)


@dataclass(frozen=True)
class ReportFacts:
    """What the checks need about a report besides its analysis (the caller fills it).

    ``text`` is the text the analysis was made from (its offsets point into it); ``modality``
    a DICOM-style code ("CT", "MR", "US", ...); ``body_region`` as in recommendations
    ("chest", "chest/abdomen/pelvis", "neck")."""

    text: str
    age_years: float | None = None
    modality: str | None = None
    body_region: str | None = None
    procedure_name: str | None = None


@dataclass(frozen=True)
class GuidelineVerdict:
    """Whether one recommendation agrees with the guideline for the finding it concerns."""

    guideline: str | None
    verdict: Verdict
    reason: str
    expected_min_days: int | None = None
    expected_max_days: int | None = None


@dataclass(frozen=True)
class MeasureResult:
    """One report's standing in one CMS QPP measure."""

    measure: Literal["364", "405", "406"]
    in_denominator: bool
    in_numerator: bool
    excluded: bool
    reason: str


# --- What a guideline expects, and how a recommendation compares. ---------------------------

Window = tuple[int, int]


@dataclass(frozen=True)
class _Plan:
    """A guideline's management: follow-up ``windows`` (days) by one of ``modalities``;
    ``later`` steps, accepted from recommendations that say they come later ("if stable");
    ``untimed`` procedures accepted without an interval ("PT", "biopsy"). No windows and
    nothing untimed means no follow-up."""

    summary: str
    windows: tuple[Window, ...] = ()
    later: tuple[Window, ...] = ()
    modalities: frozenset[str] = frozenset({"CT"})
    untimed: frozenset[str] = frozenset()

    @property
    def expects_none(self) -> bool:
        return not self.windows and not self.untimed


NO_FOLLOW_UP_PLAN = _Plan("no routine follow-up")


def _judge(plan: _Plan, rec: RecommendationOut) -> tuple[Verdict, str]:
    """The verdict on ``rec`` under ``plan``, and a note on why (beyond the plan itself)."""
    procedure = "biopsy" if rec.tissue_sampling else rec.modality
    if plan.expects_none:
        return "inconsistent", ""
    if procedure in plan.untimed and (rec.interval_min_days is None
                                      or procedure not in plan.modalities):
        return "consistent", ""
    if procedure is not None and procedure not in plan.modalities:
        expected = " or ".join(sorted(plan.modalities | plan.untimed))
        return "inconsistent", f"{expected} is expected, not {procedure}"
    if rec.interval_min_days is None:
        return "insufficient_information", "the recommendation states no interval"
    low, high = rec.interval_min_days, rec.interval_max_days or rec.interval_min_days
    windows = plan.windows + (plan.later if rec.later_step else ())
    if any(w_low - TOLERANCE_DAYS <= low and high <= w_high + TOLERANCE_DAYS
           for w_low, w_high in windows):
        return "consistent", "" if procedure else "modality not stated"
    return "inconsistent", "the interval is outside the expected window"


def _verdict(guideline: str, subject: str, alternatives: list[tuple[str, _Plan]],
             rec: RecommendationOut, unknown: str = "") -> GuidelineVerdict:
    """Judge ``rec`` against each alternative plan (e.g. low and high risk when the risk is
    ``unknown``); consistent with any one is consistent."""
    judged = [(label, plan, *_judge(plan, rec)) for label, plan in alternatives]
    recommended = _describe_rec(rec)
    chosen = next((j for j in judged if j[2] == "consistent"),
                  next((j for j in judged if j[2] == "insufficient_information"), judged[0]))
    label, plan, verdict, note = chosen
    if len(judged) == 1:
        expected = f"{guideline} recommends {plan.summary}"
    elif verdict == "consistent":
        expected = (f"{unknown}; consistent with the {label} recommendation "
                    f"({plan.summary})")
    else:
        expected = f"{unknown}; {guideline} recommends " + " or ".join(
            f"{p.summary} ({lab})" for lab, p, *_ in judged)
    reason = f"{subject}: {expected}; the report recommends {recommended}"
    if note:
        reason += f" ({note})"
    if rec.conditional:
        reason += "; the recommendation is conditional and is judged as written"
    windows = [plan.windows[0]] if verdict == "consistent" and plan.windows else [
        p.windows[0] for _, p, *_ in judged if p.windows]
    return GuidelineVerdict(
        guideline, verdict, reason,
        min(w[0] for w in windows) if windows else None,
        max(w[1] for w in windows) if windows else None)


def _describe_rec(rec: RecommendationOut) -> str:
    # The modality in the report's words ("PET/CT", "chest radiograph"), else its code.
    named = next((m.text for m in modality_mentions(rec.text) if m.value == rec.modality),
                 rec.modality)
    what = "biopsy" if rec.tissue_sampling else named or "follow-up"
    if rec.interval_min_days is None:
        return f"{what} without an interval"
    return f"{what} in {_days_text(rec.interval_min_days, rec.interval_max_days)}"


def _days_text(low: int, high: int | None) -> str:
    """ "6-12 months", "12 months", "2-4 years" from days."""
    high = low if high is None else high
    if low >= 730 and low % 365 == 0 and high % 365 == 0:
        numbers, unit = (low // 365, high // 365), "year"
    else:
        numbers, unit = (round(low / 30.4167), round(high / 30.4167)), "month"
    text = str(numbers[0]) if numbers[0] == numbers[1] else f"{numbers[0]}-{numbers[1]}"
    return f"{text} {unit}{'' if numbers[1] == 1 else 's'}"


# --- One report, with the facts derived from its text. --------------------------------------

class _Report:
    """An analysis and its facts, with list items, sections and clinical context at hand."""

    def __init__(self, analysis: ReportAnalysis, facts: ReportFacts) -> None:
        self.analysis = analysis
        self.facts = facts
        self.text = facts.text
        self._items = TextItems(self.text)

    def item(self, start: int, end: int) -> tuple[int, int]:
        """Bounds of the list item or paragraph line around [start, end)."""
        return self._items.item(start, end)

    def section_at(self, offset: int) -> str | None:
        return next((s.name for s in self.analysis.sections if s.start <= offset < s.end), None)

    @cached_property
    def _ordered(self) -> ClinicalContextInfo:
        """The clinical context the order's procedure name states (read by the pipeline's
        reader: "LOW DOSE CT LUNG CANCER SCREENING")."""
        return read_clinical_context(self.facts.procedure_name or "")

    def _stated(self, key: str, *, ordered_first: bool = True) -> str | None:
        found: list[Mention | None] = [getattr(self.analysis.clinical_context, key),
                                       getattr(self._ordered, key)]
        if ordered_first:
            found.reverse()
        return next((m.text for m in found if m is not None), None)

    @cached_property
    def cancer(self) -> str | None:
        """A known or suspected malignancy: a historical or indication finding, or named in
        the clinical context."""
        return self._stated("cancer", ordered_first=False)

    @cached_property
    def immunosuppression(self) -> str | None:
        return self._stated("immunosuppression")

    @cached_property
    def screening(self) -> str | None:
        return self._stated("screening")

    @cached_property
    def thyroid_disease(self) -> str | None:
        return self._stated("thyroid_disease")

    @property
    def lung_rads(self) -> str | None:
        """The most severe Lung-RADS category stated (0 only when no other is)."""
        return self.analysis.clinical_context.lung_rads

    @cached_property
    def risk(self) -> Literal["low", "high"] | None:
        """Risk as stated (a stated high risk wins over a stated low risk)."""
        stated = {self.analysis.clinical_context.smoking_risk, self._ordered.smoking_risk}
        return "high" if "high" in stated else "low" if "low" in stated else None

    @cached_property
    def exam_modality(self) -> str | None:
        """The exam's modality from the facts, else from the procedure name or exam header."""
        if self.facts.modality:
            return modality_code(self.facts.modality) or self.facts.modality.upper()
        return modality_code(self.exam_text)

    @cached_property
    def exam_regions(self) -> set[str]:
        """Body regions the exam covers ("chest/abdomen/pelvis" covers three)."""
        names = [self.facts.body_region.lower()] if self.facts.body_region else region_names(
            self.exam_text)
        return {part for name in names for part in name.split("/")}

    @cached_property
    def exam_text(self) -> str:
        """The procedure name, else the exam section, else the first line of the report."""
        if self.facts.procedure_name:
            return self.facts.procedure_name
        exam = next((s for s in self.analysis.sections if s.name == "exam"), None)
        if exam is not None:
            return self.text[exam.start:exam.end]
        return self.text.strip().split("\n", 1)[0] if self.text.strip() else ""

    # --- Findings. --------------------------------------------------------------------------

    def kind(self, finding: FindingOut, *, inherit: bool = True) -> Kind | None:
        """The guideline kind of a finding: by its concept, or for a generic concept
        ("nodule", "cyst") by the organ its anatomy or sentence names, else (``inherit``) by
        another finding of that concept and size whose organ is named ("7 mm nodule." in the
        impression after "Lungs: 7 mm nodule ..." in the findings)."""
        name = finding.concept.name if finding.concept else finding.text.lower()
        if name in KIND_CONCEPTS and name not in GENERIC_CONCEPTS:
            return KIND_CONCEPTS[name]
        if name not in GENERIC_CONCEPTS:
            return None
        organ = next((d.value for d in finding.descriptors if d.name == "organ"), None)
        if organ is not None:
            return ORGAN_KINDS.get((organ, name))
        if not inherit:
            return None
        size = _size([finding])
        return next((kind for other in self.analysis.findings
                     if other is not finding and other.concept == finding.concept
                     and (size is None or _size([other]) == size)
                     and (kind := self.kind(other, inherit=False))), None)

    def incidental(self, kind: Kind) -> list[FindingOut]:
        """Present findings of ``kind`` outside the indication and history."""
        return [f for f in self.analysis.findings
                if f.assertion == "present" and not f.historical and not f.hypothetical
                and not f.in_indication and f.section not in INDICATION_SECTIONS
                and self.kind(f) == kind]

    def known(self, kind: Kind) -> bool:
        """Whether the indication or history already names a finding of ``kind``."""
        return any((f.in_indication or f.historical or f.section in INDICATION_SECTIONS)
                   and self.kind(f) == kind for f in self.analysis.findings)

    def concerned(self, index: int) -> FindingOut | None:
        """The finding recommendation ``index`` concerns: one it names (a guideline kind
        first), else the nearest before it in its list item or line, else the pipeline's
        ``finding_index``."""
        rec = self.analysis.recommendations[index]
        usable = [f for f in self.analysis.findings if f.assertion != "absent"
                  and not f.historical and not f.in_indication]
        item_start, _ = self.item(rec.start, rec.end)
        inside = [f for f in usable if rec.start <= f.start and f.end <= rec.end]
        before = [f for f in reversed(usable) if item_start <= f.start < rec.start]
        for candidates in (inside, before):
            if candidates:
                return next((f for f in candidates if self.kind(f)), candidates[0])
        if rec.finding_index is not None and rec.finding_index < len(self.analysis.findings):
            return self.analysis.findings[rec.finding_index]
        return None

    def recs_about(self, findings: list[FindingOut]) -> list[RecommendationOut]:
        ids = {id(f) for f in findings}
        return [rec for i, rec in enumerate(self.analysis.recommendations)
                if id(self.concerned(i)) in ids]


# --- Sizes. -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Size:
    """A size in mm as a range: exact sizes are rounded to whole mm (as Fleischner asks);
    "less than 6 mm" is [0, 6); "subcentimeter" is [0, 10)."""

    low: float
    high: float
    text: str


def _size(findings: Iterable[FindingOut]) -> _Size | None:
    """The largest measured dimension over ``findings``, in mm."""
    best: _Size | None = None
    for finding in findings:
        for m in finding.measurements:
            if m.unit not in ("mm", "cm"):
                continue
            mm = max([m.value, *m.dimensions]) * (10 if m.unit == "cm" else 1)
            if m.qualifier in ("less than", "subcentimeter"):
                size = _Size(0, mm - 0.01, m.text)
            elif m.qualifier == "greater than":
                size = _Size(mm + 0.01, math.inf, m.text)
            else:
                whole = math.floor(mm + 0.5)
                size = _Size(whole, whole, m.text)
            if best is None or size.high > best.high:
                best = size
    return best


def _size_bin(size: _Size, bins: SizeBins) -> str | None:
    """The bin (name, low, high-exclusive) holding the whole size range, if one does."""
    return next((name for name, low, high in bins if low <= size.low and size.high < high), None)


def _mm(size: _Size) -> str:
    return f"{size.low:g} mm" if size.low == size.high else f"{size.text}"


# --- Check of one recommendation. -------------------------------------------------------------

def check_recommendation(analysis: ReportAnalysis, index: int,
                         facts: ReportFacts) -> GuidelineVerdict:
    """The guideline verdict for recommendation ``index``, by the finding it concerns.

    Pulmonary nodules: Lung-RADS v2022 when the report states a category, else Fleischner 2017;
    thyroid nodules: the ACR incidental thyroid nodule white paper; renal cysts and adrenal
    nodules: the ACR incidental findings white papers behind QPP 405. Anything else is
    ``not_applicable``. Conditional recommendations are judged as written."""
    report = _Report(analysis, facts)
    rec = analysis.recommendations[index]
    finding = report.concerned(index)
    kind = report.kind(finding) if finding is not None else None
    if report.lung_rads and (kind == "pulmonary nodule" or rec.guideline == "Lung-RADS"):
        return _check_lung_rads(report, rec)
    if finding is None:
        return GuidelineVerdict(None, "not_applicable",
                                "no guideline rule: the recommendation concerns no finding "
                                "the analysis identified")
    if kind == "pulmonary nodule":
        return _check_fleischner(report, rec, finding)
    if kind == "thyroid nodule":
        return _check_thyroid(report, rec, finding)
    if kind == "renal cyst":
        return _check_renal(report, rec, finding)
    if kind == "adrenal nodule":
        return _check_adrenal(report, rec, finding)
    name = finding.concept.name if finding.concept else finding.text.lower()
    return GuidelineVerdict(None, "not_applicable", f"no guideline rule for {name}")


def _not_applicable(guideline: str, reason: str) -> GuidelineVerdict:
    return GuidelineVerdict(guideline, "not_applicable", reason)


# Lung-RADS v2022 management by category.
LUNG_RADS_PLANS = {
    "0": _Plan("additional lung cancer screening CT images or comparison, LDCT in 1-3 months",
               windows=((30, 90),)),
    "1": _Plan("continued annual screening with LDCT in 12 months", windows=((365, 365),)),
    "2": _Plan("continued annual screening with LDCT in 12 months", windows=((365, 365),)),
    "3": _Plan("LDCT in 6 months", windows=((180, 180),)),
    "4A": _Plan("LDCT in 3 months (PET/CT may be considered)", windows=((90, 90),),
                untimed=frozenset({"PT"})),
    "4B": _Plan("diagnostic chest CT, PET/CT and/or tissue sampling", windows=((0, 90),),
                untimed=frozenset({"CT", "PT", "biopsy"})),
    "4X": _Plan("diagnostic chest CT, PET/CT and/or tissue sampling", windows=((0, 90),),
                untimed=frozenset({"CT", "PT", "biopsy"})),
}


def _check_lung_rads(report: _Report, rec: RecommendationOut) -> GuidelineVerdict:
    category = report.lung_rads
    assert category is not None
    return _verdict(LUNG_RADS, f"Lung-RADS category {category}",
                    [("", LUNG_RADS_PLANS[category])], rec)


# Fleischner 2017 (MacMahon et al., Radiology 2017, Table 1) by (table, size bin, risk);
# risk None where the table does not split by risk.
FLEISCHNER_PLANS: dict[tuple[str, str, str | None], _Plan] = {
    ("solid single", "<6 mm", "low"): NO_FOLLOW_UP_PLAN,
    ("solid single", "<6 mm", "high"): _Plan("optional CT at 12 months",
                                             windows=((365, 365),)),
    ("solid single", "6-8 mm", "low"): _Plan(
        "CT at 6-12 months, then consider CT at 18-24 months",
        windows=((180, 365),), later=((540, 730),)),
    ("solid single", "6-8 mm", "high"): _Plan(
        "CT at 6-12 months, then CT at 18-24 months", windows=((180, 365),),
        later=((540, 730),)),
    ("solid single", ">8 mm", None): _Plan(
        "consider CT at 3 months, PET/CT, or tissue sampling", windows=((90, 90),),
        untimed=frozenset({"PT", "biopsy"})),
    ("solid multiple", "<6 mm", "low"): NO_FOLLOW_UP_PLAN,
    ("solid multiple", "<6 mm", "high"): _Plan("optional CT at 12 months",
                                               windows=((365, 365),)),
    ("solid multiple", "6-8 mm", "low"): _Plan(
        "CT at 3-6 months, then consider CT at 18-24 months", windows=((90, 180),),
        later=((540, 730),)),
    ("solid multiple", "6-8 mm", "high"): _Plan(
        "CT at 3-6 months, then at 18-24 months", windows=((90, 180),), later=((540, 730),)),
    ("solid multiple", ">8 mm", None): _Plan(
        "CT at 3-6 months, then (consider) CT at 18-24 months", windows=((90, 180),),
        later=((540, 730),)),
    ("ground-glass single", "<6 mm", None): NO_FOLLOW_UP_PLAN,
    ("ground-glass single", ">=6 mm", None): _Plan(
        "CT at 6-12 months to confirm persistence, then CT every 2 years until 5 years",
        windows=((180, 365),), later=((730, 730),)),
    ("part-solid single", "<6 mm", None): NO_FOLLOW_UP_PLAN,
    ("part-solid single", ">=6 mm", None): _Plan(
        "CT at 3-6 months to confirm persistence; if unchanged and the solid component "
        "remains <6 mm, annual CT for 5 years", windows=((90, 180),), later=((365, 365),)),
    ("subsolid multiple", "<6 mm", None): _Plan(
        "CT at 3-6 months; if stable, consider CT at 2 and 4 years", windows=((90, 180),),
        later=((730, 730), (1460, 1460))),
    ("subsolid multiple", ">=6 mm", None): _Plan(
        "CT at 3-6 months; subsequent management based on the most suspicious nodule(s)",
        windows=((90, 180),)),
}
# Size bins (name, low, high-exclusive) in whole mm: "6-8 mm" is 6 up to 8 rounded.
SizeBins = list[tuple[str, float, float]]
SOLID_BINS: SizeBins = [("<6 mm", 0, 6), ("6-8 mm", 6, 9), (">8 mm", 9, math.inf)]
SUBSOLID_BINS: SizeBins = [("<6 mm", 0, 6), (">=6 mm", 6, math.inf)]
Texture = Literal["solid", "part-solid", "ground-glass", "subsolid"]


TEXTURE_CONCEPTS: dict[str, Texture] = {
    "part-solid nodule": "part-solid", "ground-glass nodule": "ground-glass",
    "subsolid nodule": "subsolid"}


def _texture(finding: FindingOut) -> Texture | None:
    """Nodule texture from the concept, else as described; ``None`` when unstated."""
    if finding.concept and finding.concept.name in TEXTURE_CONCEPTS:
        return TEXTURE_CONCEPTS[finding.concept.name]
    described = next((d.value for d in finding.descriptors if d.name == "texture"), None)
    return described if described in ("solid", "part-solid", "ground-glass", "subsolid") \
        else None  # type: ignore[return-value]


def _benign_nodule(finding: FindingOut) -> bool:
    return _first(finding.descriptors, BENIGN_NODULE) is not None


def _multiple(nodules: list[FindingOut]) -> bool:
    """Several nodules: a plural finding, words like "multiple", or different sizes."""
    sizes = {s.high for s in (_size([f]) for f in nodules) if s is not None}
    return len(sizes) > 1 or any(
        f.text.lower().endswith("s") or any(d.name == "multiple" for d in f.descriptors)
        for f in nodules)


def _pulmonary_exclusion(report: _Report) -> str | None:
    """Why Fleischner 2017 (and QPP 364) does not apply to this patient, if it does not."""
    age = report.facts.age_years
    if age is not None and age < 35:
        return f"patient aged {age:g} is younger than 35"
    if report.screening:
        return f"lung cancer screening exam ({report.screening!r})"
    if report.cancer:
        return f"known or suspected malignancy ({report.cancer!r})"
    if report.immunosuppression:
        return f"immunosuppressed patient ({report.immunosuppression!r})"
    return None


def _check_fleischner(report: _Report, rec: RecommendationOut,
                      anchor: FindingOut) -> GuidelineVerdict:
    """Fleischner 2017 applies to incidental nodules < 3 cm on CT of adults >= 35 years, not to
    screening, known cancer or immunosuppression. Sizes are the largest measured dimension
    (Fleischner uses the mean of long and short axes, which reports rarely give)."""
    if exclusion := _pulmonary_exclusion(report):
        return _not_applicable(FLEISCHNER, f"Fleischner 2017 does not apply: {exclusion}")
    if _benign_nodule(anchor) or (anchor.concept and "granuloma" in anchor.concept.name):
        return _not_applicable(FLEISCHNER, "Fleischner 2017 does not apply: the nodule is "
                                           "described as calcified or benign")
    nodules = [f for f in report.incidental("pulmonary nodule")
               if not _benign_nodule(f)] or [anchor]
    multiple = _multiple(nodules)
    textures = {id(f): _texture(f) for f in nodules}
    texture = _texture(anchor)
    subsolid = [f for f in nodules if textures[id(f)] not in (None, "solid")]
    if multiple:
        if texture is None:
            texture = "subsolid" if subsolid else "solid"
        sized = (subsolid if texture != "solid" else
                 [f for f in nodules if textures[id(f)] in (None, "solid")]) or nodules
    else:
        same = [f for f in nodules if texture is None or textures[id(f)] in (texture, None)]
        sized = [anchor] if _size([anchor]) else same
        texture = texture or next((t for f in same if (t := textures[id(f)])), None)
    assumed = "" if texture else " (texture not stated: taken as solid)"
    texture = texture or "solid"
    size = _size(sized)
    count = "multiple nodules" if multiple else "single nodule"
    if size is None:
        return GuidelineVerdict(FLEISCHNER, "insufficient_information",
                                f"{texture} {count}: no size stated, Fleischner 2017 "
                                "management depends on it")
    if size.low >= MASS_MM:
        return _not_applicable(FLEISCHNER, f"Fleischner 2017 does not apply: {_mm(size)} is a "
                                           "mass (>= 3 cm), not a nodule")
    # An unspecified single subsolid nodule may be ground-glass or part-solid: accept either.
    judged: list[Texture] = (["ground-glass", "part-solid"] if texture == "subsolid"
                             and not multiple else [texture])
    alternatives: list[tuple[str, _Plan]] = []
    unknown = ""
    for each in judged:
        table = (f"{each} single" if not multiple
                 else "solid multiple" if each == "solid" else "subsolid multiple")
        size_bin = _size_bin(size, SOLID_BINS if each == "solid" else SUBSOLID_BINS)
        if size_bin is None:
            return GuidelineVerdict(FLEISCHNER, "insufficient_information",
                                    f"{texture} {count} of {size.text}: the size does not "
                                    "place it in one Fleischner 2017 size category")
        if (table, size_bin, None) in FLEISCHNER_PLANS:
            alternatives.append((f"{each} {size_bin}", FLEISCHNER_PLANS[table, size_bin, None]))
            if len(judged) > 1:
                unknown = "subsolid nodule not specified as ground-glass or part-solid"
        elif report.risk is not None:
            alternatives.append(("", FLEISCHNER_PLANS[table, size_bin, report.risk]))
        else:
            unknown = "risk not stated"
            alternatives += [(f"{risk}-risk", FLEISCHNER_PLANS[table, size_bin, risk])
                             for risk in ("low", "high")]
    risk = f", {report.risk} risk" if report.risk and texture == "solid" else ""
    subject = f"{texture} {_mm(size)} {count}{risk}{assumed}"
    return _verdict(FLEISCHNER, subject, alternatives, rec, unknown)


def _check_thyroid(report: _Report, rec: RecommendationOut,
                   anchor: FindingOut) -> GuidelineVerdict:
    """ACR white paper (Hoang 2015) for thyroid nodules seen on CT, MRI or non-thyroid US:
    suspicious features -> ultrasound; otherwise ultrasound when >= 1.5 cm (>= 1 cm under 35),
    no further evaluation below."""
    if any(d.name == "ti_rads" for d in anchor.descriptors) or rec.guideline == "TI-RADS":
        return _not_applicable(THYROID_ACR, "the nodule has a TI-RADS assessment: the "
                                            "incidental thyroid nodule rule does not apply")
    if disease := report.thyroid_disease:
        return _not_applicable(THYROID_ACR, f"known thyroid disease ({disease!r})")
    us = _Plan("thyroid ultrasound", modalities=frozenset({"US"}), untimed=frozenset({"US"}))
    none = _Plan("no further evaluation")
    if suspicious := _first(anchor.descriptors, SUSPICIOUS_THYROID):
        return _verdict(THYROID_ACR, f"thyroid nodule with a suspicious feature "
                                     f"({suspicious.text!r})", [("", us)], rec)
    size = _size([anchor]) or _size(report.incidental("thyroid nodule"))
    if size is None:
        return GuidelineVerdict(THYROID_ACR, "insufficient_information",
                                "thyroid nodule without a stated size: the ACR rule depends "
                                "on it")
    subject = f"{_mm(size)} thyroid nodule without suspicious features"
    age = report.facts.age_years
    if size.high < 10:
        return _verdict(THYROID_ACR, subject + " (< 1 cm)", [("", none)], rec)
    if size.low >= 15 or (age is not None and age < 35 and size.low >= 10):
        return _verdict(THYROID_ACR, subject + (f", age {age:g}" if age is not None else ""),
                        [("", us)], rec)
    if size.high < 15 and age is not None:
        return _verdict(THYROID_ACR, f"{subject}, age {age:g} (>= 35)", [("", none)], rec)
    if size.high < 15:
        return _verdict(THYROID_ACR, subject, [("age >= 35", none), ("age < 35", us)], rec,
                        "age not given")
    return GuidelineVerdict(THYROID_ACR, "insufficient_information",
                            f"thyroid nodule of {size.text}: the size does not settle the "
                            "ACR size threshold")


def _bosniak(cysts: list[FindingOut]) -> str | None:
    """Bosniak class (I, II, IIF, III, IV) of a renal cyst; "simple" reads as I/II and complex
    features without a class as "complex"."""
    for finding in cysts:
        if stated := next((d.value for d in finding.descriptors if d.name == "bosniak"), None):
            return stated
    for finding in cysts:
        cyst_type = next((d.value for d in finding.descriptors if d.name == "cyst_type"), None)
        complex_concept = finding.concept is not None and (
            finding.concept.name == "complex renal cyst")
        if complex_concept or cyst_type == "complex":
            return "complex"
        if cyst_type == "simple":
            return "I/II"
    return None


def _check_renal(report: _Report, rec: RecommendationOut,
                 anchor: FindingOut) -> GuidelineVerdict:
    """Bosniak I/II (and simple) renal cysts are benign: no follow-up (ACR 2018, Bosniak
    2019); other classes have no rule here."""
    category = _bosniak([anchor, *report.incidental("renal cyst")])
    if category is None:
        return GuidelineVerdict(ABDOMINAL_ACR, "insufficient_information",
                                "renal cyst neither described as simple nor given a Bosniak "
                                "class")
    if category not in BOSNIAK_BENIGN:
        return _not_applicable(ABDOMINAL_ACR, f"no guideline rule for a Bosniak {category} "
                                              "renal cyst" if category != "complex" else
                               "no guideline rule for a complex renal cyst without a Bosniak "
                               "class")
    subject = f"Bosniak {category} renal cyst" if category != "I/II" else "simple renal cyst"
    return _verdict(ABDOMINAL_ACR, subject, [("", _Plan("no follow-up imaging"))], rec)


def _adrenal_class(report: _Report, anchor: FindingOut
                   ) -> tuple[_Size | None, str | None, str | None]:
    """(size, benign feature, suspicious feature) of an adrenal nodule."""
    nodules = [anchor, *report.incidental("adrenal nodule")]
    size = _size([anchor]) or _size(nodules)
    benign = suspicious = None
    for finding in nodules:
        if finding.concept and finding.concept.name == "adrenal adenoma":
            benign = benign or "adenoma"
        if feature := _first(finding.descriptors, BENIGN_ADRENAL):
            benign = benign or feature.text
        if any(float(d.value) <= ADRENAL_BENIGN_HU for d in finding.descriptors
               if d.name == "attenuation_hu"):
            benign = benign or f"attenuation <= {ADRENAL_BENIGN_HU} HU"
        feature = _first(finding.descriptors, SUSPICIOUS_ADRENAL)
        suspicious = suspicious or (feature.text if feature else None) or (
            "increased in size" if finding.change == "increased" else None)
    return size, benign, suspicious


def _check_adrenal(report: _Report, rec: RecommendationOut,
                   anchor: FindingOut) -> GuidelineVerdict:
    """ACR 2017 (Mayo-Smith) for adrenal nodules in patients without cancer: <= 1 cm, or 1-4 cm
    with benign features, needs no follow-up; 1-4 cm indeterminate needs adrenal CT or MRI."""
    if report.cancer:
        return _not_applicable(ABDOMINAL_ACR, f"known or suspected malignancy "
                                              f"({report.cancer!r}): the ACR pathway for "
                                              "cancer patients is not implemented")
    size, benign, suspicious = _adrenal_class(report, anchor)
    if size is None:
        return GuidelineVerdict(ABDOMINAL_ACR, "insufficient_information",
                                "adrenal nodule without a stated size")
    none = _Plan("no follow-up imaging")
    if size.high <= 10:
        return _verdict(ABDOMINAL_ACR, f"{_mm(size)} adrenal nodule (<= 1 cm)", [("", none)],
                        rec)
    if size.high > 40:
        return _not_applicable(ABDOMINAL_ACR, f"no guideline rule for an adrenal nodule of "
                                              f"{_mm(size)} (> 4 cm)")
    if benign and not suspicious:
        return _verdict(ABDOMINAL_ACR, f"{_mm(size)} adrenal nodule with benign features "
                                       f"({benign!r})", [("", none)], rec)
    workup = _Plan("adrenal-protocol CT or MRI (or CT at 12 months if 1-2 cm)",
                   windows=((365, 365),), modalities=frozenset({"CT", "MR"}),
                   untimed=frozenset({"CT", "MR"}))
    why = f"suspicious feature {suspicious!r}" if suspicious else "no benign features stated"
    return _verdict(ABDOMINAL_ACR, f"{_mm(size)} indeterminate adrenal nodule ({why})",
                    [("", workup)], rec)


# --- CMS QPP measures. ------------------------------------------------------------------------

def evaluate_measures(analysis: ReportAnalysis, facts: ReportFacts) -> list[MeasureResult]:
    """The report's result in each of QPP measures 364, 405 and 406 whose initial population it
    belongs to (in the denominator, or excluded from it); measures it is outside of are left
    out. Patient age is required by all three: with ``facts.age_years`` unknown no measure is
    evaluated. Excluded reports have ``in_denominator`` False."""
    report = _Report(analysis, facts)
    results = [_measure_364(report), _measure_405(report), _measure_406(report)]
    return [r for r in results if r is not None]


def _measure_364(report: _Report) -> MeasureResult | None:
    """QPP 364, Optimizing Patient Exposure to Ionizing Radiation: Appropriateness: Follow-up CT
    Imaging for Incidentally Detected Pulmonary Nodules According to Recommended Guidelines
    (process, higher is better).

    Denominator: final reports of CT imaging studies with an incidental pulmonary nodule for
    patients aged >= 35 (the 2024 spec says "CT imaging studies", so a CT abdomen showing a
    lung-base nodule counts; a chest CT always does). Incidental: present, not historical or
    hypothetical, not in the indication, and no nodule named in the indication or history;
    calcified/benign nodules and masses >= 3 cm do not count. Numerator: the impression or
    conclusion (impression, recommendation or addendum section; anywhere when the report has
    none) recommends follow-up for the nodule with an interval, a modality (imaging or biopsy)
    and a named guideline source (Fleischner, ACCP, ACR, Lung-RADS, ...), or states that no
    follow-up is needed citing such a source. Exclusions (as this audit applies them):
    lung cancer screening, known or suspected malignancy, immunosuppression; age < 35 is
    outside the population. Whether the recommendation agrees with the guideline is not part
    of the numerator (see ``check_recommendation``)."""
    age = report.facts.age_years
    nodules = [f for f in report.incidental("pulmonary nodule")
               if not _benign_nodule(f) and ((s := _size([f])) is None or s.low < MASS_MM)]
    if (not nodules or report.known("pulmonary nodule") or report.exam_modality != "CT"
            or age is None or age < 35):
        return None
    if exclusion := _pulmonary_exclusion(report):
        return MeasureResult("364", False, False, True, f"excluded: {exclusion}")
    missing: list[str] = []
    for rec in report.recs_about(nodules):
        if not _in_conclusion(report, rec.start):
            missing.append(f"{rec.text!r} is not in the impression")
            continue
        lacks = [what for what, present in (
            ("interval", rec.interval_min_days is not None),
            ("modality", rec.modality is not None or rec.tissue_sampling),
            ("guideline source", rec.guideline in NAMED_GUIDELINES or rec.cited_source),
        ) if not present]
        if not lacks:
            return MeasureResult("364", True, True, False,
                                 f"the impression recommends {_describe_rec(rec)} citing "
                                 f"{rec.cited_source or rec.guideline or 'a guideline'}")
        missing.append(f"{rec.text!r} lacks the {' and '.join(lacks)}")
    for declined in report.analysis.declined_follow_up:
        if not _in_conclusion(report, declined.start):
            continue
        if declined.source:
            return MeasureResult("364", True, True, False,
                                 f"the impression states no follow-up is needed citing "
                                 f"{declined.source}")
        missing.append("the no-follow-up statement cites no guideline source")
    return MeasureResult("364", True, False, False, "; ".join(missing) if missing else
                         "the impression gives no follow-up recommendation for the nodule")


def _in_conclusion(report: _Report, offset: int) -> bool:
    """Whether an offset lies in the impression or conclusion (anywhere in a report without
    one)."""
    if not any(s.name in CONCLUSION_SECTIONS for s in report.analysis.sections):
        return True
    return report.section_at(offset) in CONCLUSION_SECTIONS


def _follow_up_numerator(report: _Report, lesions: list[FindingOut],
                         what: str) -> tuple[bool, str]:
    """Whether follow-up imaging is recommended for one of ``lesions``: a recommendation
    concerning it that is not conditional, or that names an imaging modality."""
    conditional_only = []
    for rec in report.recs_about(lesions):
        if not rec.conditional or rec.modality is not None:
            return True, f"follow-up imaging recommended for the {what}: {rec.text!r}"
        conditional_only.append(rec.text)
    if conditional_only:
        return False, (f"only a conditional recommendation without imaging for the {what}: "
                       f"{conditional_only[0]!r}")
    return False, f"no follow-up imaging recommended for the {what}"


def _measure_405(report: _Report) -> MeasureResult | None:
    """QPP 405, Appropriate Follow-up Imaging for Incidental Abdominal Lesions (inverse: lower
    is better).

    Denominator: final reports of imaging studies for patients aged >= 18 with an incidental
    cystic renal lesion that is simple appearing (Bosniak I or II), an adrenal lesion <= 1.0
    cm, or an adrenal lesion > 1.0 cm and <= 4.0 cm classified as likely benign (here: adenoma,
    lipid-rich, macroscopic fat, <= 10 HU, or stable for a year or more, stated in the text).
    Numerator: follow-up imaging is recommended for such a lesion (a recommendation concerning
    it that is not conditional, or that names an imaging modality). Exclusion: known or
    suspected malignancy (the spec's "medical reason", e.g. a cancer that can metastasize).
    Lesions with suspicious features are not likely benign, so never enter the population.
    Renal cysts without "simple" or a Bosniak class, and adrenal lesions without a size, are
    not counted: the report does not say enough."""
    age = report.facts.age_years
    cysts = [f for f in report.incidental("renal cyst") if _bosniak([f]) in BOSNIAK_BENIGN]
    adrenals = []
    for finding in report.incidental("adrenal nodule"):
        size, benign, suspicious = _adrenal_class(report, finding)
        if size is not None and not suspicious and (
                size.high <= 10 or (size.high <= 40 and benign)):
            adrenals.append(finding)
    lesions = cysts + adrenals
    if not lesions or age is None or age < 18:
        return None
    what = " and ".join(w for w, found in (("Bosniak I/II renal cyst", cysts),
                                           ("benign-appearing adrenal nodule", adrenals))
                        if found)
    if report.cancer:
        return MeasureResult("405", False, False, True,
                             f"excluded: known or suspected malignancy ({report.cancer!r})")
    met, reason = _follow_up_numerator(report, lesions, what)
    return MeasureResult("405", True, met, False, reason)


def _measure_406(report: _Report) -> MeasureResult | None:
    """QPP 406, Appropriate Follow-Up Imaging for Incidental Thyroid Nodules in Patients
    (inverse: lower is better).

    Denominator: final reports of CT, CTA, MRI or MRA of the chest or neck, or ultrasound of the
    neck (not a thyroid ultrasound: its nodules are not incidental), for patients aged >= 18
    with an incidental thyroid nodule < 1.0 cm. Numerator: follow-up imaging recommended for
    it (as in 405). Exclusions: known thyroid disease or cancer, multiple endocrine neoplasia,
    or a nodule with suspicious features (invasion, abnormal lymph nodes, avid on PET,
    microcalcifications). Nodules without a stated size are not counted. Exam modality and
    region come from the facts, else the procedure name or exam header; when neither tells,
    the report is not evaluated."""
    age = report.facts.age_years
    modality, regions = report.exam_modality, report.exam_regions
    exam_fits = ((modality in ("CT", "MR") and regions & {"chest", "neck", "head"})
                 or (modality == "US" and "neck" in regions and "thyroid" not in regions))
    nodules = [f for f in report.incidental("thyroid nodule")
               if (s := _size([f])) is not None and s.high < 10]
    if (not nodules or not exam_fits or age is None or age < 18
            or report.known("thyroid nodule")):
        return None
    if disease := report.thyroid_disease:
        return MeasureResult("406", False, False, True,
                             f"excluded: known thyroid disease ({disease!r})")
    for finding in nodules:
        if suspicious := _first(finding.descriptors, SUSPICIOUS_THYROID):
            return MeasureResult("406", False, False, True, "excluded: thyroid nodule with a "
                                 f"suspicious feature ({suspicious.text!r})")
    met, reason = _follow_up_numerator(report, nodules, "thyroid nodule < 1 cm")
    return MeasureResult("406", True, met, False, reason)
