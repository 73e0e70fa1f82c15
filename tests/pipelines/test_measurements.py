import pytest

from pipelines.measurements import find_measurements


@pytest.mark.parametrize(
    ("text", "value", "unit", "dimensions", "qualifier"),
    [
        ("a 6 mm nodule", 6.0, "mm", (), None),
        ("mass measuring 1.2 x 0.8 cm", 1.2, "cm", (1.2, 0.8), None),
        ("measures 4.8 x 1.6 x 1.5 cm", 4.8, "cm", (4.8, 1.6, 1.5), None),
        ("nodules up to 6 mm", 6.0, "mm", (), "up to"),
        ("less than 5mm", 5.0, "mm", (), "less than"),
        ("a subcentimeter node", 1.0, "cm", (), "subcentimeter"),
        ("estimated volume 15 mL", 15.0, "mL", (), None),
        ("12 x 8 mm", 12.0, "mm", (12.0, 8.0), None),
    ],
)
def test_measurement_forms(text, value, unit, dimensions, qualifier):
    (match,) = find_measurements(text)
    assert (match.value, match.unit, match.dimensions, match.qualifier) == (
        value, unit, dimensions, qualifier)
    assert text[match.start_char:match.end_char] == match.text


def test_intervals_are_not_measurements():
    assert find_measurements("Follow-up in 6 months. Repeat in 3 mo.") == []


def test_measurement_attaches_to_its_own_finding(analyze, finding):
    analysis = analyze("No pleural effusion. Right upper lobe nodule measuring 8 mm and a "
                       "4 mm left lower lobe nodule.")
    assert [m.value for m in finding(analysis, "nodule", 1).measurements] == [8.0]
    assert [m.value for m in finding(analysis, "nodule", 2).measurements] == [4.0]
    assert finding(analysis, "pleural effusion").measurements == []
