def test_anatomy_and_laterality(analyze, finding):
    analysis = analyze("8 mm nodule in the left lower lobe. Right pleural effusion. "
                       "Simple cyst in the left kidney.")
    nodule = finding(analysis, "nodule")
    assert nodule.anatomy is not None and nodule.anatomy.name == "left lower lobe"
    assert nodule.laterality == "left"
    assert finding(analysis, "pleural effusion").laterality == "right"
    cyst = finding(analysis, "cyst")
    assert cyst.anatomy is not None and cyst.anatomy.name == "kidney"
    assert cyst.anatomy.text == "left kidney"
    assert cyst.laterality == "left"


def test_laterality_does_not_jump_across_findings(analyze, finding):
    analysis = analyze("Left pleural effusion and pneumothorax.")
    assert finding(analysis, "pleural effusion").laterality == "left"
    assert finding(analysis, "pneumothorax").laterality is None


def test_change_status(analyze, finding):
    analysis = analyze("Stable 5 mm nodule in the left lower lobe. New 8 mm nodule in the "
                       "right middle lobe. Increased pleural effusion.")
    assert finding(analysis, "nodule", 1).change == "stable"
    assert finding(analysis, "nodule", 2).change == "new"
    assert finding(analysis, "pleural effusion").change == "increased"
