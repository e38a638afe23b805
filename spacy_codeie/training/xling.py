"""Cross-lingual alignment data: parallel examples, and KnowCoder-X's translated-instance prediction records.

Building parallel examples follows ParallelNER's three stages: translate the sentence, translate each
mention on its own, then keep the pair only if every translated mention is found in the translated sentence
(and each type keeps its count). Relations and event arguments follow their mentions. Any `llm_models`
backend can translate: a local instruction model, a served one, or a translation memory.

A translated-instance prediction record shows the source sentence with its answer as a solved turn and asks
for the instances of the translation, so the model learns that the same ontology holds across languages.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from spacy_llm.registry import registry as llm_registry

from ..errors import CodeIEError
from ..gold import gold_instances, present_labels
from ..prompting.knowcoder import KnowCoderPrompt
from ..readers import GoldConverter, blank_pipeline
from ..schema.types import Schema
from .augment import AugmentSettings, schema_view

DEFAULT_TRANSLATION_PROMPT = (
    "Translate the following text from {source} to {target}. Keep names as they are usually written in "
    "{target}. Answer with the translation only.\n\n{text}"
)
LANGUAGE_NAMES = {"en": "English", "de": "German", "es": "Spanish", "fr": "French", "nl": "Dutch", "pl": "Polish",
                  "ru": "Russian", "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "ar": "Arabic",
                  "pt": "Portuguese",
                  "it": "Italian"}


def _language(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


def _answer(response: Any) -> str:
    if isinstance(response, (list, tuple)):
        response = response[0] if response else ""
    return str(response or "").strip()


@dataclass
class ProjectionReport:
    """What happened to each source record: kept, or dropped and why."""

    kept: int = 0
    dropped: Counter = field(default_factory=Counter)

    def to_dict(self) -> Dict[str, Any]:
        return {"kept": self.kept, "dropped": dict(self.dropped)}


def _find(text: str, mention: str, taken: List[Tuple[int, int]]) -> Optional[Tuple[int, int]]:
    """The first occurrence of `mention` in `text` not overlapping a taken span (exact, then case-folded)."""
    for haystack, needle in ((text, mention), (text.casefold(), mention.casefold())):
        if len(haystack) != len(text):  # case folding changed lengths: offsets would not map back
            continue
        start = haystack.find(needle)
        while start != -1:
            end = start + len(needle)
            if all(end <= s or start >= e for s, e in taken):
                return start, end
            start = haystack.find(needle, start + 1)
    return None


def project_record(source: Dict[str, Any], translation: str, mention_translations: Dict[str, str],
                   target_lang: str) -> Tuple[Optional[Dict[str, Any]], str]:
    """The source record's annotations moved onto its translation, or (None, reason) when a check fails."""
    if not translation:
        return None, "empty translation"
    spans: Dict[Tuple[int, int], Tuple[int, int]] = {}
    taken: List[Tuple[int, int]] = []
    mentions = [(e["start"], e["end"], e["text"]) for e in source.get("entities") or ()]
    for event in source.get("events") or ():
        t = event.get("trigger")
        if t is not None:  # a trigger-less event (null trigger) moves by its arguments alone
            mentions.append((t["start"], t["end"], t["text"]))
        mentions.extend((a["start"], a["end"], a["text"]) for a in event.get("arguments") or ())
    for start, end, text in sorted(set(mentions), key=lambda m: -(m[1] - m[0])):
        translated = mention_translations.get(text, "")
        if not translated:
            return None, "mention not translated"
        found = _find(translation, translated, taken)
        if found is None:
            return None, "mention not found in translation"
        spans[(start, end)] = found
        taken.append(found)

    def moved(start: int, end: int) -> Dict[str, Any]:
        s, e = spans[(start, end)]
        return {"start": s, "end": e, "text": translation[s:e]}

    entities = [{**moved(e["start"], e["end"]), "label": e["label"]} for e in source.get("entities") or ()]
    events = []
    for event in source.get("events") or ():
        trigger = event.get("trigger")
        events.append({"label": event["label"],
                       "trigger": moved(trigger["start"], trigger["end"]) if trigger is not None else None,
                       "arguments": [{**moved(a["start"], a["end"]), "role": a["role"]}
                                     for a in event.get("arguments") or ()]})
    target = {"id": f"{source.get('id', '')}@{target_lang}", "lang": target_lang, "text": translation,
              "entities": entities, "relations": [dict(r) for r in source.get("relations") or ()], "events": events}
    if Counter(e["label"] for e in entities) != Counter(e["label"] for e in source.get("entities") or ()):
        return None, "type counts differ"
    return target, ""


def build_parallel(records: Sequence[Dict[str, Any]], translator: Callable, *, source_lang: str, target_lang: str,
                   template: str = DEFAULT_TRANSLATION_PROMPT, batch_size: int = 16,
                   progress: bool = True) -> Tuple[List[Dict[str, Any]], ProjectionReport]:
    """(parallel examples {"source", "target"}, report). The translator follows spacy-llm's model contract."""
    if "{text}" not in template:
        raise CodeIEError("The translation prompt template must contain {text}.")

    def prompt(text: str) -> str:
        return template.format(source=_language(source_lang), target=_language(target_lang), text=text)

    report = ProjectionReport()
    pairs: List[Dict[str, Any]] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(records), desc="translate", unit="record")
    for i in range(0, len(records), batch_size):
        batch = records[i: i + batch_size]
        mentions = sorted({m for r in batch for m in _mention_texts(r)})
        asked = [[prompt(r["text"])] for r in batch] + [[prompt(m)] for m in mentions]
        answers = [_answer(a[0] if isinstance(a, (list, tuple)) and a else a) for a in translator(asked)]
        if len(answers) != len(asked):
            raise CodeIEError(f"The translator answered {len(answers)} of {len(asked)} prompts.")
        mention_map = dict(zip(mentions, answers[len(batch):]))
        for record, translation in zip(batch, answers[: len(batch)]):
            target, reason = project_record(record, translation, mention_map, target_lang)
            if target is None:
                report.dropped[reason] += 1
            else:
                report.kept += 1
                pairs.append({"source": record, "target": target})
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()
    return pairs, report


def _mention_texts(record: Dict[str, Any]) -> Iterable[str]:
    for e in record.get("entities") or ():
        yield e["text"]
    for event in record.get("events") or ():
        if event.get("trigger") is not None:
            yield event["trigger"]["text"]
        for a in event.get("arguments") or ():
            yield a["text"]


def translated_instance_records(pairs: Sequence[Dict[str, Any]], schema: Schema, *, dataset: str,
                                prompt: Optional[KnowCoderPrompt] = None, augment: Optional[AugmentSettings] = None,
                                seed: int = 0) -> List[Dict[str, Any]]:
    """SFT records: source sentence and answer as a solved turn, then the translation to annotate."""
    prompt = prompt or KnowCoderPrompt()
    augment = augment or AugmentSettings()
    out = []
    converters: Dict[Optional[str], GoldConverter] = {}

    def gold_doc(record: Dict[str, Any]):
        lang = record.get("lang")
        if lang not in converters:
            converters[lang] = GoldConverter(blank_pipeline(lang, fallback_to_multilingual=True))
        return converters[lang].doc(record)

    for n, pair in enumerate(pairs):
        rng = random.Random(f"{seed}:{dataset}:xling:{n}")
        src_doc, tgt_doc = gold_doc(pair["source"]), gold_doc(pair["target"])
        view = schema_view(schema, present_labels(tgt_doc, tgt_doc[:]), augment, rng)
        src_instances = gold_instances(src_doc, src_doc[:], view.schema, view.targets)
        tgt_instances = gold_instances(tgt_doc, tgt_doc[:], view.schema, view.targets)
        out.append({
            "id": f"{pair['target'].get('id', n)}#xling",
            "dataset": dataset,
            "lang": pair["target"].get("lang"),
            "text": tgt_doc.text,
            "schema": view.schema.to_dict(),
            "prompt": prompt.render_prompt(view.schema, tgt_doc.text, solved=[(src_doc.text, src_instances)]),
            "completion": prompt.render_completion(view.schema, tgt_instances),
            "instances": len(tgt_instances),
            "augment": list(view.applied) + ["translated_instance"],
        })
    return out


class TranslationMemory:
    """A translator answering from a JSON file {source text: translation}; unknown texts get ''.

    Use it for pre-translated corpora (or human translations); pairs it cannot translate are dropped.
    """

    def __init__(self, path: Union[str, Path]):
        path = Path(path)
        if not path.is_file():
            raise CodeIEError(f"The translation memory {str(path)!r} does not exist.")
        self.table: Dict[str, str] = json.loads(path.read_text(encoding="utf8"))
        self._marker = "\n\n"

    def __call__(self, prompts: Iterable[Iterable[str]]) -> List[List[str]]:
        # The text to translate is what follows the template's instruction paragraph.
        return [[self.table.get(p.split(self._marker, 1)[-1], "") for p in doc_prompts] for doc_prompts in prompts]


@llm_registry.llm_models("spacy_codeie.TranslationMemory.v1")
def translation_memory(path: str) -> TranslationMemory:
    """Translations looked up in a JSON file mapping source texts to their translations."""
    return TranslationMemory(path)
