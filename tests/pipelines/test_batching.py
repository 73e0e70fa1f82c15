"""The batched inference engine on the real packaged all-MiniLM-L6-v2 model (no mocks)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from pipelines.batching import (  # noqa: E402
    BatchEngine,
    BatchEngineConfig,
    DeviceUnavailableError,
    TextError,
    TokenOutputs,
    default_encoder_path,
    resolve_device,
    resolve_runtime,
)

VARIED_TEXTS = [
    "No acute cardiopulmonary process.",
    "EXAM: CT CHEST WITHOUT CONTRAST\nFINDINGS: New 8 mm part-solid nodule in the right middle "
    "lobe. Mild centrilobular emphysema. No pleural effusion.\nIMPRESSION: Lung-RADS 4A. "
    "Recommend low-dose CT chest in 3 months.",
    "Stable 5 mm LLL nodule.",
    "CLINICAL HISTORY: 7-year-old with cough and fever for 3 days.\n\nIMPRESSION: Patchy "
    "right lower lobe opacity, which may represent pneumonia or atelectasis.",
    "Simple-appearing 2.3 x 1.9 cm cyst in the upper pole of the left kidney (Bosniak I); "
    "no follow-up imaging is needed.",
    "Liver, spleen, pancreas and adrenal glands are unremarkable. No free fluid.",
    "Ü-shaped café-au-lait density — possibly artefact; compare with prior study (2019-04-01).",
    "Mild cardiomegaly.",
]

SENTENCES = [
    "The lungs are clear bilaterally without focal consolidation.",
    "There is a 6 mm ground-glass nodule in the right upper lobe, unchanged from 2021.",
    "No pleural effusion or pneumothorax is identified.",
    "The heart size is mildly enlarged; the mediastinal contours are within normal limits.",
    "Degenerative changes of the thoracic spine are noted.",
    "Recommend follow-up CT chest in 12 months per Fleischner Society guidelines.",
]


def long_report(target_tokens: int, tokenizer: Any) -> str:
    parts: list[str] = []
    i = 0
    while len(tokenizer(" ".join(parts), add_special_tokens=False)["input_ids"]) < target_tokens:
        parts.extend(f"{i}. {s}" for i, s in enumerate(SENTENCES, start=i + 1))
        i += len(SENTENCES)
    return "FINDINGS:\n" + " ".join(parts)


@pytest.fixture(scope="module")
def engine() -> BatchEngine:
    return BatchEngine.from_pretrained(
        config=BatchEngineConfig(max_batch_tokens=4096, device="cpu"))


@pytest.fixture(scope="module")
def unbatched(engine: BatchEngine) -> BatchEngine:
    return BatchEngine(engine.model, engine.tokenizer, BatchEngineConfig(
        max_batch_tokens=4096, max_batch_size=1, texts_per_tokenizer_call=1, device="cpu"))


def test_default_encoder_path_is_the_packaged_model() -> None:
    path = default_encoder_path()
    assert (path / "config.json").is_file()
    assert (path / "model.safetensors").is_file()


def test_batched_matches_unbatched(engine: BatchEngine, unbatched: BatchEngine) -> None:
    batches_before = engine.stats.batches
    batched = engine.run(VARIED_TEXTS)
    assert engine.stats.batches - batches_before < len(VARIED_TEXTS)  # really batched
    single = unbatched.run(VARIED_TEXTS)
    assert max(unbatched.stats.batch_sizes) == 1
    for a, b in zip(batched, single, strict=True):
        assert isinstance(a, TokenOutputs) and isinstance(b, TokenOutputs)
        assert a.index == b.index
        np.testing.assert_array_equal(a.offsets, b.offsets)
        np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-4, rtol=0)


def test_long_report_is_analysed_whole(engine: BatchEngine) -> None:
    text = long_report(3000, engine.tokenizer)
    full = engine.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    assert len(full["input_ids"]) >= 3000
    [result] = engine.run([text])
    assert isinstance(result, TokenOutputs)
    assert result.n_windows > 1
    # One vector per token of the whole text, in order, matching an untruncated tokenization.
    assert len(result) == len(full["input_ids"])
    assert result.vectors.shape == (len(full["input_ids"]), 384)
    assert result.vectors.dtype == np.float32
    np.testing.assert_array_equal(result.token_ids, full["input_ids"])
    np.testing.assert_array_equal(result.offsets, np.asarray(full["offset_mapping"]))
    assert result.offsets[0, 0] == 0
    assert result.offsets[-1, 1] == len(text.rstrip())
    assert np.all(np.diff(result.offsets[:, 0]) >= 0)
    assert np.isfinite(result.vectors).all()


def test_long_report_inside_a_batch_keeps_its_middle(engine: BatchEngine) -> None:
    """A window's middle tokens are taken from that window, unchanged by the merge."""
    text = long_report(1200, engine.tokenizer)
    [result] = engine.run([text])
    assert isinstance(result, TokenOutputs)
    cfg = engine.config
    enc = engine.tokenizer(text, truncation=True, max_length=cfg.max_length)
    with torch.inference_mode():
        first = engine.model(input_ids=torch.tensor([enc["input_ids"]]))
    first_window = first.last_hidden_state[0, 1:-1].numpy()
    middle = slice(10, engine.step)  # far from the cut edge of window 0
    np.testing.assert_allclose(result.vectors[middle], first_window[middle], atol=1e-4)


def test_order_is_preserved_and_errors_are_isolated(engine: BatchEngine) -> None:
    long_text = long_report(700, engine.tokenizer)
    texts: list[Any] = ["short", long_text, "", "a medium length text about the liver", None,
                        "   ", "Mild cardiomegaly."]
    results = engine.run(texts)
    assert [r.index for r in results] == list(range(len(texts)))
    for i in (2, 4, 5):
        assert isinstance(results[i], TextError)
    reference = {i: engine.run([texts[i]])[0] for i in (0, 1, 3, 6)}
    for i, ref in reference.items():
        got = results[i]
        assert isinstance(got, TokenOutputs) and isinstance(ref, TokenOutputs)
        np.testing.assert_array_equal(got.token_ids, ref.token_ids)
        np.testing.assert_allclose(got.vectors, ref.vectors, atol=1e-4, rtol=0)
    assert list(engine.stream(texts))[1].index == 1


def test_stream_yields_in_input_order(engine: BatchEngine) -> None:
    small = BatchEngine(engine.model, engine.tokenizer,
                        BatchEngineConfig(texts_per_tokenizer_call=3, device="cpu"))
    texts = [VARIED_TEXTS[i % len(VARIED_TEXTS)] * (1 + i % 3) for i in range(7)]
    streamed = list(small.stream(iter(texts)))
    assert [r.index for r in streamed] == list(range(7))
    assert small.stats.tokenizer_calls == 3


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"stride": 512}, "stride"),
    ({"stride": 600, "max_length": 512}, "stride"),
    ({"stride": -1}, "stride"),
    ({"max_batch_tokens": 0}, "max_batch_tokens"),
    ({"max_batch_tokens": -5}, "max_batch_tokens"),
    ({"max_batch_tokens": 256}, "at least max_length"),
    ({"max_length": 0}, "max_length"),
    ({"device": "tpu"}, "device"),
    ({"precision": "fp8"}, "precision"),
    ({"precision": "int8", "device": "cuda"}, "int8"),
    ({"precision": "fp16", "device": "cpu"}, "fp16"),
    ({"max_batch_size": 0}, "max_batch_size"),
])
def test_config_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BatchEngineConfig(**kwargs)


def test_engine_checks_stride_against_content_and_model_window(engine: BatchEngine) -> None:
    with pytest.raises(ValueError, match="content length"):
        BatchEngine(engine.model, engine.tokenizer, BatchEngineConfig(stride=511, device="cpu"))
    with pytest.raises(ValueError, match="model window"):
        BatchEngine(engine.model, engine.tokenizer,
                    BatchEngineConfig(max_length=1024, max_batch_tokens=2048, device="cpu"))


def test_int8_runs_and_stays_close_to_fp32(engine: BatchEngine) -> None:
    int8 = BatchEngine(engine.model, engine.tokenizer,
                       BatchEngineConfig(precision="int8", device="cpu"))
    assert int8.runtime.precision == "int8"
    assert int8.model is not engine.model  # the fp32 model is left as it was
    for a, b in zip(engine.run(VARIED_TEXTS), int8.run(VARIED_TEXTS), strict=True):
        assert isinstance(a, TokenOutputs) and isinstance(b, TokenOutputs)
        u, v = a.mean_pooled(), b.mean_pooled()
        cosine = float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))
        assert cosine > 0.95, cosine


def test_cpu_resolution() -> None:
    runtime = resolve_runtime(BatchEngineConfig(device="cpu"))
    assert runtime.device.type == "cpu"
    assert runtime.precision == "fp32"
    assert runtime.autocast_dtype is None
    assert resolve_runtime(BatchEngineConfig(device="cpu", precision="bf16")).autocast_dtype \
        == torch.bfloat16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_is_selected_when_available() -> None:
    assert resolve_device(BatchEngineConfig()).type == "cuda"
    assert resolve_device(BatchEngineConfig(device="cuda")).type == "cuda"
    assert resolve_runtime(BatchEngineConfig()).precision in ("bf16", "fp16")


def test_auto_picks_cuda_when_torch_reports_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(BatchEngineConfig(device="auto")).type == "cuda"
    assert resolve_device(BatchEngineConfig(device="auto", precision="int8")).type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu_is_a_clear_error() -> None:
    assert resolve_device(BatchEngineConfig(device="auto")).type == "cpu"
    with pytest.raises(DeviceUnavailableError, match="cuda"):
        resolve_device(BatchEngineConfig(device="cuda"))
    with pytest.raises(DeviceUnavailableError, match="is_available"):
        BatchEngine.from_pretrained(config=BatchEngineConfig(device="cuda"))
