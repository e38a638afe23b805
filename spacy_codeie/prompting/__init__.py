"""Schema -> Python class source, and gold instances -> completions."""
from .knowcoder import COMPLETION_PREFIX, KNOWCODER_SYSTEM_PROMPT, KnowCoderPrompt, make_knowcoder_prompt, python_string_literal

__all__ = ["COMPLETION_PREFIX", "KNOWCODER_SYSTEM_PROMPT", "KnowCoderPrompt", "make_knowcoder_prompt", "python_string_literal"]
