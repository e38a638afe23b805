"""The SFT loss from the answer positions' logits is the model's own causal-LM loss, gradients included, and
the Trainer's gradient-accumulation bookkeeping treats it as it treats the model's."""
import pytest

torch = pytest.importorskip("torch")

from spacy_codeie.training.answer_loss import (  # noqa: E402
    answer_logit_positions,
    answer_loss,
    answer_loss_trainer,
    supports_answer_logits,
)


@pytest.fixture(scope="module")
def tiny_lora(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    model.train()
    return model


def _batch(vocab: int):
    """Two right-padded rows: a prompt (label -100), an answer, another prompt, another answer; padding after."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(3, vocab, (2, 24), generator=generator)
    labels = torch.full_like(ids, -100)
    labels[0, 6:10] = ids[0, 6:10]
    labels[0, 15:19] = ids[0, 15:19]
    labels[1, 8:13] = ids[1, 8:13]
    attention = torch.ones_like(ids)
    attention[1, 13:] = 0
    ids[1, 13:] = 2
    return {"input_ids": ids, "labels": labels, "attention_mask": attention}


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_positions_are_those_whose_next_token_is_an_answer():
    labels = torch.full((2, 10), -100)
    labels[0, 3:5] = 7
    labels[1, 8] = 7
    assert answer_logit_positions(labels).tolist() == [2, 3, 7]


def test_the_loss_and_gradients_equal_the_models_own(tiny_lora):
    assert supports_answer_logits(tiny_lora)
    batch = _batch(tiny_lora.config.vocab_size)
    tiny_lora.zero_grad()
    reference = tiny_lora(**batch).loss
    reference.backward()
    expected = _grads(tiny_lora)
    tiny_lora.zero_grad()
    loss, outputs = answer_loss(tiny_lora, batch)
    loss.backward()
    got = _grads(tiny_lora)
    # only the 11 positions that predict an answer token in either row (5-11 and 14-17) were projected onto
    # the vocabulary, not all 24
    assert outputs.logits.shape[:2] == (2, 11)
    assert torch.allclose(loss, reference, atol=1e-6)
    assert set(got) == set(expected) and len(got) > 0
    for name, grad in expected.items():
        assert torch.allclose(got[name], grad, atol=1e-6), name
    # over an accumulated batch: a sum over its answer tokens, divided by their count in the whole batch
    summed, _ = answer_loss(tiny_lora, batch, num_items=13 * 3)
    assert torch.allclose(summed, reference * 13 / 39, atol=1e-6)


def test_the_trainer_accumulates_as_with_the_models_loss(tiny_lora, tmp_path):
    import datasets
    from transformers import Trainer, TrainingArguments

    from spacy_codeie.training.finetune import CompletionCollator

    batch = _batch(tiny_lora.config.vocab_size)
    rows = [{"input_ids": batch["input_ids"][i][batch["attention_mask"][i] == 1].tolist(),
             "labels": batch["labels"][i][batch["attention_mask"][i] == 1].tolist()} for i in range(2)]
    start = {n: p.detach().clone() for n, p in tiny_lora.named_parameters() if p.requires_grad}
    moved = {}
    for kind in (Trainer, answer_loss_trainer()):
        with torch.no_grad():
            for n, p in tiny_lora.named_parameters():
                if n in start:
                    p.copy_(start[n])
        args = TrainingArguments(output_dir=str(tmp_path / kind.__name__), per_device_train_batch_size=1,
                                 gradient_accumulation_steps=2, max_steps=1, learning_rate=1e-2, report_to="none",
                                 use_cpu=True, remove_unused_columns=False, save_strategy="no", seed=0,
                                 disable_tqdm=True, optim="sgd", max_grad_norm=0.0)  # an update that scales
                                                                                      # with the gradient
        trainer = kind(model=tiny_lora, args=args, train_dataset=datasets.Dataset.from_list(rows),
                       data_collator=CompletionCollator(2))
        trainer.train()
        moved[kind.__name__] = {n: p.detach().clone() for n, p in tiny_lora.named_parameters() if n in start}
    ours, theirs = moved["AnswerLossTrainer"], moved["Trainer"]
    assert any(not torch.equal(theirs[n], start[n]) for n in start)  # the step did move the weights
    for name in start:
        assert torch.allclose(ours[name], theirs[name], atol=1e-6), name
