# Set-up and main jobs. Every target creates/refreshes the virtual environment itself.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install demo test lint bench clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,serve,onnx,dlib]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/openfas demo

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy  # [tool.mypy] in pyproject.toml: src/openfas

test: install lint
	./tools/ensure_chromium.sh
	$(PY) -m pytest -q tests

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache
