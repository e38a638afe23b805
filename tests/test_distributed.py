"""annotate_corpus / annotate-ray on a local Ray cluster, against the same saved pipeline run in-process."""
import json

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("pyarrow")  # ray[data] brings it

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import spacy  # noqa: E402
import srsly  # noqa: E402

from conftest import PAPER_SCHEMA  # noqa: E402
from spacy_codeie.cli import main  # noqa: E402
from spacy_codeie.distributed import annotate_corpus, record_from_row  # noqa: E402
from spacy_codeie.errors import CodeIEError  # noqa: E402
from spacy_codeie.extraction import extract_records  # noqa: E402
from spacy_codeie.gold import gold_completions  # noqa: E402
from spacy_codeie.readers import GoldConverter  # noqa: E402

GOLD = [
    {"id": "acq", "text": "Ada Lovelace worked for Babbage Labs, which Acme Corp bought in 1843.",
     "entities": [{"start": 0, "end": 12, "label": "PERSON"}, {"start": 24, "end": 36, "label": "ORG"},
                  {"start": 44, "end": 53, "label": "ORG"}],
     "relations": [{"head": 0, "tail": 1, "label": "WORKS_FOR"}],
     "events": [{"trigger": {"start": 54, "end": 60}, "label": "ACQUISITION",
                 "arguments": [{"start": 44, "end": 53, "role": "buyer"},
                               {"start": 24, "end": 36, "role": "target"}]}]},
    {"id": "emp", "text": "Grace Hopper worked for the Navy.",
     "entities": [{"start": 0, "end": 12, "label": "PERSON"}, {"start": 28, "end": 32, "label": "ORG"}],
     "relations": [{"head": 0, "tail": 1, "label": "WORKS_FOR"}], "events": []},
    {"id": "uni", "text": "Zoë Müller leitet die Bäckerei Süß.",
     "entities": [{"start": 0, "end": 10, "label": "PERSON"}, {"start": 22, "end": 34, "label": "ORG"}],
     "relations": [], "events": []},
    {"id": "none", "text": "It rained all day.", "entities": [], "relations": [], "events": []},
    {"id": "empty", "text": "", "entities": [], "relations": [], "events": []},
]
# A completion naming a string that is not in the text: dropped, and counted in the diagnostics.
HALLUCINATED = '\n\tPerson("Charles Babbage"),\n\tOrg("the Navy"),\n]'
N_RECORDS = 13  # more than one batch per worker


def _inputs():
    """N_RECORDS records cycling through GOLD with their own ids, and an extra field that is not read."""
    return [{"id": f"{i:02d}-{GOLD[i % len(GOLD)]['id']}", "text": GOLD[i % len(GOLD)]["text"], "source": "test"}
            for i in range(N_RECORDS)]


@pytest.fixture(scope="module")
def ray_cluster():
    # address="local": a new cluster for this module, even where `ray start` runs one on this machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def saved_pipeline(tmp_path_factory):
    """A saved pipeline whose model answers from a table file: gold completions, and one hallucinated one."""
    folder = tmp_path_factory.mktemp("distributed")
    nlp = spacy.blank("en")
    component = nlp.add_pipe("codeie", config={"schema": dict(PAPER_SCHEMA),
                                               "model": {"@llm_models": "spacy_codeie.CompletionTable.v1"}})
    table = gold_completions(component, [GoldConverter(nlp).doc(record) for record in GOLD])
    (prompt,) = [p for p in table if "Grace Hopper" in p]
    table[prompt] = HALLUCINATED
    srsly.write_json(folder / "table.json", table)
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={
        "schema": dict(PAPER_SCHEMA),
        "model": {"@llm_models": "spacy_codeie.CompletionTable.v1",
                  "table": {"@readers": "srsly.read_json.v1", "path": str(folder / "table.json")}}})
    nlp.to_disk(folder / "pipeline")
    return folder / "pipeline"


@pytest.fixture(scope="module")
def expected(saved_pipeline):
    """The records the same pipeline gives in this process (what `extract` writes), in input order."""
    records = [{"id": r["id"], "text": r["text"]} for r in _inputs()]
    out = list(extract_records(spacy.load(saved_pipeline), records))
    assert [r["id"] for r in out] == [r["id"] for r in records]
    return out


def test_a_triggerless_event_fits_the_output_schema_and_reads_back():
    from spacy_codeie.distributed import output_schema

    record = {"id": "yayi", "lang": "en", "text": GOLD[0]["text"], "entities": [], "relations": [],
              "events": [{"trigger": None, "label": "ACQUISITION",
                          "arguments": [{"start": 44, "end": 53, "text": "Acme Corp", "role": "buyer"}]}],
              "diagnostics": {"instances": 1}}
    (row,) = pa.Table.from_pylist([record], schema=output_schema(pa.string())).to_pylist()
    assert record_from_row(row) == record


def test_expected_records_have_annotations(expected):
    by_text = {r["text"]: r for r in expected}
    acq = by_text[GOLD[0]["text"]]
    assert [e["text"] for e in acq["entities"]] == ["Ada Lovelace", "Babbage Labs", "Acme Corp"]
    assert acq["relations"] == [{"head": 0, "tail": 1, "label": "WORKS_FOR"}]
    assert acq["events"][0]["trigger"]["text"] == "bought"
    assert by_text["Zoë Müller leitet die Bäckerei Süß."]["entities"][1]["text"] == "Bäckerei Süß"
    hopper = by_text[GOLD[1]["text"]]
    assert hopper["diagnostics"]["hallucinated"] == 1 and [e["text"] for e in hopper["entities"]] == ["the Navy"]


def test_jsonl_with_two_workers_matches_in_process(ray_cluster, saved_pipeline, expected, tmp_path):
    src = tmp_path / "in.jsonl"
    srsly.write_jsonl(src, _inputs())
    out = tmp_path / "out" / "annotated.jsonl"
    summary = annotate_corpus(str(src), str(out), str(saved_pipeline), num_workers=2, num_cpus_per_worker=0.5,
                              batch_size=3, progress=False)
    assert summary["docs"] == N_RECORDS and summary["workers"] == 2 and summary["format"] == "jsonl"
    assert summary["docs_per_s"] > 0
    assert list(srsly.read_jsonl(out)) == expected  # same records, same order
    assert not (tmp_path / "out" / "annotated.jsonl.partial").exists()


def test_parquet_in_parquet_out(ray_cluster, saved_pipeline, expected, tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(_inputs()), src)
    out = tmp_path / "annotated.parquet"
    summary = annotate_corpus(str(src), str(out), str(saved_pipeline), num_workers=2, num_cpus_per_worker=0.5,
                              batch_size=4, progress=False)
    assert summary["docs"] == N_RECORDS and summary["format"] == "parquet"
    table = pq.read_table(out)
    assert table.column_names == ["id", "lang", "text", "entities", "relations", "events", "diagnostics"]
    assert [record_from_row(row) for row in table.to_pylist()] == expected


def test_records_without_text_are_errors(ray_cluster, saved_pipeline, tmp_path):
    src = tmp_path / "in.jsonl"
    srsly.write_jsonl(src, [{"id": "a", "text": "Fine."}, {"id": "b", "body": "No text here."}])
    with pytest.raises(CodeIEError, match=r"Record 2 of .* has no 'text' string: .*\"id\": \"b\""):
        annotate_corpus(str(src), str(tmp_path / "out.jsonl"), str(saved_pipeline), num_cpus_per_worker=0.5,
                        progress=False)
    srsly.write_jsonl(src, [{"id": "a", "body": "x"}])
    with pytest.raises(CodeIEError, match=r"no field 'text' \(fields: .*body"):
        annotate_corpus(str(src), str(tmp_path / "out.jsonl"), str(saved_pipeline), num_cpus_per_worker=0.5,
                        progress=False)
    assert not (tmp_path / "out.jsonl").exists()
    with pytest.raises(CodeIEError, match="workers x 1 CPUs"):  # more actors than the cluster can hold
        annotate_corpus(str(src), str(tmp_path / "out.jsonl"), str(saved_pipeline), num_workers=2, progress=False)


def test_cli_writes_what_extract_writes(ray_cluster, saved_pipeline, expected, tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    srsly.write_jsonl(src, _inputs())
    assert main(["extract", str(src), str(tmp_path / "extract.jsonl"), "--pipeline", str(saved_pipeline),
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["annotate-ray", str(src), str(tmp_path / "ray.jsonl"), "--pipeline", str(saved_pipeline),
                 "--workers", "1", "--cpus-per-worker", "0.5", "--batch-size", "5", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["docs"] == N_RECORDS and summary["workers"] == 1
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "extract.jsonl").read_bytes()
    # a folder: Parquet files written by the workers; --limit
    assert main(["annotate-ray", str(src), str(tmp_path / "folder"), "--pipeline", str(saved_pipeline),
                 "--cpus-per-worker", "0.5", "--limit", "4", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["docs"] == 4
    rows = pq.read_table(tmp_path / "folder").to_pylist()
    assert sorted((record_from_row(r) for r in rows), key=lambda r: r["id"]) == expected[:4]
    assert main(["annotate-ray", str(src), str(tmp_path / "o.jsonl"), "--pipeline", str(tmp_path / "nowhere"),
                 "--cpus-per-worker", "0.5", "--quiet"]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_without_ray_the_error_names_the_extra(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails
    assert main(["annotate-ray", "in.jsonl", "out.jsonl", "--pipeline", "p"]) == 2
    assert 'pip install "spacy-codeie[ray]"' in capsys.readouterr().err
