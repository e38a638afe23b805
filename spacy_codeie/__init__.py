"""spacy-codeie: universal, multilingual information extraction with code LLMs, as a spaCy component."""
from . import gold, readers  # noqa: F401  (registers the corpus reader and the table model)
from .about import __version__
from .annotations import EventMention, RelationMention, diagnostics
from .errors import CodeIEError, ModelLoadError, PromptTooLongError, SchemaError
from .models import HuggingFaceModel
from .pipeline import CodeIE, make_codeie
from .prompting import KnowCoderPrompt
from .schema import Entity, Event, Relation, Schema, schema_from_dict, schema_from_file, schema_from_json
from .scoring import score_codeie
from .visualize import render, serve

__all__ = [
    "CodeIE",
    "CodeIEError",
    "Entity",
    "Event",
    "EventMention",
    "HuggingFaceModel",
    "KnowCoderPrompt",
    "ModelLoadError",
    "PromptTooLongError",
    "Relation",
    "RelationMention",
    "Schema",
    "SchemaError",
    "__version__",
    "diagnostics",
    "make_codeie",
    "render",
    "schema_from_dict",
    "schema_from_file",
    "schema_from_json",
    "score_codeie",
    "serve",
]
