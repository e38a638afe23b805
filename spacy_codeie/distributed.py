"""Batch extraction over a corpus on a Ray cluster (Ray Data), one copy of the pipeline per actor.

`annotate_corpus` reads JSONL or Parquet with Ray Data, sends batches of texts to a fixed pool of actors that
each load the spaCy pipeline once, and writes one record per input record, in input order, in the format of
`python -m spacy_codeie extract` (see `extraction.extract_records`). Ray is imported only when this runs:
`pip install "spacy-codeie[ray]"`.
"""
from __future__ import annotations

import inspect
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

from .errors import CodeIEError

INSTALL_HINT = 'pip install "spacy-codeie[ray]"'
JSON_SUFFIXES = (".jsonl", ".json")
PARQUET_SUFFIXES = (".parquet",)
OUTPUT_FORMATS = ("jsonl", "parquet")
# Output columns, in the order `extract` writes the keys of a record ("id" first, when the input has ids).
RECORD_KEYS = ("lang", "text", "entities", "relations", "events", "diagnostics")


class RayMissingError(CodeIEError, ImportError):
    """Ray Data is not installed."""


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise RayMissingError(f"Distributed extraction needs Ray Data; install it with: {INSTALL_HINT}") from err
    return ray


# ---- the records as Arrow: a fixed schema, so every block (and the Parquet output) has the same columns ----------
def output_schema(id_type: Any = None):
    """The Arrow schema of the output; `id_type` is the input's id type (no id column when None)."""
    import pyarrow as pa

    i64, s = pa.int64(), pa.string()
    entity = pa.struct([("start", i64), ("end", i64), ("label", s), ("text", s)])
    relation = pa.struct([("head", i64), ("tail", i64), ("label", s)])
    trigger = pa.struct([("start", i64), ("end", i64), ("text", s)])
    argument = pa.struct([("start", i64), ("end", i64), ("text", s), ("role", s)])
    event = pa.struct([("trigger", trigger), ("label", s), ("arguments", pa.list_(argument))])
    fields = [("id", s if pa.types.is_null(id_type) else id_type)] if id_type is not None else []
    fields += [("lang", s), ("text", s), ("entities", pa.list_(entity)), ("relations", pa.list_(relation)),
               ("events", pa.list_(event)), ("diagnostics", pa.map_(s, i64))]
    return pa.schema(fields)


def record_from_row(row: Dict[str, Any]) -> Dict[str, Any]:
    """An output row (as `pyarrow.Table.to_pylist` gives it) -> the record `extract` writes."""
    record: Dict[str, Any] = {}
    if row.get("id") is not None:
        record["id"] = row["id"]
    for key in RECORD_KEYS:
        record[key] = row[key]
    record["diagnostics"] = dict(row["diagnostics"] or ())
    return record


# ---- what runs on the cluster --------------------------------------------------------------------------------
def load_pipeline(pipeline: str):
    """A saved pipeline folder, an installed pipeline package, or a .cfg file; it must have a codeie component."""
    import spacy

    import spacy_codeie  # noqa: F401  (registers the factory and models in this process)

    from .extraction import build_nlp, codeie_component_name

    nlp = build_nlp(pipeline=pipeline) if pipeline.endswith(".cfg") else spacy.load(pipeline)
    codeie_component_name(nlp)
    return nlp


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _describe(row: Dict[str, Any]) -> str:
    return _shorten(json.dumps(row, ensure_ascii=False, default=str))


def _block_checker(text_field: str):
    """Validation pass, one row per block: its record count and its first record without a text string.

    A closure, so Ray ships it by value: the read tasks need not import spacy_codeie (and torch) to run it.
    """

    def check(batch):
        import json

        import pyarrow as pa

        n = batch.num_rows
        texts = batch.column(text_field).to_pylist() if text_field in batch.column_names else [None] * n
        bad = next((i for i, text in enumerate(texts) if not isinstance(text, str)), -1)
        record = json.dumps(batch.slice(bad, 1).to_pylist()[0], ensure_ascii=False, default=str) if bad >= 0 else ""
        return pa.table({"rows": pa.array([n], pa.int64()), "bad": pa.array([bad], pa.int64()),
                         "record": pa.array([record], pa.string())})

    return check


class CodeIEAnnotator:
    """A Ray Data actor: loads the pipeline once, then annotates batches (pyarrow Tables of id and text)."""

    def __init__(self, pipeline: str, text_field: str = "text", id_field: str = "id", batch_size: int = 64):
        self.nlp = load_pipeline(pipeline)
        self.text_field = text_field
        self.id_field = id_field
        self.batch_size = batch_size

    def __call__(self, batch):
        import pyarrow as pa

        from .extraction import extract_records

        texts = batch.column(self.text_field).to_pylist()
        has_id = self.id_field in batch.column_names
        ids = batch.column(self.id_field).to_pylist() if has_id else [None] * len(texts)
        records = []
        for i, (text, id_) in enumerate(zip(texts, ids)):
            if not isinstance(text, str):
                row = batch.slice(i, 1).to_pylist()[0]
                raise CodeIEError(f"A record has no {self.text_field!r} string: {_describe(row)}")
            records.append({"text": text, "id": id_})
        results = list(extract_records(self.nlp, records, batch_size=self.batch_size))
        if len(results) != len(records):
            raise CodeIEError(f"The pipeline returned {len(results)} docs for {len(records)} texts.")
        schema = output_schema(batch.schema.field(self.id_field).type if has_id else None)
        table = pa.Table.from_pylist(results, schema=schema)
        # The fixed schema must carry every key `extract` writes; a record it would change is an error, not a loss.
        if [record_from_row(row) for row in table.to_pylist()] != results:
            raise CodeIEError("The output schema of spacy_codeie.distributed does not fit the records extract writes.")
        return table


# ---- the driver ------------------------------------------------------------------------------------------------
def _is_uri(path: str) -> bool:
    return "://" in path


def _local(path: str) -> str:
    """Absolute local paths, so workers (whose working directory differs) find them; URIs unchanged."""
    return path if _is_uri(path) else str(Path(path).expanduser().resolve())


def _input_format(source: str) -> str:
    name = source.lower().rstrip("/")
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(JSON_SUFFIXES):
        return "json"
    path = Path(source)
    if not _is_uri(source) and path.is_dir():
        suffixes = {p.suffix.lower() for p in path.rglob("*") if p.is_file()}
        if suffixes & set(PARQUET_SUFFIXES):
            return "parquet"
        if suffixes & set(JSON_SUFFIXES):
            return "json"
    if not _is_uri(source) and not path.exists():
        raise CodeIEError(f"The input {source!r} does not exist.")
    raise CodeIEError(f"Cannot tell the format of the input {source!r}: give a .jsonl, .json or .parquet file, "
                      f"or a folder of them.")


def _output_format(destination: str, output_format: Optional[str]) -> tuple:
    """(format, one_file): a .jsonl/.json or .parquet file written by the driver, else a folder of Parquet files."""
    name = destination.lower()
    if output_format is not None and output_format not in OUTPUT_FORMATS:
        raise CodeIEError(f"output_format must be one of {', '.join(OUTPUT_FORMATS)}, not {output_format!r}.")
    if name.endswith(JSON_SUFFIXES):
        return output_format or "jsonl", True
    if name.endswith(PARQUET_SUFFIXES):
        return output_format or "parquet", True
    if output_format == "jsonl":
        return "jsonl", True
    return "parquet", False


_ERROR_LINE = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.+)$", re.M)


def _error_names(cls: type) -> Set[str]:
    """The names of an error class and all its subclasses (Ray hands worker errors back as text)."""
    names: Set[str] = {cls.__name__}
    children: List[type] = cls.__subclasses__()
    for child in children:
        names |= _error_names(child)
    return names


def _cluster_error(err: Exception) -> CodeIEError:
    """A readable error from what Ray raised: our own message if a worker raised a CodeIEError, else the cause."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    found = _ERROR_LINE.findall(text)
    ours = _error_names(CodeIEError)
    for name, message in found:
        if name in ours:
            return CodeIEError(message.strip())
    cause = f"{found[0][0]}: {found[0][1].strip()}" if found else (text.strip().splitlines() or [repr(err)])[-1]
    return CodeIEError(f"Annotation on Ray failed: {cause}")


def _check_resources(ray, num_workers: int, num_cpus: float, num_gpus: float) -> None:
    """Fail fast where the actors could never all start, or would leave no CPU to read the input with."""
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    if num_workers * num_cpus + 1 > cpus:
        raise CodeIEError(
            f"{num_workers} workers x {num_cpus:g} CPUs plus 1 CPU for reading the input need "
            f"{num_workers * num_cpus + 1:g} CPUs; the Ray cluster has {cpus:g}. Lower --workers or "
            f"--cpus-per-worker, or add nodes."
        )
    if num_gpus and num_workers * num_gpus > gpus:
        raise CodeIEError(
            f"{num_workers} workers x {num_gpus:g} GPUs need {num_workers * num_gpus:g} GPUs; the Ray cluster has "
            f"{gpus:g}. Lower --workers or --gpus-per-worker, or add GPU nodes."
        )


def annotate_corpus(
    source: str,
    destination: str,
    pipeline: str,
    *,
    text_field: str = "text",
    id_field: str = "id",
    batch_size: int = 64,
    num_workers: int = 1,
    num_gpus_per_worker: float = 0.0,
    num_cpus_per_worker: float = 1.0,
    output_format: Optional[str] = None,
    ray_address: Optional[str] = None,
    limit: int = 0,
    progress: bool = True,
) -> Dict[str, Any]:
    """Annotate every record of `source` with a pool of `num_workers` Ray actors; write them to `destination`.

    source: a JSONL or Parquet file, or a folder of them (on storage every node can read, or a URI).
    destination: a .jsonl/.json file (written by this process, in input order, exactly as `extract` writes),
        a .parquet file (likewise), or a folder that the workers fill with Parquet files (for large corpora).
    pipeline: a saved pipeline folder or installed pipeline package, present on every node, with a codeie
        component; each actor loads it once (`spacy.load`).
    ray_address: "auto", "ray://HEAD:10001", ... (None: Ray in this process if initialized, else Ray's default:
        RAY_ADDRESS, a cluster started on this machine with `ray start`, or a new local one).
    Returns {"docs", "seconds", "docs_per_s", "workers", "destination", "format"}. Every input record gives one
    output record; a record without a `text_field` string is an error naming it.
    """
    ray = _import_ray()
    if num_workers < 1 or batch_size < 1:
        raise CodeIEError("num_workers and batch_size must be at least 1.")
    in_format = _input_format(source)
    out_format, one_file = _output_format(destination, output_format)
    source, pipeline_ref = _local(source), pipeline
    if Path(pipeline).expanduser().exists():
        pipeline_ref = _local(pipeline)
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=ray_address, log_to_driver=progress,
                     **({} if progress else {"logging_level": logging.WARNING}))
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise CodeIEError(f"Could not start or reach a Ray cluster (address {ray_address!r}): {err}") from err
        started = True
    context = ray.data.DataContext.get_current()
    saved = (context.execution_options.preserve_order, context.enable_progress_bars)
    context.execution_options.preserve_order = True
    context.enable_progress_bars = progress
    data_logger = logging.getLogger("ray.data")
    saved_level = data_logger.level
    if not progress:
        data_logger.setLevel(logging.WARNING)
    try:
        _check_resources(ray, num_workers, num_cpus_per_worker, num_gpus_per_worker)
        t0 = time.perf_counter()
        try:
            docs = _run(ray, source, in_format, destination, out_format, one_file, pipeline_ref, text_field=text_field,
                        id_field=id_field, batch_size=batch_size, num_workers=num_workers,
                        num_gpus=num_gpus_per_worker, num_cpus=num_cpus_per_worker, limit=limit)
        except CodeIEError:
            raise
        except Exception as err:  # what a worker raised, wrapped by Ray
            raise _cluster_error(err) from err
        seconds = time.perf_counter() - t0
    finally:
        context.execution_options.preserve_order, context.enable_progress_bars = saved
        data_logger.setLevel(saved_level)
        if started:
            ray.shutdown()
    return {"docs": docs, "seconds": round(seconds, 3), "docs_per_s": round(docs / seconds, 3) if seconds else 0.0,
            "workers": num_workers, "destination": destination, "format": out_format}


def _run(ray, source: str, in_format: str, destination: str, out_format: str, one_file: bool, pipeline: str, *,
         text_field: str, id_field: str, batch_size: int, num_workers: int, num_gpus: float, num_cpus: float,
         limit: int) -> int:
    data = ray.data.read_parquet(source) if in_format == "parquet" else ray.data.read_json(source)
    if limit:
        data = data.limit(limit)
    names = list(data.schema().names)
    if text_field not in names:
        raise CodeIEError(f"The records of {source!r} have no field {text_field!r} (fields: {', '.join(names)}). "
                          f"Name the text field with text_field / --text-field.")
    # Pass 1: count the records and find any without a text string, in input order, before any model loads.
    expected = 0
    checked = data.map_batches(_block_checker(text_field), batch_format="pyarrow", batch_size=None)
    for part in checked.iter_batches(batch_size=None, batch_format="pyarrow"):
        for rows, bad, record in zip(*(part.column(c).to_pylist() for c in ("rows", "bad", "record"))):
            if bad >= 0:
                raise CodeIEError(f"Record {expected + bad + 1} of {source!r} (counting from 1) has no "
                                  f"{text_field!r} string: {_shorten(record)}")
            expected += rows
    # Pass 2: the actors, fed blocks of at most batch_size records: a file is otherwise one block, and one block
    # goes to one actor. Each actor holds at most two batches (one running, one waiting), so the work spreads.
    columns = [text_field] + ([id_field] if id_field in names and id_field != text_field else [])
    data = data.select_columns(columns)
    if "target_num_rows_per_block" in inspect.signature(data.repartition).parameters:
        data = data.repartition(target_num_rows_per_block=batch_size)  # streaming
    else:  # older Ray: a barrier (the texts are held in the object store), fine for text corpora
        data = data.repartition(max(1, -(-expected // batch_size)))
    remote: Dict[str, Any] = {"num_cpus": num_cpus}
    if num_gpus:
        remote["num_gpus"] = num_gpus
    annotated = data.map_batches(
        CodeIEAnnotator,
        fn_constructor_kwargs={"pipeline": pipeline, "text_field": text_field, "id_field": id_field,
                               "batch_size": batch_size},
        compute=ray.data.ActorPoolStrategy(size=num_workers, max_tasks_in_flight_per_actor=2),
        batch_size=batch_size,
        batch_format="pyarrow",
        **remote,
    )
    if one_file:
        written = _write_file(annotated, destination, out_format)
    else:
        written = _write_folder(ray, annotated, destination)
    if written != expected:
        raise CodeIEError(f"{expected} records went in but {written} came out; {destination!r} is incomplete.")
    return written


def _write_file(annotated, destination: str, out_format: str) -> int:
    """Stream the results to one file in input order; it appears under its name only once complete."""
    import pyarrow.parquet as pq

    path = Path(destination).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    written, writer = 0, None
    try:
        if out_format == "jsonl":
            with partial.open("w", encoding="utf8") as f:
                for batch in annotated.iter_batches(batch_size=None, batch_format="pyarrow"):
                    for row in batch.to_pylist():
                        f.write(json.dumps(record_from_row(row), ensure_ascii=False) + "\n")
                    written += batch.num_rows
        else:
            for batch in annotated.iter_batches(batch_size=None, batch_format="pyarrow"):
                if writer is None:
                    writer = pq.ParquetWriter(str(partial), batch.schema)
                elif batch.schema != writer.schema:
                    batch = batch.cast(writer.schema)
                writer.write_table(batch)
                written += batch.num_rows
            if writer is None:  # no records: an empty file with the output columns
                pq.write_table(output_schema().empty_table(), str(partial))
            else:
                writer.close()
                writer = None
        os.replace(partial, path)
    finally:
        if writer is not None:
            writer.close()
        if partial.exists():
            partial.unlink()
    return written


def _write_folder(ray, annotated, destination: str) -> int:
    """The workers write Parquet files into a new (or empty) folder; the records there are counted."""
    if not _is_uri(destination):
        folder = Path(destination).expanduser()
        if folder.is_file() or (folder.is_dir() and any(folder.iterdir())):
            raise CodeIEError(f"The output folder {destination!r} exists and is not empty; give a new folder.")
        folder.mkdir(parents=True, exist_ok=True)
        destination = str(folder.resolve())
    annotated.write_parquet(destination)
    if not _is_uri(destination) and not any(Path(destination).rglob("*.parquet")):
        return 0  # no records, no files
    return ray.data.read_parquet(destination).count()
