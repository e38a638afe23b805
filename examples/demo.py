"""Extract entities, relations and events from a few texts with the embedded default model (offline, CPU).

Run with `make demo`. The default is Gemma-3-270M with the code-IE LoRA adapter shipped in the package (see
spacy_codeie/models/default_adapter_gemma/MODEL_CARD.md; the Gemma Terms of Use apply): no demonstration needed;
expect the answers of a 270M model.
"""
import spacy

SCHEMA = {
    "@misc": "spacy_codeie.schema_from_dict.v1",
    "entities": {"PERSON": "a human being", "ORG": "a company, agency or institution", "LOC": "a place"},
    "relations": {"WORKS_FOR": {"head": "PERSON", "tail": "ORG", "description": "the person is employed by the org"}},
    "events": {"ACQUISITION": {"description": "one organisation buys another",
                               "roles": {"buyer": ["ORG"], "target": ["ORG"]}}},
}
TEXTS = [
    "Tim Cook is the chief executive of Apple in Cupertino.",
    "Microsoft bought GitHub in 2018.",
    "Angela Merkel visited Siemens in Munich.",
]


def main() -> None:
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={
        "schema": SCHEMA,
        "model": {"@llm_models": "spacy_codeie.DefaultModel.v6", "progress": True},
    })
    for doc in nlp.pipe(TEXTS):
        print(f"\n{doc.text}")
        print("  entities: ", [(e.text, e.label_) for e in doc.ents])
        print("  relations:", [(r.head.text, r.label, r.tail.text) for r in doc._.relations])
        print("  events:   ", [(e.label, e.trigger.text if e.trigger is not None else None,  # None: no trigger
                                {k: [s.text for s in v] for k, v in e.arguments.items()}) for e in doc._.events])
        diag = doc.user_data["codeie_diagnostics"]
        print(f"  diagnostics: {diag['instances']} instances, {diag['hallucinated']} hallucinated, "
              f"{diag['unparseable'] + diag['unknown_class'] + diag['bad_arguments']} rejected")


if __name__ == "__main__":
    main()
