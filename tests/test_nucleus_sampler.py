"""Temperature and top-p sampling as the llama.cpp backend draws preference samples (numpy only)."""
import numpy as np

from spacy_codeie.models.llama_cpp import NucleusSampler

LOGITS = np.array([2.0, 1.0, 0.5, -1.0, -3.0])


def draws(sampler, n=4000):
    return np.bincount([sampler(LOGITS) for _ in range(n)], minlength=len(LOGITS)) / n


def test_a_tiny_nucleus_is_greedy():
    sampler = NucleusSampler(np.random.default_rng(0), temperature=5.0, top_p=1e-9)
    assert {sampler(LOGITS) for _ in range(50)} == {0}


def test_the_nucleus_keeps_the_fewest_tokens_that_reach_top_p():
    probs = np.exp(LOGITS) / np.exp(LOGITS).sum()  # 0.61, 0.22, 0.14, ...: two tokens hold 0.83
    freq = draws(NucleusSampler(np.random.default_rng(1), temperature=1.0, top_p=0.8))
    assert freq[2:].sum() == 0
    assert abs(freq[0] - probs[0] / probs[:2].sum()) < 0.03


def test_full_nucleus_follows_the_softmax_at_the_temperature():
    for temperature in (0.5, 2.0):
        scaled = LOGITS / temperature
        expected = np.exp(scaled - scaled.max()) / np.exp(scaled - scaled.max()).sum()
        freq = draws(NucleusSampler(np.random.default_rng(2), temperature=temperature, top_p=1.0))
        assert np.abs(freq - expected).max() < 0.03


def test_the_same_seed_draws_the_same_tokens():
    a, b = NucleusSampler(np.random.default_rng(7), 0.9, 0.95), NucleusSampler(np.random.default_rng(7), 0.9, 0.95)
    first = [a(LOGITS) for _ in range(100)]
    assert first == [b(LOGITS) for _ in range(100)] and len(set(first)) > 1
