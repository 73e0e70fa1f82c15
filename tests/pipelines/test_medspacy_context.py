import pytest

from pipelines.context import load_context_rules
from pipelines.medspacy_context import build_medspacy_context_nlp, to_medspacy_rules
from pipelines.pipeline import RadiologyPipeline

pytestmark = pytest.mark.filterwarnings("ignore:.*W036")


def test_every_shipped_rule_loads_into_medspacy():
    from medspacy.context import ConTextRule

    ours = load_context_rules()
    converted = to_medspacy_rules()
    assert len(converted) == len(ours)
    assert all(isinstance(rule, ConTextRule) for rule in converted)
    by_literal = {rule.literal: rule for rule in converted}
    assert by_literal["clear of"].category == "NEGATED_EXISTENCE"
    assert by_literal["clear of"].direction == "FORWARD"
    assert by_literal["not well seen"].direction == "BACKWARD"


@pytest.mark.parametrize(
    ("text", "target", "expected"),
    [
        ("The lungs are clear of focal airspace disease, pneumothorax, or pleural effusion.",
         "pleural effusion", "absent"),
        ("Right basilar opacity may represent atelectasis.", "atelectasis", "possible"),
        ("No change in the right pleural effusion.", "pleural effusion", "present"),
        ("Left basilar atelectasis has resolved.", "atelectasis", "absent"),
        ("No pneumothorax, but a small left pleural effusion.", "pleural effusion", "present"),
    ],
)
def test_medspacy_context_runs_our_rules(finding, text, target, expected):
    pipeline = RadiologyPipeline(build_medspacy_context_nlp(), model_version="test")
    analysis = pipeline.analyze(text)
    assert finding(analysis, target).assertion == expected
