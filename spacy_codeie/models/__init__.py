"""Generation backends following spacy-llm's model contract."""
from .huggingface import HuggingFaceModel
from .registry import default_model, huggingface_model, packaged_gguf

__all__ = ["HuggingFaceModel", "default_model", "huggingface_model", "packaged_gguf"]
