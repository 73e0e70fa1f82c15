"""Inter-annotator agreement on a two-annotator fixture whose scores are computed by hand.

The fixture (``alice`` is ``a``, ``bob`` is ``b``; bob is scored against alice):

- r1 "No pneumothorax. Possible pleural effusion in the left lower lobe."
  alice: pneumothorax FINDING absent, pleural effusion FINDING possible, left lower lobe ANATOMY
  bob:   pneumothorax FINDING absent, pleural effusion FINDING present (assertion),
         lower lobe ANATOMY (boundary)
- r2 "Stable 6 mm nodule in the right upper lobe. Mild atelectasis. Follow-up CT in 12 months."
  alice: 6 mm MEASUREMENT, nodule FINDING present, right upper lobe ANATOMY,
         atelectasis FINDING present, recommendation "Follow-up CT in 12 months."
  bob:   (no measurement), nodule FINDING present, right upper lobe ANATOMY,
         Mild atelectasis FINDING present (boundary), the same recommendation
- r3 "Spleen measures 15 cm. No ascites. Possible gallstones."
  alice: 15 cm MEASUREMENT, ascites FINDING absent, gallstones FINDING possible
  bob:   15 cm ANATOMY (label), ascites FINDING absent, gallstones FINDING absent (assertion)
- r4 only alice annotated, r5 only bob: neither counts.

Span counts (exact offsets and label):

    label           tp  fp  fn   F1 = 2tp / (2tp + fp + fn)
    FINDING          5   1   1   10 / 12 = 0.8333
    ANATOMY          1   2   1    2 / 5  = 0.4
    MEASUREMENT      0   0   2    0 / 2  = 0.0
    RECOMMENDATION   1   0   0    2 / 2  = 1.0
    overall          7   3   4   14 / 21 = 0.6667
"""

from __future__ import annotations

import pytest

from annotations.agreement import (
    agreement_report,
    assertion_kappa,
    assertion_pairs,
    span_agreement,
)
from annotations.document import AnnotatedReport

R1 = "No pneumothorax. Possible pleural effusion in the left lower lobe."
R2 = "Stable 6 mm nodule in the right upper lobe. Mild atelectasis. Follow-up CT in 12 months."
R3 = "Spleen measures 15 cm. No ascites. Possible gallstones."


def report(report_id: str, text: str, spans: list[tuple[str, str, str | None]],
           recommendations: tuple[str, ...] = ()) -> AnnotatedReport:
    """A report with spans given as (text, label, assertion), located by their first match."""
    return AnnotatedReport(
        id=report_id, text=text,
        spans=[{"start": text.index(s), "end": text.index(s) + len(s), "label": label,
                "assertion": assertion} for s, label, assertion in spans],
        recommendations=[{"start": text.index(r), "end": text.index(r) + len(r)}
                         for r in recommendations])


ALICE = [
    report("r1", R1, [("pneumothorax", "FINDING", "absent"),
                      ("pleural effusion", "FINDING", "possible"),
                      ("left lower lobe", "ANATOMY", None)]),
    report("r2", R2, [("6 mm", "MEASUREMENT", None), ("nodule", "FINDING", "present"),
                      ("right upper lobe", "ANATOMY", None),
                      ("atelectasis", "FINDING", "present")],
           ("Follow-up CT in 12 months.",)),
    report("r3", R3, [("15 cm", "MEASUREMENT", None), ("ascites", "FINDING", "absent"),
                      ("gallstones", "FINDING", "possible")]),
    report("r4", "No fracture.", [("fracture", "FINDING", "absent")]),
]
BOB = [
    report("r3", R3, [("15 cm", "ANATOMY", None), ("ascites", "FINDING", "absent"),
                      ("gallstones", "FINDING", "absent")]),
    report("r1", R1, [("pneumothorax", "FINDING", "absent"),
                      ("pleural effusion", "FINDING", "present"),
                      ("lower lobe", "ANATOMY", None)]),
    report("r2", R2, [("nodule", "FINDING", "present"), ("right upper lobe", "ANATOMY", None),
                      ("Mild atelectasis", "FINDING", "present")],
           ("Follow-up CT in 12 months.",)),
    report("r5", "No effusion.", [("effusion", "FINDING", "present")]),
]


def test_agreement_report_on_the_two_annotator_fixture() -> None:
    result = agreement_report({"bob": BOB, "alice": ALICE})
    [pair] = result.pairs
    assert (pair.annotator_a, pair.annotator_b, pair.reports) == ("alice", "bob", 3)
    counts = {label: (prf.tp, prf.fp, prf.fn) for label, prf in pair.per_label.items()}
    assert counts == {"FINDING": (5, 1, 1), "ANATOMY": (1, 2, 1), "MEASUREMENT": (0, 0, 2),
                      "RECOMMENDATION": (1, 0, 0)}
    assert pair.label_f1 == pytest.approx(
        {"FINDING": 10 / 12, "ANATOMY": 2 / 5, "MEASUREMENT": 0.0, "RECOMMENDATION": 1.0})
    assert pair.span_f1 == pytest.approx(14 / 21)

    # Assertions of the 5 FINDING spans both marked exactly (rows alice, columns bob):
    #
    #     alice \ bob   present  absent  possible | total
    #     present          1        0       0     |   1
    #     absent           0        2       0     |   2
    #     possible         1        1       0     |   2
    #     total            2        3       0     |   5
    #
    # po = (1 + 2 + 0) / 5 = 0.6
    # pe = (1*2 + 2*3 + 2*0) / 5^2 = 8 / 25 = 0.32
    # kappa = (0.6 - 0.32) / (1 - 0.32) = 0.28 / 0.68 = 0.41176...
    assert pair.matched_findings == 5
    assert pair.assertion_kappa == pytest.approx(0.28 / 0.68)
    assert result.pair("bob", "alice") is pair

    summary = result.as_dict()["pairs"][0]
    assert summary["span_f1"] == pytest.approx(0.6667)
    assert summary["assertion_kappa"] == pytest.approx(0.4118)
    assert summary["per_label"]["ANATOMY"] == {"tp": 1, "fp": 2, "fn": 1, "precision": 0.3333,
                                               "recall": 0.5, "f1": 0.4}


def test_span_agreement_is_symmetric_in_f1() -> None:
    forward = span_agreement(ALICE[0], BOB[1])
    backward = span_agreement(BOB[1], ALICE[0])
    assert {lb: (p.tp, p.fp, p.fn) for lb, p in forward.items()} == {
        lb: (p.tp, p.fn, p.fp) for lb, p in backward.items()}
    assert forward["FINDING"].f1 == backward["FINDING"].f1 == 1.0
    assert forward["ANATOMY"].f1 == backward["ANATOMY"].f1 == 0.0


def test_assertion_pairs_follow_exact_finding_matches() -> None:
    assert assertion_pairs(ALICE[1], BOB[2]) == [("present", "present")]
    assert assertion_pairs(ALICE[2], BOB[0]) == [("absent", "absent"), ("possible", "absent")]


@pytest.mark.parametrize(("pairs", "kappa"), [
    ([("present", "present"), ("absent", "absent")], 1.0),
    # po = 0, pe = (1*1 + 1*1) / 4 = 0.5: kappa = -0.5 / 0.5 = -1
    ([("present", "absent"), ("absent", "present")], -1.0),
    # po = 1/3, pe = (2*2 + 1*1) / 9 = 5/9: kappa = (3/9 - 5/9) / (4/9) = -0.5
    ([("present", "present"), ("present", "absent"), ("absent", "present")], -0.5),
    ([], None),
    # Both annotators used one category throughout: pe = 1, kappa is 0 / 0.
    ([("absent", "absent")] * 4, None),
])
def test_assertion_kappa(pairs: list[tuple[str, str]], kappa: float | None) -> None:
    assert assertion_kappa(pairs) == (pytest.approx(kappa) if kappa is not None else None)


def test_reports_must_match_and_be_unique() -> None:
    with pytest.raises(ValueError, match="different reports"):
        span_agreement(ALICE[0], ALICE[1])
    changed = ALICE[0].model_copy(update={"text": ALICE[0].text + " "})
    with pytest.raises(ValueError, match="different texts"):
        span_agreement(ALICE[0], changed)
    with pytest.raises(ValueError, match="annotator 'alice' annotated report 'r1' twice"):
        agreement_report({"alice": [ALICE[0], ALICE[0]], "bob": BOB})


def test_pairs_of_three_annotators_and_empty_overlap() -> None:
    result = agreement_report({"carol": [ALICE[3]], "alice": ALICE, "bob": BOB})
    assert [(p.annotator_a, p.annotator_b) for p in result.pairs] == [
        ("alice", "bob"), ("alice", "carol"), ("bob", "carol")]
    assert result.pair("alice", "carol").span_f1 == 1.0
    assert result.pair("alice", "carol").assertion_kappa is None  # one pair, one category
    nothing = result.pair("bob", "carol")
    assert (nothing.reports, nothing.span_f1, nothing.assertion_kappa) == (0, None, None)
    with pytest.raises(KeyError):
        result.pair("alice", "dave")
