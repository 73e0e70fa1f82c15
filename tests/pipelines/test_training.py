"""Training on a tiny set: seeded runs are reproducible and the overlay round-trips."""

import pytest
import torch
from safetensors.torch import load_file

from pipelines.batching import default_encoder_path
from pipelines.training import (
    BIO_TAGS,
    OVERLAY_FILE,
    AssertionExample,
    SpanExample,
    TrainConfig,
    bio_features,
    load_overlay_model,
    load_tokenizer,
    mark_entity,
    train_assertion,
    train_ner,
)

TEXT = "No pneumothorax. Small left pleural effusion."
SPANS = ((3, 15, "FINDING"), (28, 44, "FINDING"))
TINY = TrainConfig(epochs=1, batch_size=4, trainable_layers=1, max_length=64, threads=1)


def test_bio_features_label_wordpieces():
    tokenizer = load_tokenizer(default_encoder_path())
    ((_ids, tags),) = bio_features(tokenizer, [SpanExample(TEXT, SPANS)], max_length=64)
    offsets = tokenizer(TEXT, return_offsets_mapping=True)["offset_mapping"]
    tag_at = {start: BIO_TAGS[tag] for (start, _), tag in zip(offsets, tags, strict=True)
              if tag != -100}
    assert tag_at[TEXT.index("pleural")] == "B-FINDING"
    assert tag_at[TEXT.index("effusion")] == "I-FINDING"
    assert tag_at[TEXT.index("Small")] == "O"
    assert [tag_at[s] for s, e in offsets if TEXT.index("pleural") < s < 44] != []
    assert all(tag_at[s] == "I-FINDING" for s, e in offsets if TEXT.index("pleural") < s < 44)
    assert tags[0] == -100 and tags[-1] == -100  # [CLS], [SEP]


def test_mark_entity():
    assert mark_entity("No effusion.", 3, 11, "impression") == (
        "impression : No [unused1] effusion [unused2]."
    )


@pytest.mark.slow
def test_seeded_training_is_reproducible_and_loads(tmp_path):
    base = default_encoder_path()
    examples = [SpanExample(TEXT, SPANS)] * 4
    first = train_ner(examples, base, tmp_path / "a", TINY)
    second = train_ner(examples, base, tmp_path / "b", TINY)
    assert first.steps == second.steps == 1
    a = load_file(str(tmp_path / "a" / OVERLAY_FILE))
    b = load_file(str(tmp_path / "b" / OVERLAY_FILE))
    assert a.keys() == b.keys() and "classifier.weight" in a
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Only the top layer and the head are stored.
    assert all(".layer.5." in k or k.startswith("classifier.") for k in a)
    model, _, meta = load_overlay_model(tmp_path / "a", base)
    assert meta["task"] == "ner"
    assert torch.allclose(model.state_dict()["classifier.weight"],
                          a["classifier.weight"].float())

    assertion = train_assertion([AssertionExample(mark_entity(TEXT, 3, 15), "absent")] * 4,
                                base, tmp_path / "c", TINY)
    assert assertion.task == "assertion"
    model, _, meta = load_overlay_model(tmp_path / "c", base)
    assert meta["labels"] == ["present", "absent", "possible"]
