"""Follow-up matching rules: due windows and which exams satisfy a recommendation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nlp_service.audit.rules import FollowUpRules, default_rules

REPORTED = datetime(2026, 1, 5, tzinfo=UTC)


def test_stated_interval_wins_then_finding_then_modality_defaults() -> None:
    rules = FollowUpRules.from_dict({"default_window_days": {
        "*": [0, 90], "MG": [0, 180], "thyroid nodule": [0, 60]}})
    assert rules.due_window(REPORTED, "CT", "nodule", 180, 365) == (
        REPORTED + timedelta(days=180), REPORTED + timedelta(days=365), False)
    assert rules.due_window(REPORTED, "CT", None, None, 30)[:2] == (
        REPORTED + timedelta(days=30), REPORTED + timedelta(days=30))
    assert rules.due_window(REPORTED, "US", "thyroid nodule", None, None)[1:] == (
        REPORTED + timedelta(days=60), True)
    assert rules.due_window(REPORTED, "MG", "mass", None, None)[1] == REPORTED + timedelta(180)
    assert rules.due_window(REPORTED, None, None, None, None)[1] == REPORTED + timedelta(90)


@pytest.mark.parametrize(("recommended", "exam", "satisfied"), [
    (("CT", "chest"), ("CT", "chest"), True),
    (("CT", "chest"), ("CT", "chest/abdomen/pelvis"), True),
    (("CT", "abdomen/pelvis"), ("CT", "abdomen"), False),
    (("CT", "chest"), ("XR", "chest"), False),
    (("XR", "chest"), ("CT", "chest"), True),
    (("MR", "liver"), ("MR", "abdomen"), True),
    (("US", "thyroid"), ("US", "head/neck"), True),
    (("US", "thyroid"), ("US", "abdomen"), False),
    ((None, "chest"), ("MR", "chest"), True),
    (("CT", None), ("CT", "head"), True),
])
def test_which_exams_satisfy(recommended: tuple[str | None, str | None],
                             exam: tuple[str | None, str | None], satisfied: bool) -> None:
    rules = default_rules()
    assert (rules.modality_satisfied(recommended[0], exam[0])
            and rules.region_satisfied(recommended[1], exam[1])) is satisfied


def test_rules_round_trip_and_reject_bad_values() -> None:
    rules = default_rules()
    assert FollowUpRules.from_dict(rules.to_dict()) == rules
    with pytest.raises(ValueError, match="'\\*'"):
        FollowUpRules.from_dict({"default_window_days": {"CT": [0, 90]}})
    with pytest.raises(ValueError, match="min <= max"):
        FollowUpRules.from_dict({"default_window_days": {"*": [90, 0]}})
    with pytest.raises(ValueError, match="grace_days"):
        FollowUpRules.from_dict({"default_window_days": {"*": [0, 90]}, "grace_days": -1})


def test_tracked_kinds_default_and_validation() -> None:
    assert default_rules().tracked_kinds == ("imaging", "consultation")
    assert FollowUpRules.from_dict({"default_window_days": {"*": [0, 90]}}).tracked_kinds == (
        "imaging", "consultation")
    rules = FollowUpRules.from_dict({"default_window_days": {"*": [0, 90]},
                                     "tracked_kinds": ["imaging", "communication", "imaging"]})
    assert rules.tracked_kinds == ("imaging", "communication")
    assert FollowUpRules.from_dict(rules.to_dict()) == rules
    for bad in (["imaging", "guesswork"], []):
        with pytest.raises(ValueError, match="tracked_kinds"):
            FollowUpRules.from_dict({"default_window_days": {"*": [0, 90]},
                                     "tracked_kinds": bad})
