"""Errors raised to users; each message says what went wrong and what to do about it."""


class CodeIEError(ValueError):
    """Base class of the errors spacy-codeie raises for bad input or configuration."""


class SchemaError(CodeIEError):
    """The schema cannot be rendered as code or refers to types it does not define."""


class ModelLoadError(CodeIEError):
    """A generation backend could not be created from its configuration."""


class PromptTooLongError(CodeIEError):
    """A prompt does not fit the model's context window."""


class GenerationError(CodeIEError):
    """A generation backend could not produce a completion (e.g. its server refused or never answered)."""
