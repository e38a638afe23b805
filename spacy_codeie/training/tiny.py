"""A tiny random causal LM (a byte-level BPE tokenizer trained here, a 2-layer Llama): for smoke runs and tests.

It runs every step of the recipe in seconds on a CPU without downloading anything. Its outputs are noise;
it checks the plumbing, not the quality.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


def build_tiny_model(folder: Union[str, Path], with_chat_template: bool = False, seed: int = 0) -> Path:
    """Save a tokenizer and a random 2-layer Llama (hidden size 32) to `folder`; returns it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from ..prompting import KnowCoderPrompt
    from ..schema import schema_from_dict

    schema = schema_from_dict(entities={"PERSON": "a person", "ORG": "an organization"},
                              relations={"WORKS_FOR": {"head": "PERSON", "tail": "ORG"}})
    corpus = [KnowCoderPrompt().render_prompt(schema, "Ada Lovelace worked for Babbage Labs.")] * 5
    corpus += ["results = [\n\tPerson(\"Ada\"),\n]", "北京 東京 서울 Москва München"] * 5
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    if with_chat_template:
        fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                         pad_token_id=fast.pad_token_id)
    model = LlamaForCausalLM(config)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder
