"""The default recipe's assets: a synonym that can never be used, or a key that matches no label, would drop out
of the training data without a word, so they are checked here."""
from pathlib import Path

import pytest

from spacy_codeie.schema.loaders import schema_from_json
from spacy_codeie.training.config import datasets, load_config
from spacy_codeie.training.conversations import usable_class_name
from spacy_codeie.training.records import ConversationSettings

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SYNONYMS = CONFIGS / "assets" / "label_synonyms.json"


def recipe_synonyms():
    """The synonyms as the recipe reads them (the loader checks the file's shape)."""
    return ConversationSettings(synonyms_path=str(SYNONYMS)).synonyms()


def test_every_synonym_is_a_class_name_the_renderer_accepts():
    synonyms = recipe_synonyms()
    assert synonyms, "the default recipe's label synonyms are empty"
    for label, names in synonyms.items():
        assert names and len(names) == len(set(names)), label
        unusable = [name for name in names if not usable_class_name(name)]
        assert not unusable, (label, unusable)


def test_every_synonym_key_is_a_label_of_a_recipe_dataset():
    specs = datasets(load_config(CONFIGS / "default.cfg"))
    schema_files = [CONFIGS / spec.schema for spec in specs]
    missing = [str(path) for path in schema_files if not path.is_file()]
    if missing:
        pytest.skip(f"the shared datasets are not beside the repository: {missing[0]}")
    labels = {t.label.lower() for path in schema_files for t in schema_from_json(path).types}
    unused = [key for key in recipe_synonyms() if key.lower() not in labels]
    # PERSON serves OntoNotes-style label sets in users' own recipes; every other key is there for the default's
    assert unused == ["PERSON"], f"synonyms for labels no recipe dataset has: {unused}"
