import pytest

from pipelines.context import ContextRule, load_context_rules


@pytest.mark.parametrize(
    ("text", "target", "expected"),
    [
        ("No pneumothorax, effusion, or consolidation.", "consolidation", "absent"),
        ("No pneumothorax, effusion, or consolidation.", "effusion", "absent"),
        ("There is no evidence of pneumothorax.", "pneumothorax", "absent"),
        ("Pneumothorax is not seen.", "pneumothorax", "absent"),
        ("No effusion, but there is a small left pneumothorax.", "pneumothorax", "present"),
        ("No effusion; small right pneumothorax.", "pneumothorax", "present"),
        ("No change in the right lower lobe consolidation.", "consolidation", "present"),
        ("No significant change in the pleural effusion.", "pleural effusion", "present"),
        ("Possible small left pleural effusion.", "pleural effusion", "possible"),
        ("Pneumothorax cannot be excluded.", "pneumothorax", "possible"),
        ("Findings suspicious for pneumonia.", "pneumonia", "possible"),
        ("Atelectasis versus pneumonia at the left base.", "pneumonia", "possible"),
        ("The previously seen pneumothorax has resolved.", "pneumothorax", "absent"),
        ("Interval resolution of the pleural effusion.", "pleural effusion", "absent"),
        ("Small pneumothorax.", "pneumothorax", "present"),
    ],
)
def test_assertions(analyze, finding, text, target, expected):
    assert finding(analyze(text), target).assertion == expected


def test_negation_does_not_leak_into_the_next_sentence(analyze, finding):
    analysis = analyze("No pneumothorax. Large pleural effusion.")
    assert finding(analysis, "pleural effusion").assertion == "present"


def test_historical_and_hypothetical(analyze, finding):
    analysis = analyze("HISTORY: History of pneumonia. Rule out pneumothorax.\n"
                       "FINDINGS: If symptoms persist, consider pleural effusion.")
    assert finding(analysis, "pneumonia").historical
    assert finding(analysis, "pneumothorax").hypothetical
    assert not finding(analysis, "pneumonia").hypothetical


def test_resolved_sets_change(analyze, finding):
    analysis = analyze("Previously seen right middle lobe atelectasis has resolved.")
    atelectasis = finding(analysis, "atelectasis")
    assert (atelectasis.assertion, atelectasis.change) == ("absent", "resolved")


def test_rules_round_trip_and_reject_bad_rules():
    rules = load_context_rules()
    assert len(rules) > 150
    assert all(ContextRule.from_dict(r.to_dict()) == r for r in rules)
    with pytest.raises(ValueError, match="direction"):
        ContextRule("no", "NEGATED_EXISTENCE", "sideways")
    with pytest.raises(ValueError, match="category"):
        ContextRule("no", "NEGATED", "forward")


# The real-prose inventory: one sentence written by the team per trigger family.
@pytest.mark.parametrize(
    ("text", "target", "expected"),
    [
        # negation
        ("The lungs are clear of focal airspace disease, pneumothorax, or pleural effusion.",
         "pneumothorax", "absent"),
        ("The lungs are clear of focal airspace disease, pneumothorax, or pleural effusion.",
         "pleural effusion", "absent"),
        ("Lungs are clear of any consolidation.", "consolidation", "absent"),
        ("The pleural spaces are free of effusion.", "effusion", "absent"),
        ("Normal heart size without evidence of pulmonary edema.", "pulmonary edema",
         "absent"),
        ("Chest without signs of pneumothorax.", "pneumothorax", "absent"),
        ("Exam negative for rib fracture.", "rib fracture", "absent"),
        ("The nodule is no longer seen.", "nodule", "absent"),
        ("Left basilar atelectasis has resolved.", "atelectasis", "absent"),
        ("Consolidation and atelectasis in the left lower lobe have cleared in the interval.",
         "consolidation", "absent"),
        ("Pneumothorax is absent.", "pneumothorax", "absent"),
        ("A pneumothorax is not clearly seen.", "pneumothorax", "absent"),
        ("The small nodule described previously is not identified.", "nodule", "absent"),
        ("The right lower lobe nodule is not well-seen on this study.", "nodule", "absent"),
        ("Pleural effusion is not visualized.", "pleural effusion", "absent"),
        ("Findings favor atelectasis rather than pneumonia.", "pneumonia", "absent"),
        ("No convincing consolidation.", "consolidation", "absent"),
        # uncertainty
        ("A small pneumothorax cannot be excluded.", "pneumothorax", "possible"),
        ("Early pneumonia is not excluded.", "pneumonia", "possible"),
        ("Questionable small left pleural effusion.", "pleural effusion", "possible"),
        ("Question small right pleural effusion.", "pleural effusion", "possible"),
        ("Left basilar opacity suspicious for pneumonia.", "pneumonia", "possible"),
        ("Hilar fullness concerning for lymphadenopathy.", "lymphadenopathy", "possible"),
        ("Right basilar opacity may represent atelectasis.", "atelectasis", "possible"),
        ("There may also be a small left pleural effusion.", "pleural effusion", "possible"),
        ("Interstitial prominence could reflect early pulmonary edema.", "pulmonary edema",
         "possible"),
        ("Differential considerations include pneumonia and hemorrhage.", "hemorrhage",
         "possible"),
        ("The differential diagnosis includes round pneumonia.", "round pneumonia",
         "possible"),
        ("The differential of these opacities includes pulmonary edema.", "pulmonary edema",
         "possible"),
        ("Subsegmental atelectasis versus scarring at the left base.", "scarring", "possible"),
        ("Pneumonia in the appropriate clinical setting.", "pneumonia", "possible"),
        ("Aspiration or edema are also possible.", "edema", "possible"),
        ("There may be a small pleural effusion.", "pleural effusion", "possible"),
        ("Bandlike opacities appear to represent scarring.", "scarring", "possible"),
        # pseudo-negation and termination
        ("No change in the right pleural effusion.", "pleural effusion", "present"),
        ("No significant interval change in the left lower lobe atelectasis.", "atelectasis",
         "present"),
        ("Mild atelectasis is again seen without significant interval change.", "atelectasis",
         "present"),
        ("Not only atelectasis but also consolidation at the left base.", "atelectasis",
         "present"),
        ("No pneumothorax, but a small left pleural effusion.", "pleural effusion", "present"),
        ("No pneumothorax; however, a small pleural effusion is present.", "pleural effusion",
         "present"),
        ("No consolidation, although mild atelectasis is present.", "atelectasis", "present"),
        ("No pleural effusion, which was seen before, and new pneumothorax.", "pneumothorax",
         "present"),
        ("The lungs are otherwise clear; mild atelectasis at the right base.", "atelectasis",
         "present"),
        # lists: one trigger over commas and "or", and "or" alone does not hedge
        ("No focal consolidation, pneumothorax, or large pleural effusion.", "pleural effusion",
         "absent"),
        ("Minimal scarring or atelectasis at the left lung base.", "atelectasis", "present"),
        # a sentence ending in ".." ends like one ending in "."
        ("No pleural effusion.. Minimal right basilar atelectasis noted.", "atelectasis",
         "present"),
    ],
)
def test_real_prose_inventory(analyze, finding, text, target, expected):
    assert finding(analyze(text), target).assertion == expected


@pytest.mark.parametrize(
    ("text", "target", "flag"),
    [
        ("Bony overlap could obscure a small pulmonary nodule.", "pulmonary nodule",
         "hypothetical"),
        ("Old left rib fracture.", "rib fracture", "historical"),
        ("A CT would help to determine if there is lymphadenopathy.", "lymphadenopathy",
         "hypothetical"),
        ("Healed right clavicle fracture.", "clavicle fracture", "historical"),
    ],
)
def test_flags_from_real_prose(analyze, finding, text, target, flag):
    assert getattr(finding(analyze(text), target), flag)


def test_findings_are_linked_to_the_triggers_that_reached_them():
    from pipelines.pipeline import build_nlp

    doc = build_nlp()("The lungs are clear of pneumothorax. Possible small pleural effusion.")
    by_text = {ent.text: ent for ent in doc.ents}
    assert [m.rule.literal for m in by_text["pneumothorax"]._.modifiers] == ["clear of"]
    assert [m.rule.literal for m in by_text["pleural effusion"]._.modifiers] == ["possible"]


def test_weak_modifier_yields_to_a_strong_one():
    from pipelines.context import ConTextComponent
    from pipelines.pipeline import build_nlp

    nlp = build_nlp()
    context = nlp.get_pipe("radnlp_context")
    assert isinstance(context, ConTextComponent)
    context.add([ContextRule("or", "POSSIBLE_EXISTENCE", "bidirectional", 3, weak=True)])
    doc = nlp("No pneumothorax or pleural effusion. Atelectasis or scarring.")
    by_text = {ent.text: ent for ent in doc.ents}
    assert by_text["pleural effusion"]._.assertion == "absent"
    assert by_text["Atelectasis"]._.assertion == "possible"
