# Two commands for a fresh machine: `make demo`, then `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint bench docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev,examples]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m symdl demo

test: $(VENV)/.installed-dev
	$(PY) -m ruff check symdl tests examples bench scripts
	$(PY) -m pytest -n auto --dist loadfile  # one worker per core; each test file in one worker

docs: $(VENV)/.installed
	$(PY) scripts/build_api_docs.py
	$(PY) scripts/build_gallery.py

bench: $(VENV)/.installed-dev  # the figures of docs/benchmarks.md (torch: pip install torch)
	$(PY) bench/derive_scaling.py
	$(PY) bench/train_step.py
	$(PY) bench/graph_step.py
	$(PY) bench/recurrent_step.py
	$(PY) bench/recurrent_loop.py
	$(PY) bench/export_step.py
	$(PY) bench/check_verify.py

clean:
	rm -rf $(VENV) build *.egg-info
