# Two commands do all set-up on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
USERS ?= 20000
SEED ?= 0
# The disbursement forecast needs two Spring Festivals: a world of its own over 760 days (20k users:
# ~20 s to simulate, ~50 s to train), in its own data folder, tracked in the same MLflow store.
FORECAST_DATA ?= data/forecast
FORECAST_USERS ?= 20000
PORT ?= 3000
export BENTOML_DO_NOT_TRACK := True
export PATH := $(abspath $(VENV))/bin:$(PATH)

CHROMIUM := /usr/bin/chromium
.PHONY: install java data train models key serve run test test-fast fuzz bench bench-scale build clean

install: $(VENV)/.installed $(CHROMIUM) java

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,spark]'
	touch $@

# pyspark (the `spark` extra: `--engine spark` and its parity tests) runs on a JVM, Java 17.
java:
	@java -version 2>&1 | grep -qE 'version "(17|21)' || { echo "Java 17 is missing (pyspark needs it):" \
		"apt-get install -y openjdk-17-jre-headless (Debian), or set JAVA_HOME to a Java 17"; exit 1; }

# Debian's chromium for the API page's screenshot test (Playwright drives it; no browser download).
$(CHROMIUM):
	@echo "installing Debian's chromium package"
	@$(if $(filter 0,$(shell id -u)),,sudo) sh -c 'apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium > /dev/null'

data: install  ## simulate the app, then snapshots, seeds and the lookalike index; and the forecast's 760-day world
	$(PY) -m training simulate --users $(USERS) --seed $(SEED)
	$(PY) -m training features
	$(PY) -m training seeds
	$(PY) -m training lookalike-index
	OPSCORE_DATA_DIR=$(FORECAST_DATA) $(PY) -m training simulate --users $(FORECAST_USERS) --days 760 --seed $(SEED)

train: install  ## train all four models and the disbursement forecast into MLflow (mlruns/) and gate the champions
	$(PY) -m training train all
	OPSCORE_DATA_DIR=$(FORECAST_DATA) $(PY) -m training train forecast

models: install  ## copy the champions and the snapshot into the BentoML store
	$(PY) -m service import-models

key: install  ## a demo API key with both scopes, kept in data/keys.json (hash only)
	@test -s data/demo-key || $(PY) -m service keys add demo --scopes campaign,risk > data/demo-key
	@echo "API key for this machine: $$(cat data/demo-key)"

serve: install
	$(VENV)/bin/bentoml serve service.service:Opscore -p $(PORT)

run: data train models key serve

test: install  ## both tiers: the fast checks, then the real world, MLflow store and server
	$(PY) -m pytest -q

test-fast: install  ## the fast tier only (pure checks, no simulated world or server; under a minute)
	$(PY) -m pytest -q -m "not integration"

fuzz: install  ## schemathesis over /docs.json against a real server, with a campaign key and a risk key: no 5xx
	$(PY) -m pytest -q tests/service/test_fuzz.py

bench: install
	$(PY) -m bench

bench-scale: install  ## the scale figures (10M users simulated + features, Spark against DuckDB at 1M), added to bench-results.json
	$(PY) -m bench.scale

build: install  ## a self-contained Bento (needs `make models` first)
	$(VENV)/bin/bentoml build

clean:
	rm -rf data bench-results.json mlruns/mlflow.db mlruns/artifacts
