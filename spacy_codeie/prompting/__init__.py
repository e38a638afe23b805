"""Prompt styles: schema -> prompt text, and gold instances -> completions, one object per format."""
from .compact import CompactPrompt, make_compact_prompt
from .knowcoder import COMPLETION_PREFIX, KNOWCODER_SYSTEM_PROMPT, KnowCoderPrompt, make_knowcoder_prompt, python_string_literal

__all__ = ["COMPLETION_PREFIX", "CompactPrompt", "KNOWCODER_SYSTEM_PROMPT", "KnowCoderPrompt", "make_compact_prompt",
           "make_knowcoder_prompt", "python_string_literal"]
