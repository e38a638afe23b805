"""Prompt styles: schema -> prompt text, and gold instances -> completions, one object per format."""
from .adelie import ADELIEPrompt, make_adelie_prompt
from .adelie_open import (
           ADELIEOnDemandPrompt,
           ADELIEOpenIEPrompt,
           make_adelie_ondemand_prompt,
           make_adelie_openie_prompt,
)
from .compact import CompactPrompt, make_compact_prompt
from .gollie import GoLLIEPrompt, make_gollie_prompt
from .knowcoder import (
           COMPLETION_PREFIX,
           KNOWCODER_SYSTEM_PROMPT,
           KnowCoderPrompt,
           make_knowcoder_prompt,
           python_string_literal,
)
from .knowcoder_v2 import KnowCoderTaskPrompt, make_knowcoder_task_prompt
from .yayi import YAYIPrompt, make_yayi_prompt

__all__ = ["ADELIEOnDemandPrompt", "ADELIEOpenIEPrompt", "ADELIEPrompt", "COMPLETION_PREFIX", "CompactPrompt",
           "GoLLIEPrompt", "KNOWCODER_SYSTEM_PROMPT", "KnowCoderPrompt", "KnowCoderTaskPrompt", "YAYIPrompt",
           "make_adelie_ondemand_prompt", "make_adelie_openie_prompt", "make_adelie_prompt", "make_compact_prompt",
           "make_gollie_prompt", "make_knowcoder_prompt", "make_knowcoder_task_prompt", "make_yayi_prompt",
           "python_string_literal"]
