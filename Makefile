# The README's two commands: `make run` and `make test`. Both install whatever is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
# Test processes (pytest-xdist, whole files to each): half the suite waits on browsers, servers
# and subprocesses, so two keep a 2-core machine busy.
TEST_WORKERS ?= 2
BIN := $(VENV)/bin
SHARED ?= $(abspath ../shared)

# Where the outside inputs are (DEVELOPERS.md): override on the command line or environment.
export BINBOT_DATASET ?= $(SHARED)/datasets/e-waste-image-dataset.zip
# The second dataset: recipes are chosen on both; everyday photos an e-waste model must refuse.
GROCERY ?= $(SHARED)/datasets/grocery-store-dataset.zip
export BINBOT_WEIGHTS_DIR ?= $(SHARED)/weights
export KERAS_HOME ?= $(CURDIR)/.cache/keras
export BINBOT_CACHE_DIR ?= $(CURDIR)/.cache/binbot
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: install keras-cache webclient chromium nginx run-front test lint format run bench-train bench-recipes bench-convert bench-load bench-slow bench-browser bench-startup bench-loop bench-openset bench-new-kind starter-model clean

# A run trained with the default settings on the shared dataset: the training benchmark writes
# it, the conversion benchmark and the shipped starter model are made from it.
BENCH_TRAIN ?= runs/bench-datasets
STARTER_RUN ?= $(BENCH_TRAIN)/ewaste/default/run
# The recipe the training benchmark compares with: the commit before this engine.
PREVIOUS_RECIPE ?= 98ef4eb
STARTER_MODEL ?= models/starter

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

# The web app, bundled with esbuild into webclient/dist (served by the Flask server).
# The manifest schema is compiled into the bundle (webclient/src/model-contract.js).
WEBCLIENT_SOURCES := $(wildcard webclient/src/*.js webclient/icons/*) webclient/index.html \
	webclient/styles.css webclient/app.webmanifest webclient/build.mjs webclient/tfjs-lean.mjs \
	conversion/manifest.schema.json
webclient/dist/build.json: node_modules/.installed $(WEBCLIENT_SOURCES)
	npm run --silent build

webclient: webclient/dist/build.json

# Debian's Chromium for the browser tests and benchmark (Playwright drives /usr/bin/chromium).
chromium:
	scripts/ensure-chromium

# Debian's nginx for the production front (`make run-front`) and its tests.
nginx:
	scripts/ensure-nginx

# Keras looks in $KERAS_HOME/models before downloading ImageNet weights; link ours there.
keras-cache: install
	$(BIN)/python -c "from training.keras_cache import seed_keras_cache as s; s('$(BINBOT_WEIGHTS_DIR)', '$(KERAS_HOME)')"

# Server tests run on SQLite and on a real PostgreSQL that scripts/with-postgres installs
# (when missing), starts on 127.0.0.1 and removes afterwards; web client tests in Chromium.
test: keras-cache webclient chromium nginx lint
	$(BIN)/ruff format --check .
	scripts/with-postgres $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

# ruff, and no function in product code over 80 lines (Python and JavaScript).
lint: install
	$(BIN)/ruff check .
	$(BIN)/python scripts/function_length.py --max 80 server training conversion binbot
	node scripts/function_length.mjs --max 80 webclient/src webclient/build.mjs webclient/tfjs-lean.mjs conversion/js

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The server on 127.0.0.1:8000 with the published (at first: starter) model. Ctrl-C stops it.
run: install webclient
	$(BIN)/binbot serve

# Production: nginx with HTTPS (https://<this machine>:8443/) before gunicorn; see the README.
run-front: install webclient nginx
	$(BIN)/binbot serve --front --host 0.0.0.0

# The default recipe on both datasets (cold feature cache), against the previous recipe on the
# grocery photos; writes the starter run.
bench-train: keras-cache
	rm -rf .cache/previous-recipe && mkdir -p .cache/previous-recipe
	git archive $(PREVIOUS_RECIPE) | tar -x -C .cache/previous-recipe
	$(BIN)/python benchmarks/train_datasets.py --dataset ewaste="$(BINBOT_DATASET)" \
		--dataset grocery="$(GROCERY)" --previous grocery --previous-tree .cache/previous-recipe \
		--out $(BENCH_TRAIN)

# Candidate recipes compared on both datasets' validation photos.
bench-recipes: keras-cache
	$(BIN)/python benchmarks/train_recipes.py --dataset ewaste="$(BINBOT_DATASET)" \
		--dataset grocery="$(GROCERY)"

$(STARTER_RUN)/model.keras:
	$(MAKE) bench-train

bench-convert: keras-cache $(STARTER_RUN)/model.keras
	$(BIN)/python benchmarks/convert_ewaste.py --run $(STARTER_RUN) --dataset "$(BINBOT_DATASET)"

bench-load: install nginx
	scripts/with-postgres $(BIN)/python benchmarks/load_server.py --dataset "$(GROCERY)"

# Uploads that trickle in (slow-body Slowloris) against `binbot serve` and `binbot serve --front`.
bench-slow: install webclient nginx
	$(BIN)/python benchmarks/slow_clients.py

# The web app in Chromium: in-browser latency against Keras, cold and warm start.
bench-browser: keras-cache webclient chromium $(STARTER_RUN)/model.keras
	$(BIN)/python benchmarks/browser_inference.py --run $(STARTER_RUN) --dataset "$(BINBOT_DATASET)"

# A change to the web app against the build before it, offline starts in alternating pairs
# (BASELINE=<git revision>, default HEAD).
BASELINE ?= HEAD
bench-startup: install webclient chromium
	$(BIN)/python benchmarks/startup_ab.py --baseline $(BASELINE) --dataset "$(BINBOT_DATASET)"

# The closed loop: a class cut to 10 images, the rest sent as corrections, retrained via the API.
bench-loop: keras-cache webclient
	rm -rf runs/loop
	$(BIN)/python benchmarks/retrain_loop.py --dataset "$(BINBOT_DATASET)" --work runs/loop

# Open-set scores: held-out e-waste kinds (near) and grocery photos (far), in TF.js.
bench-openset: keras-cache
	$(BIN)/python benchmarks/openset.py --dataset "$(BINBOT_DATASET)" --far "$(GROCERY)"

# A kind the model lacks, named by users, made by the admin, learned, on the phone.
bench-new-kind: keras-cache webclient chromium
	$(BIN)/python benchmarks/new_kind_loop.py --dataset "$(BINBOT_DATASET)"

# The model shipped in git: the default-settings run, converted with the default quantization,
# with its evaluation report beside it.
starter-model: keras-cache $(STARTER_RUN)/model.keras
	$(BIN)/binbot convert $(STARTER_RUN) --out $(STARTER_MODEL) --dataset "$(BINBOT_DATASET)" \
		--version starter-4 --overwrite
	mkdir -p $(STARTER_MODEL)/evaluation
	cp $(STARTER_RUN)/evaluation/report.md $(STARTER_RUN)/evaluation/metrics.json \
		$(STARTER_RUN)/evaluation/confusion_matrix.png $(STARTER_RUN)/evaluation/misclassified.png \
		$(STARTER_MODEL)/evaluation/
	cp $(STARTER_RUN)/training_curves.png $(STARTER_MODEL)/

clean:
	rm -rf $(VENV) node_modules .cache runs reports .pytest_cache .ruff_cache
