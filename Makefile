# Two commands do all set-up on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
USERS ?= 20000
SEED ?= 0
PORT ?= 3000
export BENTOML_DO_NOT_TRACK := True
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install simulate features train import-models serve run test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

simulate: install
	$(PY) -m training simulate --users $(USERS) --seed $(SEED)

features: install
	$(PY) -m training features

run: simulate features

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) -m training bench

clean:
	rm -rf data bench-results.json
