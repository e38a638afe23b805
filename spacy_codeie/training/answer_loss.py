"""The SFT loss, computed from the answer positions' logits only.

A record's loss reads the next-token distribution only where the next token belongs to an answer. The prompt
(system line, class definitions, sentences) is most of each record and needs none. Projecting every position
onto the vocabulary is the largest single cost of a step for a small model with a big vocabulary: Gemma-3-270M's
output layer (262k x 640) holds more weights than its 18 blocks. So the model is asked for the logits at the
answer positions only (transformers' `logits_to_keep`), and the loss is the same number the model's own
causal-LM loss gives: summed token cross-entropy over the answer tokens, divided by their count.
"""
from __future__ import annotations

import inspect
from typing import Any, Dict, Optional


def answer_logit_positions(labels):
    """The positions whose next token is an answer token in any row of the batch: the only logits read."""
    return (labels[:, 1:] != -100).any(dim=0).nonzero().flatten()


def supports_answer_logits(model) -> bool:
    """Whether the model's forward can return the logits of chosen positions only (`logits_to_keep`)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def answer_loss(model, inputs: Dict[str, Any], num_items: Optional[Any] = None):
    """(loss, outputs): the causal-LM loss of `inputs["labels"]`, from the answer positions' logits.

    Divided by `num_items` (the answer tokens of the whole accumulated batch, as the Trainer counts them) when
    given, else by this batch's answer tokens."""
    import torch.nn.functional as F

    labels = inputs["labels"]
    keep = answer_logit_positions(labels)
    outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"), logits_to_keep=keep)
    targets = labels[:, keep + 1]
    logits = outputs.logits.float()
    total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100,
                            reduction="sum")
    count = num_items if num_items is not None else (targets != -100).sum().clamp(min=1)
    return total / count, outputs


def answer_loss_trainer():
    """A transformers Trainer whose loss is `answer_loss`, normalized as the Trainer normalizes the model's own
    loss (over the accumulated batch when it counts the answer tokens, else per batch and then divided by the
    accumulation steps)."""
    from transformers import Trainer

    class AnswerLossTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            counted = num_items_in_batch if self.model_accepts_loss_kwargs else None
            loss, outputs = answer_loss(model, inputs, counted)
            return (loss, outputs) if return_outputs else loss

    return AnswerLossTrainer
