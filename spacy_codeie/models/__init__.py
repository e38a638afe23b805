"""Generation backends following spacy-llm's model contract."""
from .huggingface import HuggingFaceModel
from .openai_compatible import OpenAICompatibleModel, openai_compatible_model
from .registry import default_model, huggingface_model, packaged_gguf

__all__ = ["HuggingFaceModel", "OpenAICompatibleModel", "default_model", "huggingface_model",
           "openai_compatible_model", "packaged_gguf"]
