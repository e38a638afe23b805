"""The `codeie` component: windows and type groups -> prompts -> model -> parse -> align -> Doc."""

import logging
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Literal,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
    cast,
    get_args,
)

import srsly
from spacy.language import Language
from spacy.pipeline import Pipe
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.util import filter_spans, minibatch

from .alignment import ALIGNMENT_MODES, AlignmentMode, AlignmentResult, align_instances, token_span
from .annotations import (
    DIAGNOSTICS_KEY,
    event_record,
    event_records,
    register_extensions,
    relation_record,
    relation_records,
    set_event_records,
    set_relation_records,
)
from .errors import CodeIEError, PromptTooLongError
from .instances import EventInstance, ParseResult
from .models.contract import CarriesAdapter, CountsTokens, declared_prompt_style, response_text
from .prompting.knowcoder import KnowCoderPrompt
from .prompting.style import AnswerParser, AsksFollowUps, PromptStyle
from .schema.loaders import schema_from_mapping
from .schema.types import AnyType, Schema
from .windows import split_window, split_windows

logger = logging.getLogger("spacy_codeie")
# spaCy checks initialize's arguments with a pydantic model, and pydantic warns that a field called "schema"
# shadows BaseModel.schema. Harmless here, and "schema" is the name the config uses everywhere.
warnings.filterwarnings("ignore", message='Field name "schema" in "InitArgModel"', category=UserWarning)
TaskSplit = Literal["joint", "per_task"]
TASK_SPLITS = get_args(TaskSplit)
ADAPTER_DIR = "adapter"  # where a saved pipeline keeps its model's LoRA adapter
_BOUNDARY_TOKENS = 8  # tokens a prompt may gain where its text meets the schema part, in the bytes bound
DIAGNOSTIC_FIELDS = (
    "windows", "skipped_windows", "skipped_prompts", "prompts", "empty_completions", "truncated", "instances",
    "unparseable", "unknown_class", "unknown_role", "bad_arguments", "mentions", "hallucinated", "duplicates",
    "misaligned",
)

DEFAULT_CONFIG = {
    "schema": None,
    "model": {"@llm_models": "spacy_codeie.DefaultModel.v6"},
    "prompt": None,  # None: the style the model declares it was trained with, else KnowCoderPrompt.v1
    "max_types_per_prompt": 0,
    "task_split": "joint",
    "window_size": 1000,
    "alignment_mode": "expand",
    "spans_key": "codeie",
    "overwrite_ents": False,
    "overwrite": False,
    "relations_extension": "relations",
    "events_extension": "events",
    "scorer": {"@scorers": "spacy_codeie.scorer.v1"},
}


@Language.factory(
    "codeie",
    default_config=DEFAULT_CONFIG,
    assigns=["doc.ents", "doc.spans", "doc._.relations", "doc._.events"],
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "codeie_rel_strict_f": 0.0,
                           "codeie_arg_cls_f": 0.0},
)
def make_codeie(
    nlp: Language,
    name: str,
    schema: Optional[Schema],
    model: Callable[[Iterable[Iterable[str]]], Iterable[Iterable[str]]],
    prompt: Optional[PromptStyle],
    max_types_per_prompt: int,
    task_split: TaskSplit,
    window_size: int,
    alignment_mode: AlignmentMode,
    spans_key: str,
    overwrite_ents: bool,
    overwrite: bool,
    relations_extension: str,
    events_extension: str,
    scorer: Optional[Callable],
) -> "CodeIE":
    return CodeIE(
        nlp.vocab,
        name=name,
        schema=schema,
        model=model,
        prompt=prompt,
        max_types_per_prompt=max_types_per_prompt,
        task_split=task_split,
        window_size=window_size,
        alignment_mode=alignment_mode,
        spans_key=spans_key,
        overwrite_ents=overwrite_ents,
        overwrite=overwrite,
        relations_extension=relations_extension,
        events_extension=events_extension,
        scorer=scorer,
    )


class CodeIE(Pipe):
    """Extracts entities, relations and events for any schema by prompting a code LLM."""

    def __init__(
        self,
        vocab,
        *,
        name: str = "codeie",
        schema: Optional[Schema] = None,
        model: Callable[[Iterable[Iterable[str]]], Iterable[Iterable[str]]],
        prompt: Optional[PromptStyle] = None,
        max_types_per_prompt: int = 0,
        task_split: TaskSplit = "joint",
        window_size: int = 1000,
        alignment_mode: AlignmentMode = "expand",
        spans_key: str = "codeie",
        overwrite_ents: bool = False,
        overwrite: bool = False,
        relations_extension: str = "relations",
        events_extension: str = "events",
        scorer: Optional[Callable] = None,
    ):
        if schema is not None and not isinstance(schema, Schema):
            raise CodeIEError(
                f"The codeie 'schema' must be built by a schema function such as spacy_codeie.schema_from_dict.v1, "
                f"not given as {type(schema).__name__}. Wrap it: {{'@misc': 'spacy_codeie.schema_from_dict.v1', ...}}."
            )
        if not callable(model):
            raise CodeIEError("The codeie 'model' must be a callable from the llm_models registry.")
        if task_split not in TASK_SPLITS:
            raise CodeIEError(f"task_split={task_split!r} is not one of {TASK_SPLITS}.")
        if alignment_mode not in ALIGNMENT_MODES:
            raise CodeIEError(f"alignment_mode={alignment_mode!r} is not one of {ALIGNMENT_MODES}.")
        if max_types_per_prompt < 0:
            raise CodeIEError("max_types_per_prompt must be 0 (no limit) or a positive number of types.")
        if window_size < 1:
            raise CodeIEError("window_size must be a positive number of characters.")
        if relations_extension == events_extension:
            raise CodeIEError("relations_extension and events_extension must be different names.")
        self.vocab = vocab
        self.name = name
        self.model = model
        self.prompt = prompt or declared_prompt_style(model) or KnowCoderPrompt()
        self.cfg: Dict[str, Any] = {
            "max_types_per_prompt": max_types_per_prompt,
            "task_split": task_split,
            "window_size": window_size,
            "alignment_mode": alignment_mode,
            "spans_key": spans_key,
            "overwrite_ents": overwrite_ents,
            "overwrite": overwrite,
            "relations_extension": relations_extension,
            "events_extension": events_extension,
        }
        self.scorer = scorer
        register_extensions(relations_extension, events_extension)
        # A schema in the config is a setting and wins over one saved with the pipeline; without one, the
        # schema is data: given to `initialize` (as SpanRuler takes its patterns) and saved in schema.json.
        self._schema_in_config = schema is not None
        self.schema: Optional[Schema] = None
        self.groups: List[Schema] = []
        self.group_targets: List[frozenset] = []
        self._parsers: List[AnswerParser] = []
        self._heads: Optional[Tuple[Tuple[int, ...], List[Tuple[int, int]]]] = None  # see _prompt_heads
        self._warned_unreadable = False
        if schema is not None:
            self._set_schema(schema)

    # ---- schema and its prompt groups ---------------------------------------------------------
    def _set_schema(self, schema: Schema) -> None:
        self.schema = schema
        # One prompt per group. A group also renders the entity classes its relations and roles refer to;
        # `group_targets` holds the labels the group is asked for.
        group_types = self._group_types(schema)
        self.groups = [schema.subset(types) for types in group_types]
        self.group_targets = [frozenset(t.label for t in types) for types in group_types]
        self._parsers = [self.prompt.parser(group) for group in self.groups]
        self._heads = None

    def _group_types(self, schema: Schema) -> List[List[AnyType]]:
        """Types per prompt: per task if asked, at most max_types_per_prompt types each."""
        limit = self.cfg["max_types_per_prompt"]
        # a style whose models were trained on one task per prompt (YAYI-UIE, ADELIE, GoLLIE) asks for it
        if self.cfg["task_split"] == "per_task" or getattr(self.prompt, "tasks", "joint") == "per_task":
            units: List[List[AnyType]] = [list(schema.entities), list(schema.relations), list(schema.events)]
        else:
            units = [list(schema.types)]
        groups: List[List[AnyType]] = []
        for types in units:
            if not types:
                continue
            size = limit or len(types)
            for i in range(0, len(types), size):
                groups.append(types[i: i + size])
        return groups

    def _require_schema(self) -> None:
        if self.schema is None:
            raise CodeIEError(
                f"The codeie component {self.name!r} has no schema. Add one to its config, e.g. "
                '{"schema": {"@misc": "spacy_codeie.schema_from_dict.v1", "entities": {"PERSON": "a human being"}}} '
                'or {"schema": {"@misc": "spacy_codeie.schema_from_file.v1", "path": "ontology.py"}}, or give it '
                f"to nlp.initialize() under [initialize.components.{self.name}.schema]."
            )

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(t.label for t in self.schema.types) if self.schema is not None else ()

    # ---- processing -------------------------------------------------------------------------
    def __call__(self, doc: Doc) -> Doc:
        return next(iter(self.pipe([doc])))

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 64) -> Iterator[Doc]:
        """Send the prompts of `batch_size` docs to the model at once (`nlp.pipe(batch_size=...)` sets it)."""
        self._require_schema()
        error_handler = self.get_error_handler()
        for batch in minibatch(stream, size=batch_size):
            docs = list(batch)
            try:
                done = self._process_batch(docs)
            except PromptTooLongError:
                # A model that cannot count its tokens refused a prompt: redo the batch so that only the
                # prompts it refuses are lost, not every doc that was sent with them.
                done = self._process_prompt_by_prompt(docs, error_handler)
            except Exception as err:  # spaCy's error handler decides (raise by default)
                error_handler(self.name, self, docs, err)
                continue
            yield from done

    def prompts_for(self, doc: Doc) -> Tuple[List[Tuple[Span, int]], List[str], Counter]:
        """The (window, group index) units of a doc, their prompts, and the first diagnostics."""
        self._require_schema()
        diag: Counter = Counter()
        units: List[Tuple[Span, int]] = []
        prompts: List[str] = []
        size = self.cfg["window_size"]
        windows = []
        for window in split_windows(doc, size):
            if len(window.text) > size:
                diag["windows"] += 1
                diag["skipped_windows"] += 1
                logger.warning(
                    "codeie skipped a window of %d characters: one token is longer than window_size=%d. It is "
                    "counted under 'skipped_windows' in the doc's diagnostics.", len(window.text), size,
                )
                continue
            windows.append(window)
        for window, rendered in self._fit_to_model(windows, diag):
            diag["windows"] += 1
            for g, prompt in enumerate(rendered):
                units.append((window, g))
                prompts.append(prompt)
        diag["prompts"] = len(prompts)
        return units, prompts, diag

    # ---- windows sized by the model's tokens ------------------------------------------------------
    def _render(self, window: Span) -> List[str]:
        return [self.prompt.prompt_for(group, window.text) for group in self.groups]

    def _fit_to_model(self, windows: List[Span], diag: Counter) -> List[Tuple[Span, List[str]]]:
        """The windows with their prompts, cut smaller where a prompt is too long in the model's tokens.

        `window_size` counts characters, and a character can be several tokens (emoji, CJK). A model that can
        count its tokens (models.contract.CountsTokens) has each window checked; one still too long as a single
        token is skipped and counted, so one window never costs a batch. Only prompts that might be too long
        are counted: a token covers at least one byte, so the text part of a prompt has at most as many tokens
        as bytes.
        """
        out = [(w, self._render(w)) for w in windows]
        limit = self.model.max_prompt_tokens if isinstance(self.model, CountsTokens) else None
        if not limit or not out:
            return out
        heads = self._prompt_heads(limit)

        def surely_fits(rendered: List[str]) -> bool:
            return all(tokens + len(p.encode("utf8")) - size + _BOUNDARY_TOKENS <= limit
                       for p, (tokens, size) in zip(rendered, heads))

        todo = [item for item in out if not surely_fits(item[1])]
        out = [item for item in out if surely_fits(item[1])]
        skipped = 0
        while todo:
            counts = self.model.count_tokens([p for _, rendered in todo for p in rendered])
            per_window = len(self.groups)
            later = []
            for i, (window, rendered) in enumerate(todo):
                lengths = counts[i * per_window:(i + 1) * per_window]
                if max(lengths) <= limit:
                    out.append((window, rendered))
                elif len(window) == 1:
                    skipped += 1
                else:  # shrink by the share of the text's tokens that fits beside the schema part
                    share = min((limit - head) / max(1, n - head) for n, (head, _) in zip(lengths, heads) if n > limit)
                    size = max(1, min(len(window.text) - 1, int(len(window.text) * share * 0.9)))
                    later.extend((piece, self._render(piece)) for piece in split_window(window, size))
            todo = later
        if skipped:
            diag["windows"] += skipped
            diag["skipped_windows"] += skipped
            logger.warning(
                "codeie skipped %d window(s) of one token each whose prompt is longer than the %d tokens the model "
                "takes. They are counted under 'skipped_windows' in the doc's diagnostics.", skipped, limit,
            )
        out.sort(key=lambda item: item[0].start)
        return out

    def _prompt_heads(self, limit: int) -> List[Tuple[int, int]]:
        """(tokens, UTF-8 bytes) of each group's prompt without text; an error if one leaves no room for text."""
        key = (id(self.model), id(self.prompt), limit)
        if self._heads is None or self._heads[0] != key:
            empty = [self.prompt.render_prompt(group, "") for group in self.groups]
            counts = cast(CountsTokens, self.model).count_tokens(empty)
            self._heads = (key, [(n, len(p.encode("utf8"))) for n, p in zip(counts, empty)])
        heads = self._heads[1]
        for group, (tokens, _) in zip(self.groups, heads):
            if tokens >= limit:
                raise PromptTooLongError(
                    f"The prompt for the types {', '.join(t.label for t in group.types)} is {tokens} tokens before "
                    f"any text, and the model takes at most {limit}. Lower 'max_types_per_prompt' (or use "
                    'task_split = "per_task"), shorten the schema\'s descriptions and demonstrations, or use a '
                    "model with a longer context."
                )
        return heads

    def _ask(self, prompts_per_doc: List[List[str]]) -> List[List[str]]:
        """The model's answers, one list per doc, checked against spacy-llm's contract."""
        responses = list(self.model(prompts_per_doc))
        if len(responses) != len(prompts_per_doc):
            raise CodeIEError(
                f"The model returned answers for {len(responses)} docs but was given {len(prompts_per_doc)}. Its "
                "callable must return one iterable of responses per doc (spacy-llm's model contract)."
            )
        out = []
        for prompts, doc_responses in zip(prompts_per_doc, responses):
            texts = [response_text(r) for r in doc_responses]
            if len(texts) != len(prompts):
                raise CodeIEError(
                    f"The model returned {len(texts)} responses for {len(prompts)} prompts of one doc. It must "
                    "answer every prompt."
                )
            out.append(texts)
        return out

    def _process_batch(self, docs: List[Doc]) -> List[Doc]:
        planned = [self.prompts_for(doc) for doc in docs]
        answers = self._ask([prompts for _, prompts, _ in planned])
        parsed = [self._parse(units, texts, diag) for (units, _, diag), texts in zip(planned, answers)]
        self._warn_if_nothing_was_read([p for doc_parsed in parsed for p in doc_parsed])
        self._follow_up([units for units, _, _ in planned], parsed, [diag for _, _, diag in planned])
        for doc, (units, _, diag), doc_parsed in zip(docs, planned, parsed):
            self._annotate(doc, units, doc_parsed, diag)
        return docs

    def _parse(self, units: List[Tuple[Span, int]], texts: List[str], diag: Counter) -> List[ParseResult]:
        out = []
        for (_, g), text in zip(units, texts):
            parsed = self._parsers[g].parse(text)
            _count_parse(parsed, diag)
            out.append(parsed)
        return out

    def _warn_if_nothing_was_read(self, parsed: List[ParseResult]) -> None:
        """A model that answers in another format than the style reads yields no instance and no error; say so
        (once per component) instead of leaving empty docs that look like nothing was found."""
        rejected = sum(p.rejected for p in parsed)
        if self._warned_unreadable or not parsed or rejected == 0 or any(p.instances for p in parsed):
            return
        self._warned_unreadable = True
        logger.warning(
            "codeie %r could not read any instance from %d answers of a batch (%d items rejected: unparseable, "
            "unknown classes or roles, bad arguments). The model does not answer in the format of the prompt "
            "style %s: check the 'prompt' setting against the style the model was trained with, or look at the "
            "raw answers. The counts are in each doc's diagnostics.",
            self.name, len(parsed), rejected, type(self.prompt).__name__,
        )

    def _follow_up(self, units_per_doc: List[List[Tuple[Span, int]]], parsed_per_doc: List[List[ParseResult]],
                   diags: List[Counter]) -> None:
        """The second round of a style that asks in stages (event arguments once events are detected): its
        follow-up prompts of all docs go to the model at once, and their answers are merged into the first."""
        if not isinstance(self.prompt, AsksFollowUps):
            return
        asked: List[List[Tuple[int, Any, AnswerParser]]] = []
        for units, parsed_units in zip(units_per_doc, parsed_per_doc):
            doc_asks = []
            for u, ((window, g), parsed) in enumerate(zip(units, parsed_units)):
                for prompt, parser in self.prompt.follow_ups(self.groups[g], window.text, parsed.instances):
                    doc_asks.append((u, prompt, parser))
            asked.append(doc_asks)
        if not any(asked):
            return
        answers = self._ask([[prompt for _, prompt, _ in doc_asks] for doc_asks in asked])
        for doc_asks, texts, parsed_units, diag in zip(asked, answers, parsed_per_doc, diags):
            diag["prompts"] += len(doc_asks)
            for (u, _, parser), text in zip(doc_asks, texts):
                second = parser.parse(text)
                _count_parse(second, diag)
                parsed_units[u] = _merge_stages(parsed_units[u], second)

    def _process_prompt_by_prompt(self, docs: List[Doc], error_handler: Callable) -> List[Doc]:
        """Each doc on its own, and a doc the model refuses prompt by prompt: the prompts it refuses as too
        long are skipped and counted under 'skipped_prompts'."""
        done = []
        for doc in docs:
            try:
                done.extend(self._process_batch([doc]))
                continue
            except PromptTooLongError:
                pass
            except Exception as err:
                error_handler(self.name, self, [doc], err)
                continue
            try:
                units, prompts, diag = self.prompts_for(doc)
                kept_units, texts = [], []
                for unit, prompt in zip(units, prompts):
                    try:
                        (answer,) = list(self.model([[prompt]]))
                    except PromptTooLongError:
                        diag["skipped_prompts"] += 1
                        continue
                    kept_units.append(unit)
                    texts.append(response_text(list(answer)[0]))
                logger.warning("codeie skipped %d prompt(s) of a doc that the model refused as too long. They are "
                               "counted under 'skipped_prompts' in the doc's diagnostics; lower 'window_size'.",
                               diag["skipped_prompts"])
                parsed = self._parse(kept_units, texts, diag)
                self._follow_up([kept_units], [parsed], [diag])
                self._annotate(doc, kept_units, parsed, diag)
                done.append(doc)
            except Exception as err:
                error_handler(self.name, self, [doc], err)
        return done

    def _annotate(self, doc: Doc, units: List[Tuple[Span, int]], parsed_units: List[ParseResult],
                  diag: Counter) -> None:
        aligned: List[AlignmentResult] = []
        for (window, _), parsed in zip(units, parsed_units):
            diag["instances"] += len(parsed.instances)
            result = align_instances(window.text, parsed.instances, offset=window.start_char)
            diag["mentions"] += result.mentions
            diag["hallucinated"] += result.hallucinated
            diag["duplicates"] += result.duplicates
            aligned.append(result)
        self._write(doc, aligned, diag)
        if not self.cfg["overwrite"]:  # another codeie component may have run: add to its counts
            diag.update(doc.user_data.get(DIAGNOSTICS_KEY, {}))
        doc.user_data[DIAGNOSTICS_KEY] = {key: int(diag.get(key, 0)) for key in DIAGNOSTIC_FIELDS}

    def _span(self, doc: Doc, start: int, end: int, label: Optional[str], diag: Counter) -> Optional[Span]:
        span = token_span(doc, start, end, label or "", self.cfg["alignment_mode"])
        if span is None:
            diag["misaligned"] += 1
        return span

    def _write(self, doc: Doc, aligned: List[AlignmentResult], diag: Counter) -> None:
        """Results of all windows and groups, deduplicated; added to what is already under the component's
        keys (another codeie component's results, say) unless `overwrite`, as SpanRuler does."""
        spans: Dict[Tuple[int, int, str], Span] = {}
        relations: Dict[Tuple, Dict[str, Any]] = {}
        events: Dict[Tuple, Dict[str, Any]] = {}
        if not self.cfg["overwrite"]:
            key = self.cfg["spans_key"]
            for span in doc.spans[key] if key in doc.spans else ():
                spans.setdefault((span.start, span.end, span.label_), span)
            for record in relation_records(doc, self.cfg["relations_extension"]):
                relations.setdefault(_freeze(record), record)
            for record in event_records(doc, self.cfg["events_extension"]):
                events.setdefault(_freeze(record), record)
        for result in aligned:
            for ent in result.entities:
                span = self._span(doc, ent.start, ent.end, ent.label, diag)
                if span is not None:
                    spans.setdefault((span.start, span.end, ent.label), span)
            for rel in result.relations:
                head = self._span(doc, rel.head.start, rel.head.end, rel.head.label, diag)
                tail = self._span(doc, rel.tail.start, rel.tail.end, rel.tail.label, diag)
                if head is not None and tail is not None:
                    record = relation_record(head, tail, rel.label)
                    relations.setdefault(_freeze(record), record)
            for event in result.events:
                trigger = None
                if event.trigger is not None:
                    trigger = self._span(doc, event.trigger[0], event.trigger[1], event.label, diag)
                    if trigger is None:
                        continue
                args = []
                for arg in event.arguments:
                    span = self._span(doc, arg.start, arg.end, arg.label, diag)
                    if span is not None:
                        args.append((arg.role, span))
                if trigger is None and not args:  # trigger-less (YAYI): nothing of it is left to place
                    continue
                record = event_record(trigger, event.label, args)
                events.setdefault(_freeze(record), record)
        predicted = sorted(spans.values(), key=lambda s: (s.start, -s.end))
        doc.spans[self.cfg["spans_key"]] = predicted
        self._set_ents(doc, predicted)
        set_relation_records(doc, list(relations.values()), self.cfg["relations_extension"])
        set_event_records(doc, list(events.values()), self.cfg["events_extension"])

    def _set_ents(self, doc: Doc, predicted: Sequence[Span]) -> None:
        new = filter_spans(predicted)
        if self.cfg["overwrite_ents"] or not doc.ents:
            doc.ents = new
            return
        taken: Set[int] = set()
        for ent in doc.ents:
            taken.update(range(ent.start, ent.end))
        kept = [s for s in new if taken.isdisjoint(range(s.start, s.end))]
        doc.ents = sorted(list(doc.ents) + kept, key=lambda s: s.start)

    # ---- training-time API ------------------------------------------------------------------
    def initialize(
        self,
        get_examples: Optional[Callable[[], Iterable[Example]]] = None,
        *,
        nlp: Optional[Language] = None,
        schema: Optional[Dict[str, Any]] = None,
    ) -> None:
        """Take the schema as data when the config has none: [initialize.components.NAME.schema] in the form
        schema.json is saved in (inline, or read with `@readers = "srsly.read_json.v1"`). Nothing is learned."""
        if schema is not None:
            if self._schema_in_config:
                raise CodeIEError(
                    f"The codeie component {self.name!r} has a schema in its config and another given to initialize. "
                    f"Give it in one place: remove [components.{self.name}.schema] or "
                    f"[initialize.components.{self.name}.schema]."
                )
            try:
                self._set_schema(schema_from_mapping(schema))
            except CodeIEError as err:
                raise type(err)(
                    f"{err} The schema given to initialize is data in the form schema.json is saved in, e.g. "
                    '{"entities": {"PERSON": "a human being"}}; a schema function such as schema_from_file.v1 '
                    f"belongs in [components.{self.name}.schema] instead."
                ) from None
        self._require_schema()
        if get_examples is not None:
            for example in get_examples():
                if not isinstance(example, Example):
                    raise CodeIEError("initialize expects spaCy Example objects from get_examples.")
                break

    def score(self, examples: Iterable[Example], **kwargs) -> Dict[str, Any]:
        if self.scorer is None:
            return {}
        return self.scorer(
            examples,
            spans_key=self.cfg["spans_key"],
            relations_extension=self.cfg["relations_extension"],
            events_extension=self.cfg["events_extension"],
            **kwargs,
        )

    # ---- serialization ----------------------------------------------------------------------
    # Settings live in the config, which spaCy saves and which config overrides at load change; only data is
    # saved here: the schema (used when the config has none) and the model's LoRA adapter, so that the answers
    # do not change on the way and the adapter folder the config names need not exist where it is loaded.
    def _load_schema(self, data: Optional[Dict[str, Any]]) -> None:
        if data is not None and not self._schema_in_config:
            self._set_schema(schema_from_mapping(data))

    def _has_adapter(self) -> bool:
        return isinstance(self.model, CarriesAdapter) and self.model.has_adapter

    def _load_adapter(self, path: Path) -> None:
        if not isinstance(self.model, CarriesAdapter):
            raise CodeIEError(
                f"The saved pipeline holds a LoRA adapter, but the codeie model {type(self.model).__name__} cannot "
                "load one. Use spacy_codeie.HuggingFace.v1 or DefaultModel, or exclude it: exclude=['codeie']."
            )
        self.model.load_adapter(path)

    def to_bytes(self, *, exclude=tuple()) -> bytes:
        data: Dict[str, Any] = {"schema": self.schema.to_dict() if self.schema is not None else None}
        if self._has_adapter():
            with tempfile.TemporaryDirectory() as tmp:
                cast(CarriesAdapter, self.model).save_adapter(tmp)
                data["adapter"] = {str(f.relative_to(tmp)): f.read_bytes() for f in Path(tmp).rglob("*") if f.is_file()}
        return srsly.msgpack_dumps(data)

    def from_bytes(self, bytes_data: bytes, *, exclude=tuple()) -> "CodeIE":
        data = srsly.msgpack_loads(bytes_data)
        self._load_schema(data.get("schema"))
        if data.get("adapter"):
            with tempfile.TemporaryDirectory() as tmp:
                for name, content in data["adapter"].items():
                    target = Path(tmp) / name
                    if Path(tmp).resolve() not in target.resolve().parents:
                        raise CodeIEError(f"The serialized adapter holds a file outside its folder: {name!r}.")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(content)
                self._load_adapter(Path(tmp))
        return self

    def to_disk(self, path: Union[str, Path], *, exclude=tuple()) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.schema is not None:
            srsly.write_json(path / "schema.json", self.schema.to_dict())
        if self._has_adapter():
            cast(CarriesAdapter, self.model).save_adapter(path / ADAPTER_DIR)

    def from_disk(self, path: Union[str, Path], *, exclude=tuple()) -> "CodeIE":
        path = Path(path)
        if (path / "schema.json").is_file():
            self._load_schema(srsly.read_json(path / "schema.json"))
        if (path / ADAPTER_DIR / "adapter_config.json").is_file():
            self._load_adapter(path / ADAPTER_DIR)
        return self


def _count_parse(parsed: ParseResult, diag: Counter) -> None:
    diag["empty_completions"] += parsed.empty
    diag["truncated"] += parsed.truncated and not parsed.empty
    for key in ("unparseable", "unknown_class", "unknown_role", "bad_arguments"):
        diag[key] += getattr(parsed, key)


def _merge_stages(first: ParseResult, second: ParseResult) -> ParseResult:
    """The first answer's instances with the second stage's events in place of the events they complete (same
    type and trigger); a detected event the second stage does not answer for stays as detected. A trigger-less
    event completes none (it cannot say which one it completes): it is added beside them."""
    completed = {(i.label, i.trigger) for i in second.instances if isinstance(i, EventInstance) and i.trigger}
    kept = [i for i in first.instances if not (isinstance(i, EventInstance) and (i.label, i.trigger) in completed)]
    return ParseResult(instances=kept + list(second.instances))


def _freeze(value: Any):
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value
