# The README's two commands: `make run` and `make test`. Both install whatever is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= $(abspath ../shared)

# Where the outside inputs are (DEVELOPERS.md): override on the command line or environment.
export BINBOT_DATASET ?= $(SHARED)/datasets/e-waste-image-dataset.zip
export BINBOT_WEIGHTS_DIR ?= $(SHARED)/weights
export KERAS_HOME ?= $(CURDIR)/.cache/keras
export BINBOT_CACHE_DIR ?= $(CURDIR)/.cache/binbot
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: install keras-cache test lint format run bench-train clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/pip check
	touch $@

# TF.js and its wasm backend, from the npm registry (conversion checks, web client).
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(BIN)/.installed node_modules/.installed

# Keras looks in $KERAS_HOME/models before downloading ImageNet weights; link ours there.
keras-cache: install
	$(BIN)/python -c "from training.keras_cache import seed_keras_cache as s; s('$(BINBOT_WEIGHTS_DIR)', '$(KERAS_HOME)')"

test: keras-cache
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Until the server exists (issue 4): train and evaluate on BINBOT_DATASET.
run: keras-cache
	$(BIN)/binbot train "$(BINBOT_DATASET)" --out runs/latest --overwrite

bench-train: keras-cache
	$(BIN)/python benchmarks/train_ewaste.py --dataset "$(BINBOT_DATASET)" \
		--weights-dir "$(BINBOT_WEIGHTS_DIR)" --keras-home "$(KERAS_HOME)" --out runs/bench-train

clean:
	rm -rf $(VENV) node_modules .cache runs reports .pytest_cache .ruff_cache
