"""Library functions behind the command line: build a pipeline, extract records, run the round-trip check.

The CLI (`cli.py`) and the distributed runner (`distributed.py`) both call these; nothing imports the CLI.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, Optional, cast

import spacy
from spacy.language import Language

from .errors import CodeIEError
from .models.registry import DEFAULT_PACKAGED_BASE, packaged_base_of
from .readers import blank_pipeline

if TYPE_CHECKING:
    from .pipeline import CodeIE


def build_nlp(
    *,
    pipeline: Optional[str] = None,
    schema: Optional[str] = None,
    model: Optional[str] = None,
    adapter: Optional[str] = None,
    base: Optional[str] = None,
    lang: str = "en",
    batch_size: Optional[int] = None,
    max_new_tokens: int = 256,
    progress: bool = False,
    overrides: Optional[Dict[str, Any]] = None,
) -> Language:
    """A pipeline from a saved folder or config file, or a blank one with a codeie component for a schema
    (its model block: `model_config`)."""
    if pipeline:
        path = Path(pipeline)
        if path.suffix == ".cfg":
            config = spacy.util.load_config(path, overrides=overrides or {}, interpolate=False)
            return spacy.util.load_model_from_config(config, auto_fill=True)
        return spacy.load(path, config=overrides or {})
    if not schema:
        raise CodeIEError("Give --pipeline (a saved pipeline folder or .cfg file) or --schema (a .py or .json file).")
    model_cfg = model_config(model, adapter, base=base, batch_size=batch_size, max_new_tokens=max_new_tokens,
                             progress=progress)
    nlp = blank_pipeline(lang)
    nlp.add_pipe("codeie", config={"schema": {"@misc": "spacy_codeie.schema_from_file.v1", "path": schema},
                                   "model": model_cfg})
    return nlp


def model_config(model: Optional[str], adapter: Optional[str], *, base: Optional[str] = None,
                 batch_size: Optional[int] = None, max_new_tokens: int = 256, progress: bool = False
                 ) -> Dict[str, Any]:
    """The `model` block for a blank pipeline: `model` (a folder, .gguf file or hub id) on transformers, 8 prompts a
    batch unless `batch_size` says otherwise; else the embedded default, or a packaged base with `adapter` (`base`,
    else the one the adapter's config names, else the default's), at their own batch size (tuned for their
    runtime) unless `batch_size` is given."""
    if model and base:
        raise CodeIEError(f"Both a model ({model!r}) and a packaged base ({base!r}): the base is for an adapter run "
                          "without --model; give one of them.")
    if model:
        block: Dict[str, Any] = {"@llm_models": "spacy_codeie.HuggingFace.v1", "name": model,
                                 "batch_size": batch_size or 8, "max_new_tokens": max_new_tokens, "progress": progress}
        return {**block, "adapter": adapter} if adapter else block
    block = {"@llm_models": "spacy_codeie.DefaultModel.v6", "max_new_tokens": max_new_tokens, "progress": progress}
    if batch_size:
        block["batch_size"] = batch_size
    if base and not adapter:
        raise CodeIEError(f"A base ({base!r}) without an adapter: give --adapter, or leave out --base to run the "
                          "embedded default.")
    if adapter:
        base = base or packaged_base_of(adapter) or DEFAULT_PACKAGED_BASE
        block.update({"@llm_models": "spacy_codeie.PackagedBase.v1", "base": base, "adapter": adapter})
    return block


def codeie_component_name(nlp: Language) -> str:
    """The name of the (first) codeie component of a pipeline."""
    for name, pipe in nlp.pipeline:
        if getattr(pipe, "schema", None) is not None and hasattr(pipe, "group_targets"):
            return name
    raise CodeIEError("The pipeline has no codeie component.")


def codeie_component(nlp: Language) -> "CodeIE":
    """The (first) codeie component of a pipeline."""
    return cast("CodeIE", nlp.get_pipe(codeie_component_name(nlp)))


def extract_records(
    nlp: Language, records: Iterable[Dict[str, Any]], *, batch_size: int = 64
) -> Iterator[Dict[str, Any]]:
    """One output record per input record ({"text", optional "id"}), in order: what `extract` writes per line.

    {"id" (when the input has one), "lang", "text", "entities", "relations", "events", "diagnostics"}; the
    annotations are in the shared JSONL format (see `readers.doc_to_record`). `annotate-ray` writes the same.
    """
    from .annotations import diagnostics
    from .readers import RECORD_ID_KEY, doc_to_record

    cfg = codeie_component(nlp).cfg
    stream = ((r["text"], r) for r in records)
    for doc, record in nlp.pipe(stream, as_tuples=True, batch_size=batch_size):
        if record.get("id") is not None:
            doc.user_data[RECORD_ID_KEY] = record["id"]
        result = doc_to_record(doc, spans_key=cfg["spans_key"], relations_extension=cfg["relations_extension"],
                               events_extension=cfg["events_extension"])
        result["diagnostics"] = diagnostics(doc)
        yield result


def roundtrip_scores(path: str, schema_path: str, lang: str, limit: int = 0, **settings: Any) -> Dict[str, Any]:
    """Gold docs -> rendered completions -> the component's parse and alignment -> scores against gold."""
    from .gold import CompletionTable, gold_completions
    from .readers import examples_from_jsonl

    nlp = blank_pipeline(lang)
    config = {"schema": {"@misc": "spacy_codeie.schema_from_file.v1", "path": schema_path},
              "model": {"@llm_models": "spacy_codeie.CompletionTable.v1"}, **settings}
    component = cast("CodeIE", nlp.add_pipe("codeie", config=config))
    examples = examples_from_jsonl(path, nlp, limit=limit, spans_key=component.cfg["spans_key"])
    table = cast(CompletionTable, component.model)
    table.table.update(gold_completions(component, [eg.reference for eg in examples]))
    return nlp.evaluate(examples)
