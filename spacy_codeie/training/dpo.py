"""ADELIE's second stage: preference pairs sampled from the SFT model, scored against gold, then DPO (trl).

For each training prompt the SFT model samples several completions; each is run through the component's
parser and aligner and scored against the gold annotation by the component's scorer. The best and the worst
form a (chosen, rejected) pair when their scores differ by at least `margin`. DPO then continues training the
SFT adapter against a frozen copy of it as the reference, so the model is pulled away from its own mistakes.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import srsly

from ..errors import CodeIEError
from ..models.huggingface import read_prompt_style_block, write_prompt_style
from .finetune import (
    check_mixed_precision,
    completion_ids,
    forget_gguf_quantization,
    last_checkpoint,
    read_records,
    style_in_checkpoints,
    use_bf16,
)
from .plots import plot_loss

SCORE_KEYS = ("codeie_ents_f", "codeie_rel_strict_f", "codeie_trigger_cls_f", "codeie_arg_cls_f")


@dataclass(frozen=True)
class DPOSettings:
    samples: int = 4  # completions sampled per prompt
    temperature: float = 0.9
    top_p: float = 0.95
    margin: float = 0.2  # least score difference between chosen and rejected
    max_prompts: int = 0  # prompts sampled from, a seeded random pick over the whole file (0: all records)
    beta: float = 0.1
    learning_rate: float = 5e-5
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 2
    gradient_accumulation: int = 4
    max_length: int = 1400
    mixed_precision: str = "auto"  # as [sft]: "bf16" autocast (GPU, or a CPU with AVX-512 BF16); "no"; "auto"
    save_steps: int = 50
    save_total_limit: int = 2  # checkpoints kept (the newest ones); 0 keeps all
    logging_steps: int = 5
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.samples < 2:
            raise CodeIEError("dpo.samples must be at least 2: pairs are formed from different samples.")
        if not 0 <= self.margin <= 1:
            raise CodeIEError("dpo.margin is a difference of F1 scores, between 0 and 1.")
        if self.save_total_limit < 0:
            raise CodeIEError("dpo.save_total_limit must be 0 (keep every checkpoint) or a positive count.")
        if self.max_prompts < 0:
            raise CodeIEError("dpo.max_prompts must be 0 (every record) or a positive number of prompts.")
        check_mixed_precision(self.mixed_precision, "dpo")


class _Fixed:
    """A model answering every prompt with one completion (spacy-llm contract)."""

    def __init__(self, completion: str):
        self.completion = completion

    def __call__(self, prompts):
        return [[self.completion for _ in doc_prompts] for doc_prompts in prompts]


class CompletionScorer:
    """Scores a completion for an SFT record against the record's gold completion, with the component's code."""

    def __init__(self) -> None:
        self._components: Dict[Tuple[str, str], Any] = {}

    def _component(self, record: Dict[str, Any]):
        from ..pipeline import CodeIE
        from ..readers import blank_pipeline
        from ..schema.loaders import schema_from_mapping
        from ..scoring import score_codeie

        key = (record.get("lang") or "xx", json.dumps(record["schema"], sort_keys=True, ensure_ascii=False))
        if key not in self._components:
            nlp = blank_pipeline(key[0])
            component = CodeIE(nlp.vocab, schema=schema_from_mapping(record["schema"]), model=_Fixed("]"),
                               scorer=score_codeie)
            self._components[key] = (nlp, component)
        return self._components[key]

    def annotate(self, record: Dict[str, Any], completion: str):
        """The record's text annotated as if the model had answered `completion`."""
        nlp, component = self._component(record)
        component.model = _Fixed(completion)
        return component(nlp.make_doc(record["text"]))

    def score(self, record: Dict[str, Any], completion: str, gold=None) -> float:
        """Mean strict F1 of `completion` against the record's gold (pass `gold` from `gold_doc` to reuse it)."""
        from spacy.training import Example

        _, component = self._component(record)
        gold = gold if gold is not None else self.gold_doc(record)
        pred = self.annotate(record, completion)
        scores = component.score([Example(pred, gold)])
        values = [scores[k] for k in SCORE_KEYS if scores.get(k) is not None]
        return sum(values) / len(values) if values else 1.0  # nothing to find, nothing found

    def gold_doc(self, record: Dict[str, Any]):
        for key in ("text", "schema", "prompt", "completion"):
            if key not in record:
                raise CodeIEError(f"SFT record {record.get('id')!r} has no {key!r}; rebuild it with 'train-data'.")
        return self.annotate(record, record["completion"])


def preference_pairs(records: Sequence[Dict[str, Any]], samples: Sequence[Sequence[str]], margin: float,
                     scorer: Optional[CompletionScorer] = None) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """(pairs {"prompt", "chosen", "rejected", scores}, stats): best vs worst sample per prompt."""
    scorer = scorer or CompletionScorer()
    pairs = []
    stats = {"prompts": len(records), "pairs": 0, "below_margin": 0, "mean_best": 0.0, "mean_worst": 0.0}
    for record, completions in zip(records, samples):
        gold = scorer.gold_doc(record)
        scored = sorted(((scorer.score(record, c, gold), c) for c in completions), key=lambda x: -x[0])
        (best, chosen), (worst, rejected) = scored[0], scored[-1]
        stats["mean_best"] += best / max(1, len(records))
        stats["mean_worst"] += worst / max(1, len(records))
        if best - worst < margin or chosen == rejected:
            stats["below_margin"] += 1
            continue
        pairs.append({"id": record.get("id"), "prompt": record["prompt"], "chosen": chosen, "rejected": rejected,
                      "chosen_score": best, "rejected_score": worst})
    stats["pairs"] = len(pairs)
    return pairs, stats


def pick_prompts(records: List[Dict[str, Any]], max_prompts: int, seed: int) -> List[Dict[str, Any]]:
    """Up to `max_prompts` records drawn at random (by `seed`) from the whole list, in their file order: the
    head of a file that is sorted by dataset would hold one dataset only."""
    if not max_prompts or max_prompts >= len(records):
        return list(records)
    keep = sorted(random.Random(seed).sample(range(len(records)), max_prompts))
    return [records[i] for i in keep]


def sample_pairs(model: Dict[str, Any], adapter: Union[str, Path], records_path: Union[str, Path],
                 output: Union[str, Path], settings: Optional[DPOSettings] = None) -> Dict[str, Any]:
    """Sample from the SFT model and write preference pairs (JSONL) to `output`."""
    from .config import resolve_model

    settings = settings or DPOSettings()
    from .conversations import first_turns

    records = pick_prompts(first_turns(read_records(records_path)), settings.max_prompts, settings.seed)
    backend = resolve_model({**model, "adapter": str(adapter)})
    started = time.time()
    samples = []
    from tqdm.auto import tqdm

    step = max(1, backend.batch_size // settings.samples)
    for i in tqdm(range(0, len(records), step), desc="dpo sample", unit="batch", disable=not settings.progress):
        chunk = records[i: i + step]
        samples.extend(backend.sample([r["prompt"] for r in chunk], settings.samples,
                                      temperature=settings.temperature, top_p=settings.top_p, seed=settings.seed + i))
    pairs, stats = preference_pairs(records, samples, settings.margin)
    stats["sampling_seconds"] = round(time.time() - started, 1)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    srsly.write_jsonl(output, pairs)
    return stats


def token_ids(backend, pair: Dict[str, Any]) -> Dict[str, List[int]]:
    """A pair as the token ids SFT trained on and inference sends: the prompt as the backend encodes it, each
    completion tokenized on its own and closed by end-of-sequence.

    trl would tokenize prompt + completion as one string, and an empty answer's "]" then merges with the
    prompt's closing "[" into one "[]" token that inference never sees."""
    return {"prompt_ids": list(backend.encode(pair["prompt"])), "chosen_ids": completion_ids(backend, pair["chosen"]),
            "rejected_ids": completion_ids(backend, pair["rejected"])}


def _dpo_trainer_class():
    from trl import DPOTrainer

    class TokenizedDPOTrainer(DPOTrainer):
        """DPOTrainer on rows that already hold `prompt_ids`, `chosen_ids` and `rejected_ids` (see `token_ids`)."""

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            if args.max_length is not None and args.truncation_mode == "keep_start":
                # as trl does: a prompt that fills max_length leaves no completion token to learn from
                dataset = dataset.filter(lambda row: len(row["prompt_ids"]) < args.max_length)
            return dataset

    return TokenizedDPOTrainer


def train_dpo(model: Dict[str, Any], adapter: Union[str, Path], pairs_path: Union[str, Path],
              output: Union[str, Path], settings: Optional[DPOSettings] = None) -> Dict[str, Any]:
    """DPO on the pairs, continuing the SFT adapter; writes `<output>/adapter`, `dpo_log.json`, `loss.png`."""
    import datasets
    from peft import PeftModel
    from trl import DPOConfig

    from .config import resolve_model

    settings = settings or DPOSettings()
    output = Path(output)
    pairs = list(srsly.read_jsonl(pairs_path)) if Path(pairs_path).is_file() else []
    if not pairs:
        raise CodeIEError(f"No preference pairs in {str(pairs_path)!r}: sample more prompts or lower dpo.margin.")
    backend = resolve_model({k: v for k, v in model.items() if k != "adapter"})
    if backend.gguf_file:
        forget_gguf_quantization(backend.model)
    policy = PeftModel.from_pretrained(backend.model, str(adapter), is_trainable=True)
    rows = [token_ids(backend, p) for p in pairs]
    on_gpu = backend.device.startswith("cuda")
    args = DPOConfig(
        output_dir=str(output / "checkpoints"), beta=settings.beta, learning_rate=settings.learning_rate,
        num_train_epochs=settings.epochs, max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size, gradient_accumulation_steps=settings.gradient_accumulation,
        max_length=settings.max_length, logging_steps=settings.logging_steps, save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit or None, seed=settings.seed, report_to="none", use_cpu=not on_gpu,
        bf16=use_bf16(settings.mixed_precision, on_gpu), disable_tqdm=not settings.progress,
    )
    style = read_prompt_style_block(adapter)  # the SFT adapter's prompt style holds for what DPO makes of it
    trainer = _dpo_trainer_class()(model=policy, args=args, train_dataset=datasets.Dataset.from_list(rows),
                                   processing_class=backend.tokenizer,
                                   callbacks=[style_in_checkpoints(style)] if style else None)
    resume = last_checkpoint(output / "checkpoints")
    started = time.time()
    trainer.train(resume_from_checkpoint=resume)
    policy.save_pretrained(str(output / "adapter"), selected_adapters=["default"])
    if style:
        write_prompt_style(output / "adapter", style)
    log = [e for e in trainer.state.log_history if "loss" in e]
    summary = {"pairs": len(rows), "steps": trainer.state.global_step, "resumed_from": resume,
               "seconds_this_run": round(time.time() - started, 1), "settings": asdict(settings),
               "final_loss": log[-1]["loss"] if log else None}
    (output / "dpo_log.json").write_text(json.dumps({"summary": summary, "log": trainer.state.log_history},
                                                    indent=2, default=str), encoding="utf8")
    if log:
        plot_loss([(e["step"], e["loss"]) for e in log], output / "loss.png", title="DPO")
    return summary
