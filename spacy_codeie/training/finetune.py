"""LoRA SFT of a causal LM on (prompt, completion) records, loss on the completion only (computed from the
completion positions' logits alone where the model allows it: `answer_loss`).

Prompts are tokenized by the inference backend's own `encode` (chat template and prefill included), and the
completion separately, as the model will see them when it generates. A record longer than `max_length` is
skipped and counted, never cut. Checkpoints go to `<output>/checkpoints`; rerunning resumes from the last.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..errors import CodeIEError
from ..models.adapter_files import read_adapter_folder
from ..models.huggingface import HuggingFaceModel, write_prompt_style
from .answer_loss import answer_loss_trainer, supports_answer_logits
from .plots import plot_loss


@dataclass(frozen=True)
class LoraSettings:
    """KnowCoder's LoRA defaults (r=32, alpha=64) on every linear layer of the transformer blocks."""

    r: int = 32
    alpha: int = 64
    dropout: float = 0.05
    target_modules: Union[str, Sequence[str]] = "all-linear"

    def peft_config(self):
        from peft import LoraConfig, TaskType

        targets = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=targets,
                          task_type=TaskType.CAUSAL_LM)


@dataclass(frozen=True)
class SFTSettings:
    """Optimisation settings; KnowCoder's defaults (lr 3e-4, cosine) unless the config overrides them."""

    learning_rate: float = 3e-4
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    batch_size: int = 8
    gradient_accumulation: int = 1
    max_length: int = 2048  # longer records are skipped (and counted), never truncated
    weight_decay: float = 0.0
    save_steps: int = 50
    save_total_limit: int = 2  # checkpoints kept (the newest ones); 0 keeps all, so the best by dev F1 survives
    logging_steps: int = 5
    seed: int = 0
    group_by_length: bool = True
    gradient_checkpointing: bool = False  # trade compute for memory on long sequences or big models
    progress: bool = True
    mixed_precision: str = "auto"  # "bf16": bf16 autocast (GPU, or a CPU with AVX-512 BF16); "no"; "auto": bf16 on GPU
    dev_records: str = ""  # SFT records to report a dev loss on at every checkpoint
    # An adapter (same [lora] shape) whose weights a fresh run starts from: continued training with a new optimizer
    # and schedule, e.g. after the checkpoints of an earlier run are gone. Ignored when a checkpoint is resumed.
    init_adapter: str = ""

    def __post_init__(self) -> None:
        check_mixed_precision(self.mixed_precision, "sft")
        if self.batch_size < 1 or self.gradient_accumulation < 1:
            raise CodeIEError("sft.batch_size and sft.gradient_accumulation must be at least 1.")
        if self.learning_rate <= 0:
            raise CodeIEError("sft.learning_rate must be positive.")
        if self.save_total_limit < 0:
            raise CodeIEError("sft.save_total_limit must be 0 (keep every checkpoint) or a positive count.")
        if self.max_steps == 0 or (self.max_steps < 0 and self.epochs <= 0):
            raise CodeIEError("Set sft.epochs > 0, or sft.max_steps to a positive number of optimizer steps.")


@dataclass
class TokenizedRecords:
    rows: List[Dict[str, Any]] = field(default_factory=list)  # input_ids, labels (token ids), length
    skipped_too_long: int = 0
    skipped_turns: int = 0  # conversation turns dropped whole to stay within max_length
    prompt_tokens: int = 0
    completion_tokens: int = 0


def completion_ids(backend: HuggingFaceModel, completion: str) -> List[int]:
    """The completion's tokens plus the end-of-turn token, so the model also learns to stop."""
    tokenizer = backend.tokenizer
    ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        ids = ids + [tokenizer.eos_token_id]
    return ids


def conversation_ids(backend: HuggingFaceModel, turns: Sequence[Dict[str, str]],
                     max_length: int) -> Optional[Tuple[List[int], List[int], int]]:
    """(input ids, labels, turns kept) of a multi-turn record, with a loss on every answer.

    Each turn's prompt holds the earlier turns; the text it adds after the previous answer (and that answer's
    end-of-turn token) is tokenized on its own, as is each answer, the way the model meets them when it
    generates. Without a chat template the next prompt goes on right after the previous answer's text, so that
    answer keeps no end-of-sequence token: a plain base would otherwise be taught to read past one, and only the
    last answer ends with it. Turns that would pass `max_length` are dropped whole, never cut. None when even the
    first turn does not fit, or when the prompts do not extend each other (then use single turns).
    """
    tokenizer = backend.tokenizer
    eos_id = tokenizer.eos_token_id
    eos_text = tokenizer.eos_token or ""
    ids: List[int] = []
    labels: List[int] = []
    seen = ""
    kept = 0
    for turn in turns:
        formatted = backend.format_prompt(turn["prompt"])
        unclose = 0  # 1: drop the previous answer's end-of-sequence token, which this format has not between turns
        if seen and not formatted.startswith(seen):
            unclosed = seen[: -len(eos_text)] if eos_text and seen.endswith(eos_text) else None
            if unclosed is None or not formatted.startswith(unclosed):
                return None
            seen, unclose = unclosed, 1
        delta = formatted[len(seen):]
        answer = completion_ids(backend, turn["completion"])
        new_ids = backend.tokenize_text(delta) if not seen else tokenizer(delta, add_special_tokens=False)["input_ids"]
        if len(ids) - unclose + len(new_ids) + len(answer) > max_length:
            break
        if unclose:
            ids.pop()
            labels.pop()
        ids += new_ids + answer
        labels += [-100] * len(new_ids) + answer
        kept += 1
        seen = formatted + turn["completion"] + (eos_text if answer and answer[-1] == eos_id else "")
    return (ids, labels, kept) if kept else None


def tokenize_records(backend: HuggingFaceModel, records: Sequence[Dict[str, Any]], max_length: int) -> TokenizedRecords:
    out = TokenizedRecords()
    for record in records:
        if "turns" in record:
            _add_conversation(backend, record["turns"], max_length, out)
        else:
            _add_single_turn(backend, record, max_length, out)
    return out


def _add_single_turn(backend: HuggingFaceModel, record: Dict[str, str], max_length: int,
                     out: TokenizedRecords) -> None:
    prompt = backend.encode(record["prompt"])
    completion = completion_ids(backend, record["completion"])
    if len(prompt) + len(completion) > max_length:
        out.skipped_too_long += 1
        return
    out.prompt_tokens += len(prompt)
    out.completion_tokens += len(completion)
    out.rows.append({"input_ids": prompt + completion, "labels": [-100] * len(prompt) + completion,
                     "length": len(prompt) + len(completion)})


def _add_conversation(backend: HuggingFaceModel, turns: Sequence[Dict[str, str]], max_length: int,
                      out: TokenizedRecords) -> None:
    found = conversation_ids(backend, turns, max_length)
    if found is None:  # the format cannot chain turns: train each turn as its own record
        for turn in turns:
            _add_single_turn(backend, turn, max_length, out)
        return
    ids, labels, kept = found
    out.skipped_turns += len(turns) - kept
    out.completion_tokens += sum(1 for x in labels if x != -100)
    out.prompt_tokens += sum(1 for x in labels if x == -100)
    out.rows.append({"input_ids": ids, "labels": labels, "length": len(ids)})


class CompletionCollator:
    """Right-pads a batch; padded positions get label -100 and attention 0."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows: List[Dict[str, Any]]) -> Dict[str, Any]:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            labels[i, :n] = torch.tensor(r["labels"])
            attention[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": attention}


def read_records(path: Union[str, Path]) -> List[Dict[str, Any]]:
    import srsly

    path = Path(path)
    if not path.is_file():
        raise CodeIEError(f"The SFT records {str(path)!r} do not exist. Run the 'convert' step first.")
    records = list(srsly.read_jsonl(path))
    for i, record in enumerate(records):
        turns = record.get("turns") if isinstance(record, dict) else None
        if turns is not None:
            ok = isinstance(turns, list) and turns and all(
                isinstance(t, dict) and isinstance(t.get("prompt"), str) and isinstance(t.get("completion"), str)
                for t in turns)
        else:
            ok = isinstance(record, dict) and isinstance(record.get("prompt"), str) \
                and isinstance(record.get("completion"), str)
        if not ok:
            raise CodeIEError(f"Line {i + 1} of {str(path)!r} is not an SFT record with 'prompt' and 'completion' "
                              "(or 'turns' of them).")
    if not records:
        raise CodeIEError(f"{str(path)!r} holds no SFT records.")
    return records


def last_checkpoint(folder: Path) -> Optional[str]:
    def step(path: Path) -> int:
        tail = path.name.split("-")[-1]
        return int(tail) if tail.isdigit() else -1

    found = sorted(folder.glob("checkpoint-*"), key=step)
    return str(found[-1]) if found else None


def load_for_training(model: Dict[str, Any]) -> Tuple[HuggingFaceModel, Any]:
    """The inference backend (for its tokenizer and prompt formatting) and its model, set up for LoRA.

    `model` is an `@llm_models` block, e.g. {"@llm_models": "spacy_codeie.HuggingFace.v1", "name": ...}.
    """
    from .config import resolve_model

    backend = resolve_model(model)
    if not isinstance(backend, HuggingFaceModel):
        raise CodeIEError(
            f"Fine-tuning needs a local transformers model (spacy_codeie.HuggingFace.v1 or DefaultModel.v1), "
            f"not {model.get('@llm_models')!r}."
        )
    if getattr(backend.model, "peft_config", None):
        raise CodeIEError("The [model] to fine-tune already has an adapter. Give the base model without 'adapter'.")
    base = backend.model
    if backend.gguf_file:
        forget_gguf_quantization(base)
    base.train()
    if hasattr(base.config, "use_cache"):
        base.config.use_cache = False
    return backend, base


def style_in_checkpoints(block: Dict[str, Any]):
    """A callback that writes the prompt style into every checkpoint, so that a checkpoint is evaluated (and
    resumed) with the style it learnt."""
    from transformers import TrainerCallback

    class DeclareStyleInCheckpoints(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                write_prompt_style(folder, block)
            return control

    return DeclareStyleInCheckpoints()


def check_mixed_precision(value: str, section: str) -> None:
    """Refuse a `mixed_precision` setting that `use_bf16` does not know."""
    if value not in ("auto", "bf16", "no"):
        raise CodeIEError(f"{section}.mixed_precision must be 'auto', 'bf16' or 'no'.")


def use_bf16(mixed_precision: str, on_gpu: bool) -> bool:
    """Whether a trainer runs under bf16 autocast, for an [sft] or [dpo] `mixed_precision` setting."""
    import torch

    if mixed_precision == "no":
        return False
    if on_gpu:
        return torch.cuda.is_bf16_supported()
    return mixed_precision == "bf16"  # CPU: only when asked (fast with AVX-512 BF16, slow without)


def forget_gguf_quantization(model) -> None:
    """transformers dequantizes GGUF weights to plain float tensors on load but keeps the model marked as
    quantized, and its Trainer then refuses to train. The weights are ordinary tensors: drop the marks."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def start_from_adapter(peft_model, folder: Union[str, Path], lora: LoraSettings) -> None:
    """Copy a saved adapter's LoRA weights into the freshly built one, refusing a shape that differs: a silent
    partial load would train from random weights while claiming to continue."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    saved, weights = read_adapter_folder(folder, "sft.init_adapter")
    if saved.get("r") != lora.r or saved.get("lora_alpha") != lora.alpha:
        raise CodeIEError(f"sft.init_adapter has r={saved.get('r')}, alpha={saved.get('lora_alpha')}, but [lora] asks "
                          f"for r={lora.r}, alpha={lora.alpha}: set [lora] to the adapter's shape.")
    state = {k: v.to(torch.float32) for k, v in load_file(str(weights)).items()}
    expected = {k for k in peft_model.state_dict() if "lora_" in k}
    result: Any = set_peft_model_state_dict(peft_model, state)
    missing = sorted(k for k in result.missing_keys if "lora_" in k)
    if result.unexpected_keys or missing or not expected:
        raise CodeIEError(f"sft.init_adapter {str(folder)!r} does not fit the model: {len(missing)} LoRA weights "
                          f"missing, {len(result.unexpected_keys)} unexpected (e.g. "
                          f"{(missing or list(result.unexpected_keys) or ['-'])[0]}). Use an adapter trained on "
                          "the same base model with the same [lora] target_modules.")


def finetune(
    model: Dict[str, Any],
    records_path: Union[str, Path],
    output: Union[str, Path],
    *,
    lora: Optional[LoraSettings] = None,
    sft: Optional[SFTSettings] = None,
    prompt_style: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Train a LoRA adapter; writes `<output>/adapter`, `train_log.json` and `loss.png`. Returns the summary.

    `prompt_style` (an `@misc` block) is the style the records were rendered in; the adapter declares it, so
    the component prompts the trained model exactly as it was trained.
    """
    import datasets
    import torch
    from peft import get_peft_model
    from transformers import Trainer, TrainingArguments

    lora = lora or LoraSettings()
    sft = sft or SFTSettings()
    output = Path(output)
    records = read_records(records_path)
    backend, base = load_for_training(model)
    data = tokenize_records(backend, records, sft.max_length)
    dev = None
    if sft.dev_records:
        dev = tokenize_records(backend, read_records(sft.dev_records), sft.max_length)
    if not data.rows:
        raise CodeIEError(f"All {len(records)} records are longer than sft.max_length={sft.max_length} tokens.")
    torch.manual_seed(sft.seed)
    peft_model = get_peft_model(base, lora.peft_config())
    trainable, total = peft_model.get_nb_trainable_parameters()
    on_gpu = backend.device.startswith("cuda")
    args = TrainingArguments(
        output_dir=str(output / "checkpoints"),
        per_device_train_batch_size=sft.batch_size,
        gradient_accumulation_steps=sft.gradient_accumulation,
        learning_rate=sft.learning_rate,
        lr_scheduler_type=sft.lr_scheduler,
        warmup_steps=sft.warmup_ratio,
        num_train_epochs=sft.epochs,
        max_steps=sft.max_steps,
        weight_decay=sft.weight_decay,
        logging_steps=sft.logging_steps,
        save_steps=sft.save_steps,
        save_total_limit=sft.save_total_limit or None,
        seed=sft.seed,
        report_to="none",
        use_cpu=not on_gpu,
        bf16=use_bf16(sft.mixed_precision, on_gpu),
        eval_strategy="steps" if dev is not None else "no",
        eval_steps=sft.save_steps,
        train_sampling_strategy="group_by_length" if sft.group_by_length else "random",
        remove_unused_columns=False,
        disable_tqdm=not sft.progress,
        dataloader_num_workers=0,
        gradient_checkpointing=sft.gradient_checkpointing,
        prediction_loss_only=True,  # the dev pass needs its loss, not every position's vocabulary-sized logits
    )
    if sft.gradient_checkpointing:
        peft_model.enable_input_require_grads()  # frozen embeddings would otherwise cut the gradient path
    trainer_class = answer_loss_trainer() if supports_answer_logits(peft_model) else Trainer
    trainer = trainer_class(
        model=peft_model,
        args=args,
        train_dataset=datasets.Dataset.from_list(data.rows),
        eval_dataset=datasets.Dataset.from_list(dev.rows) if dev is not None else None,
        data_collator=CompletionCollator(backend.tokenizer.pad_token_id),
    )
    if prompt_style:
        trainer.add_callback(style_in_checkpoints(prompt_style))
    resume = last_checkpoint(output / "checkpoints")
    if sft.init_adapter and resume is None:
        start_from_adapter(peft_model, sft.init_adapter, lora)
    started = time.time()
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.time() - started
    adapter_dir = output / "adapter"
    peft_model.save_pretrained(str(adapter_dir))
    if prompt_style:
        write_prompt_style(adapter_dir, prompt_style)
    log = [entry for entry in trainer.state.log_history if "loss" in entry]
    dev_losses = [(entry["step"], entry["eval_loss"]) for entry in trainer.state.log_history if "eval_loss" in entry]
    summary = {
        "model": model,
        "records": len(records),
        "trained_records": len(data.rows),
        "skipped_too_long": data.skipped_too_long,
        "skipped_turns": data.skipped_turns,
        "prompt_tokens": data.prompt_tokens,
        "completion_tokens": data.completion_tokens,
        "steps": trainer.state.global_step,
        "resumed_from": resume,
        "initialized_from": sft.init_adapter if resume is None else "",
        "seconds_this_run": round(seconds, 1),
        "trainable_parameters": trainable,
        "total_parameters": total,
        "lora": asdict(lora),
        "sft": asdict(sft),
        "final_loss": log[-1]["loss"] if log else math.nan,
        "dev_losses": dev_losses,  # (step, loss) at each checkpoint of this run, when sft.dev_records is set
    }
    (output / "train_log.json").write_text(json.dumps({"summary": summary, "log": trainer.state.log_history},
                                                      indent=2, default=str), encoding="utf8")
    if log:
        plot_loss([(e["step"], e["loss"]) for e in log], output / "loss.png", title=f"LoRA SFT: {backend.name}",
                  dev=dev_losses)
    return summary
