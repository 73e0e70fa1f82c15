"""The foundation issue's acceptance report, end to end through the rules pipeline."""

REPORT = (
    "No pneumothorax, effusion, or consolidation. Possible small left pleural effusion. "
    "6 mm solid nodule in the right upper lobe. Recommend CT chest in 6-12 months."
)


def test_acceptance_report(analyze, finding):
    analysis = analyze(REPORT)
    assert finding(analysis, "pneumothorax").assertion == "absent"
    assert finding(analysis, "effusion").assertion == "absent"
    assert finding(analysis, "consolidation").assertion == "absent"

    second_effusion = finding(analysis, "pleural effusion")
    assert second_effusion.assertion == "possible"
    assert second_effusion.laterality == "left"

    nodule = next(f for f in analysis.findings if "nodule" in f.text)
    assert nodule.assertion == "present"
    assert [(m.value, m.unit) for m in nodule.measurements] == [(6.0, "mm")]
    assert nodule.anatomy is not None and nodule.anatomy.name == "right upper lobe"
    assert nodule.laterality == "right"

    assert len(analysis.recommendations) == 1
    rec = analysis.recommendations[0]
    assert (rec.modality, rec.body_region) == ("CT", "chest")
    assert (rec.interval_min_days, rec.interval_max_days) == (180, 365)
    assert rec.finding_index == analysis.findings.index(nodule)
    assert REPORT[rec.start:rec.end] == rec.text == "Recommend CT chest in 6-12 months."


def test_offsets_point_into_the_text(analyze):
    analysis = analyze(REPORT)
    for item in analysis.findings:
        assert REPORT[item.start:item.end] == item.text
        for m in item.measurements:
            assert m.start is not None and REPORT[m.start:m.end] == m.text
