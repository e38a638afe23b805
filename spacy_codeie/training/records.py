"""Annotated corpora -> code-style SFT records (prompt, completion), written by the component's own code.

The prompt comes from the same `KnowCoderPrompt.render_prompt` the component sends at inference, over the same
windows, and the completion from the same instance writer (`render_completion` over `gold_instances`), so what
the model is trained on is exactly what it will be asked and what the parser reads back.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Literal, Optional, Sequence, Tuple, Union, get_args

from spacy.tokens import DocBin

from ..errors import CodeIEError
from ..gold import gold_instances, present_labels
from ..prompting.knowcoder import KnowCoderPrompt
from ..readers import GoldConverter, blank_pipeline, doc_to_record, read_jsonl
from ..schema.loaders import schema_from_json
from ..schema.types import Schema
from ..windows import split_windows
from .augment import AugmentSettings, schema_view, with_decoys
from .derived import event_relation_types, relation_record, relation_schema
from .fields import from_section

RelationsFromEvents = Literal["off", "also", "only", "joint"]
RelationArguments = Literal["untyped", "typed"]


@dataclass(frozen=True)
class DatasetSpec:
    """One corpus of the mix: where it is, its schema, language, cap and what to derive from it."""

    name: str
    path: str
    schema: str
    lang: str = "en"
    limit: int = 0  # a seeded random sample of this many records (0: all)
    dev: int = 0  # records held out of training for the dev split (seeded), before `limit` applies
    # "also"/"only": relation records derived from its events (derived.py), besides or instead of event records;
    # "joint": besides event records, records that ask for the derived relations and the events in one schema
    relations_from_events: RelationsFromEvents = "off"
    # "typed": the derived records also list each argument span as an entity of its role's class, and the
    # relations join those classes (NER + RE in one answer); "untyped": relations between bare `Entity` spans
    relation_arguments: RelationArguments = "untyped"
    # a labels.json of entity types this corpus never annotates (augment.with_decoys), shown as absent types in
    # its training prompts (not in dev records, which are rendered as at inference)
    decoys: str = ""

    @classmethod
    def from_dict(cls, name: str, data: Dict[str, Any]) -> "DatasetSpec":
        for key in ("path", "schema"):
            if not data.get(key):
                raise CodeIEError(f"Dataset {name!r} needs a '{key}'.")
        for key, choices in (("relations_from_events", RelationsFromEvents), ("relation_arguments", RelationArguments)):
            if key in data and data[key] not in get_args(choices):
                raise CodeIEError(f"Dataset {name!r}: {key} must be one of {', '.join(map(repr, get_args(choices)))}, "
                                  f"not {data[key]!r}.")
        return from_section(cls, data, f"Dataset {name!r}", name=name)


def load_corpus(path: Union[str, Path], lang: str, limit: int = 0) -> List[Dict[str, Any]]:
    """Records from JSONL (the shared format) or a DocBin (.spacy) with codeie annotations."""
    path = Path(path)
    if path.suffix == ".spacy":
        nlp = blank_pipeline(lang)
        docs = DocBin().from_disk(path).get_docs(nlp.vocab)
        records = [doc_to_record(doc, lang=lang) for doc in docs]
        return records[:limit] if limit else records
    if path.suffix != ".jsonl":
        raise CodeIEError(f"{str(path)!r}: training corpora are .jsonl (shared format) or .spacy (DocBin) files.")
    return list(read_jsonl(path, limit))


def sft_records_for(
    records: Iterable[Dict[str, Any]],
    schema: Schema,
    *,
    dataset: str,
    lang: str,
    prompt: KnowCoderPrompt,
    augment: AugmentSettings,
    seed: int,
    window_size: int = 1000,
    progress: bool = False,
) -> Iterator[Dict[str, Any]]:
    """One SFT record per window of each annotated record, with an augmented schema view each."""
    from tqdm.auto import tqdm

    nlp = blank_pipeline(lang)
    converter = GoldConverter(nlp)
    for n, record in enumerate(tqdm(records, desc=f"convert {dataset}", unit="record", disable=not progress,
                                    leave=False)):
        rng = random.Random(f"{seed}:{dataset}:{n}")
        doc = converter.doc(record)
        for w, window in enumerate(split_windows(doc, window_size)):
            view = schema_view(schema, present_labels(doc, window), augment, rng)
            instances = gold_instances(doc, window, view.schema, view.targets)
            yield {
                "id": f"{record.get('id', n)}#{w}",
                "dataset": dataset,
                "lang": lang,
                "text": window.text,
                "schema": view.schema.to_dict(),
                "prompt": prompt.render_prompt(view.schema, window.text),
                "completion": prompt.render_completion(view.schema, instances),
                "instances": len(instances),
                "augment": list(view.applied),
            }


def split_dev(records: List[Dict[str, Any]], count: int, seed: int, name: str) -> Tuple[List, List]:
    """(train, dev): `count` records drawn with a seed of their own, so the dev split never moves."""
    if count <= 0:
        return records, []
    order = list(range(len(records)))
    random.Random(f"{seed}:{name}:dev").shuffle(order)
    held = set(order[:count])
    return ([r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held])


def build_sft_records(
    datasets: Sequence[DatasetSpec],
    *,
    prompt: Optional[KnowCoderPrompt] = None,
    augment: Optional[AugmentSettings] = None,
    seed: int = 0,
    window_size: int = 1000,
    progress: bool = False,
    conversations: Optional["ConversationSettings"] = None,
    dev: Optional[Dict[str, List[Dict[str, Any]]]] = None,
    dev_seed: Optional[int] = None,
) -> List[Dict[str, Any]]:
    """The shuffled mix of all datasets' SFT records (NER, RE and EE together).

    With `conversations`, records are multi-turn conversations (see conversations.py). Each dataset's `dev`
    records are held out first and, when `dev` is a dict, stored there by dataset name. `dev_seed` (default:
    `seed`) draws that split, so that a new `seed` gives fresh training views over the same held-out records.
    """
    if not datasets:
        raise CodeIEError("No datasets to convert. List at least one under [data.datasets] in the config.")
    prompt = prompt or KnowCoderPrompt()
    augment = augment or AugmentSettings()
    out: List[Dict[str, Any]] = []
    for spec in datasets:
        records, held = split_dev(load_corpus(spec.path, spec.lang), spec.dev,
                                  seed if dev_seed is None else dev_seed, spec.name)
        if dev is not None and held:
            dev[spec.name] = held
        if spec.limit and spec.limit < len(records):
            records = random.Random(f"{seed}:{spec.name}").sample(records, spec.limit)
        schema = schema_from_json(spec.schema)
        if spec.decoys:
            schema = with_decoys(schema, schema_from_json(spec.decoys), spec.name)
        if conversations is not None:
            out.extend(_conversations(records, schema, spec, prompt, augment, seed, window_size, conversations))
            continue
        if spec.relations_from_events != "only":
            out.extend(sft_records_for(records, schema, dataset=spec.name, lang=spec.lang, prompt=prompt,
                                       augment=augment, seed=seed, window_size=window_size, progress=progress))
        derived = _derived_relations(records, schema, spec)
        if derived is not None:
            out.extend(sft_records_for(derived[0], derived[1], dataset=_derived_name(spec), lang=spec.lang,
                                       prompt=prompt, augment=augment, seed=seed, window_size=window_size,
                                       progress=progress))
    random.Random(seed).shuffle(out)
    return out


def _conversations(records, schema: Schema, spec: DatasetSpec, prompt, augment: AugmentSettings, seed: int,
                   window_size: int, settings: "ConversationSettings") -> List[Dict[str, Any]]:
    from .conversations import conversation_records

    def convert(recs, sch, name):
        return list(conversation_records(recs, sch, dataset=name, lang=spec.lang, prompt=prompt, augment=augment,
                                         seed=seed, max_turns=settings.max_turns, max_chars=settings.max_chars,
                                         window_size=window_size, synonyms=settings.synonyms(),
                                         rename_rate=settings.rename_rate,
                                         abbreviate_rate=settings.abbreviate_rate,
                                         merge_rate=settings.merge_rate,
                                         split_rate=settings.split_rate))

    out: List[Dict[str, Any]] = []
    if spec.relations_from_events != "only":
        out.extend(convert(records, schema, spec.name))
    derived = _derived_relations(records, schema, spec)
    if derived is not None:
        out.extend(convert(derived[0], derived[1], _derived_name(spec)))
    return out


def _derived_name(spec: DatasetSpec) -> str:
    return f"{spec.name}-{'joint' if spec.relations_from_events == 'joint' else 'relations'}"


def _derived_relations(records, schema: Schema, spec: DatasetSpec
                       ) -> Optional[Tuple[List[Dict[str, Any]], Schema]]:
    """The relation records and schema that `spec.relations_from_events` derives from an event corpus."""
    if spec.relations_from_events == "off" or not schema.events:
        return None
    typed = spec.relation_arguments == "typed"
    joint = spec.relations_from_events == "joint"
    types = event_relation_types(schema, records)
    derived = relation_schema(schema, types, typed=typed, with_events=joint)
    if derived is None:
        return None
    return [relation_record(r, types, typed=typed, keep_events=joint) for r in records], derived


def dev_sft_records(datasets: Sequence[DatasetSpec], dev: Dict[str, List[Dict[str, Any]]], *, prompt,
                    seed: int, window_size: int,
                    conversations: Optional["ConversationSettings"]) -> List[Dict[str, Any]]:
    """SFT records of the held-out dev records, as at inference: whole schema, no augmentation."""
    off = AugmentSettings.off()
    out: List[Dict[str, Any]] = []
    for spec in datasets:
        held = dev.get(spec.name)
        if not held:
            continue
        schema = schema_from_json(spec.schema)
        if conversations is not None:
            out.extend(_conversations(held, schema, spec, prompt, off, seed, window_size,
                                      replace(conversations, rename_rate=0.0, abbreviate_rate=0.0, merge_rate=0.0,
                                              split_rate=0.0)))
        else:
            out.extend(sft_records_for(held, schema, dataset=spec.name, lang=spec.lang, prompt=prompt,
                                       augment=off, seed=seed, window_size=window_size))
    return out


@dataclass(frozen=True)
class ConversationSettings:
    """[data.conversations]: several sentences per record under one rendering of the classes."""

    max_turns: int = 6
    max_chars: int = 1500  # sentence text per conversation
    rename_rate: float = 0.0  # chance to rename a type's class with a synonym from synonyms_path
    synonyms_path: str = ""  # JSON {label: [class names]}
    abbreviate_rate: float = 0.0  # chance to shorten a (not renamed) type's class name to a tag: 'Person' -> 'Per'
    merge_rate: float = 0.0  # chance to show two entity types as one coarser class ('PersonOrOrganization')
    split_rate: float = 0.0  # chance to show each entity type as a name class and a nominal one ('PerNam', 'PerNom')

    def __post_init__(self) -> None:
        if self.max_turns < 1 or self.max_chars < 1:
            raise CodeIEError("data.conversations: max_turns and max_chars must be positive.")
        for name in ("rename_rate", "abbreviate_rate", "merge_rate", "split_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise CodeIEError(f"data.conversations.{name} must be a probability between 0 and 1.")

    def synonyms(self) -> Dict[str, List[str]]:
        if not self.synonyms_path:
            return {}
        import srsly

        path = Path(self.synonyms_path)
        if not path.is_file():
            raise CodeIEError(f"data.conversations.synonyms_path {str(path)!r} does not exist.")
        data = srsly.read_json(path)
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise CodeIEError(f"{str(path)!r} must hold a JSON object of label -> list of class names.")
        return {str(k): [str(n) for n in v] for k, v in data.items()}
