"""spacy-codeie: universal, multilingual information extraction with code LLMs, as a spaCy component."""
from . import gold, readers  # noqa: F401  (registers the corpus reader and the table model)
from .about import __version__
from .annotations import EventMention, RelationMention, diagnostics
from .errors import CodeIEError, ModelLoadError, PromptTooLongError, SchemaError
from .models import HuggingFaceModel
from .on_demand import OnDemand, make_ondemand
from .open_annotations import OpenTuple, Phrase, Table, ondemand_diagnostics, openie_diagnostics
from .open_ie import OpenIE, make_openie
from .open_scoring import score_open_ie
from .pipeline import CodeIE, make_codeie
from .prompting import ADELIEOnDemandPrompt, ADELIEOpenIEPrompt, KnowCoderPrompt
from .schema import Entity, Event, Relation, Schema, schema_from_dict, schema_from_file, schema_from_json
from .scoring import score_codeie
from .visualize import render, serve

__all__ = [
    "ADELIEOnDemandPrompt",
    "ADELIEOpenIEPrompt",
    "CodeIE",
    "CodeIEError",
    "Entity",
    "Event",
    "EventMention",
    "HuggingFaceModel",
    "KnowCoderPrompt",
    "ModelLoadError",
    "OnDemand",
    "OpenIE",
    "OpenTuple",
    "Phrase",
    "PromptTooLongError",
    "Relation",
    "RelationMention",
    "Schema",
    "SchemaError",
    "Table",
    "__version__",
    "diagnostics",
    "make_codeie",
    "make_ondemand",
    "make_openie",
    "ondemand_diagnostics",
    "openie_diagnostics",
    "render",
    "schema_from_dict",
    "schema_from_file",
    "schema_from_json",
    "score_codeie",
    "score_open_ie",
    "serve",
]
