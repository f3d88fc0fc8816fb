# `make demo`: install, build the demo model and synthetic data if missing, run the demo
#              study into data/demo.duckdb, then serve the dashboard on http://127.0.0.1:8501
# `make test`: install, then run the test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

DEMO_MODEL := models/demo
DEMO_DATA  := data/demo_synth
DEMO_DB    := data/demo.duckdb
DEMO_N     ?= 60
PORT       ?= 8501

.PHONY: install demo demo-model demo-data demo-run serve test clean-demo

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; set PYTHON=python3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The trained demo model is committed; this builds an untrained one only if it is missing.
$(DEMO_MODEL)/config.json: | $(STAMP)
	$(PY) -m compute demo-model --out $(DEMO_MODEL)

$(DEMO_DATA)/manifest.jsonl: | $(STAMP)
	$(PY) -m compute synth --n $(DEMO_N) --seed 0 --out $(DEMO_DATA)

# Retrain the demo model from scratch (long; `make demo` never does this).
demo-model: | $(STAMP)
	$(PY) -m compute demo-model --out $(DEMO_MODEL) --train

demo-data: $(DEMO_DATA)/manifest.jsonl

# Runs are named after the weights, so a retrained model gets runs of its own. The phrasing
# run (every question plus ten rewrites, with attention maps) also stores the attention-change
# comparisons; the methods run adds the maps beyond attention (relevancy, relative, knockout,
# logit lens) and sink detection; the baseline run, last so the dashboard opens on it, adds
# Grad-CAM and deletion tests.
demo-run: $(DEMO_MODEL)/config.json demo-data
	$(PY) -m compute run --model $(DEMO_MODEL) --manifest $(DEMO_DATA)/manifest.jsonl --study phrasing \
		--db $(DEMO_DB) --run "demo-phrasing-$$(sha256sum $(DEMO_MODEL)/model.safetensors | cut -c1-8)"
	$(PY) -m compute run --model $(DEMO_MODEL) --manifest $(DEMO_DATA)/manifest.jsonl --db $(DEMO_DB) \
		--run "demo-methods-$$(sha256sum $(DEMO_MODEL)/model.safetensors | cut -c1-8)" \
		--methods relevancy,relative,knockout,logit_lens --sink-factor 8
	$(PY) -m compute run --model $(DEMO_MODEL) --manifest $(DEMO_DATA)/manifest.jsonl \
		--db $(DEMO_DB) --run "demo-$$(sha256sum $(DEMO_MODEL)/model.safetensors | cut -c1-8)" --gradcam --deletion

serve: | $(STAMP)
	$(PY) -m streamlit run dashboard/app.py --server.address 127.0.0.1 --server.port $(PORT) \
		--server.headless true --browser.gatherUsageStats false -- --db $(DEMO_DB)

demo: demo-run serve

test: $(STAMP)
	$(PY) -m pytest -q

clean-demo:  # keeps the committed model
	rm -rf $(DEMO_DATA) $(DEMO_DB)
