# Sluice — every target creates what it needs; `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PY313 ?= $(shell pyenv prefix 3.13.0 2>/dev/null || echo $(HOME)/.pyenv/versions/3.13.0)
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
STACK ?= sluice

.PHONY: install run test lint fmt build deploy bench quality capacity faults load clean

NODE_TOOLS := $(VENV)/tools/node/.installed

install: $(STAMP) $(NODE_TOOLS)

# asl-validator (checks statemachine/*.asl.json in the tests), pinned by requirements/node/package-lock.json.
$(NODE_TOOLS): requirements/node/package.json requirements/node/package-lock.json
	mkdir -p $(VENV)/tools/node
	cp requirements/node/package.json requirements/node/package-lock.json $(VENV)/tools/node/
	cd $(VENV)/tools/node && npm ci --silent --no-audit --no-fund
	touch $(NODE_TOOLS)

$(STAMP): pyproject.toml requirements/dev.txt requirements/sam.txt requirements/checkov.txt layers/sluice/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements/dev.txt -r layers/sluice/requirements.txt
	$(PIP) --no-deps -e .
	# Tools that pin their own (older) boto3 live in venvs of their own, linked into .venv/bin.
	$(PYTHON) -m venv $(VENV)/tools/sam
	$(VENV)/tools/sam/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/sam.txt
	ln -sf ../tools/sam/bin/sam $(BIN)/sam
	$(PYTHON) -m venv $(VENV)/tools/checkov
	$(VENV)/tools/checkov/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/checkov.txt
	ln -sf ../tools/checkov/bin/checkov $(BIN)/checkov
	touch $(STAMP)

run: install  ## the demo: local stack up, samples ingested, a report printed
	$(BIN)/sluice local demo

test: install lint  ## the whole suite: lint, types, unit, adapters, functions, template checks, end to end
	$(BIN)/pytest -n auto --dist loadfile

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

build: install  ## sam build for python3.13 on arm64 (needs pyenv's 3.13 on PATH)
	PATH="$(PY313)/bin:$$PATH" $(BIN)/sam build

deploy: build
	$(BIN)/sam deploy --guided --stack-name $(STACK)

clean:
	rm -rf $(VENV) .aws-sam .sluice .pytest_cache .mypy_cache .ruff_cache

BENCH := $(VENV)/tools/bench/.installed

$(BENCH): requirements/bench.txt
	$(PYTHON) -m venv $(VENV)/tools/bench
	$(VENV)/tools/bench/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/bench.txt
	touch $(BENCH)

bench: install $(BENCH)  ## Sluice vs the tokenizer floor and peer chunkers, PDF libraries, memory, cold start
	$(VENV)/tools/bench/bin/python bench/run.py --out docs/benchmarks.md --results bench/results.json

# Retrieval quality (quality/README.md): Sluice's chunks against peer chunkers, each question answered by the
# top 5 chunks by embedding similarity. Its venv (torch CPU, sentence-transformers, the peers; about 1 GB) and
# embedding cache live in .venv/tools/quality. It needs the main venv's `sluice` to exist, not to be current:
# the work tree's own code is measured (PYTHONPATH), so a stale main venv is not rebuilt for it.
QUALITY_VENV := $(VENV)/tools/quality
QUALITY := $(QUALITY_VENV)/.installed
QUALITY_SETTINGS := 250/0 250/62 250/125 512/64
QUALITY_PEERS := langchain-token:250:125 chonkie-recursive:250 semchunk:250
qsize = $(word 1,$(subst /, ,$(1)))
qoverlap = $(word 2,$(subst /, ,$(1)))

$(QUALITY): quality/setup.sh
	PYTHON=$(PYTHON) bash quality/setup.sh $(QUALITY_VENV)
	touch $(QUALITY)

quality: $(if $(wildcard $(STAMP)),,$(STAMP)) $(QUALITY)  ## retrieval quality of Sluice's chunks against peer chunkers (docs/quality.md)
	PYTHONPATH=$(CURDIR)/layers/sluice:$(CURDIR)/cli HF_HUB_OFFLINE=1 TIKTOKEN_CACHE_DIR=$(CURDIR)/$(QUALITY_VENV)/tiktoken_cache \
	$(QUALITY_VENV)/bin/python quality/retrieval_eval.py --data quality/data --cache $(QUALITY_VENV)/embeddings.sqlite \
	  $(foreach s,$(QUALITY_SETTINGS),--cmd "$(BIN)/sluice preview {file} --json --max-tokens $(call qsize,$(s)) --overlap $(call qoverlap,$(s))" --label "sluice $(s)") \
	  $(foreach s,$(QUALITY_SETTINGS),--chunker langchain-recursive-paperseps:$(subst /,:,$(s))) \
	  $(foreach p,$(QUALITY_PEERS),--chunker $(p)) \
	  --no-per-question --question-scores --json quality/results.json
	PYTHONPATH=$(CURDIR)/layers/sluice:$(CURDIR)/cli TIKTOKEN_CACHE_DIR=$(CURDIR)/$(QUALITY_VENV)/tiktoken_cache \
	$(QUALITY_VENV)/bin/python quality/retrieval_eval.py --data quality/data --retriever bm25 \
	  $(foreach s,$(QUALITY_SETTINGS),--cmd "$(BIN)/sluice preview {file} --json --max-tokens $(call qsize,$(s)) --overlap $(call qoverlap,$(s))" --label "sluice $(s)") \
	  $(foreach s,$(QUALITY_SETTINGS),--chunker langchain-recursive-paperseps:$(subst /,:,$(s))) \
	  --no-per-question --question-scores --json quality/results-bm25.json
	$(QUALITY_VENV)/bin/python quality/render.py quality/results.json --bm25 quality/results-bm25.json --stamp --out docs/quality.md

# Capacity and cost (capacity/README.md): the model run on the per-document costs `make bench` measured
# (bench/results.json, its costs stage) and the prices and quotas of capacity/facts.json; seconds, no AWS.
# It renders the last measurement and does not measure: without a costs stage it says to run
# `make bench` (or that stage alone). Like quality, it needs the main venv to exist, not to be current.
capacity: $(if $(wildcard $(STAMP)),,$(STAMP))  ## capacity and cost per stage and per 1,000 documents (docs/capacity.md)
	$(BIN)/python -m capacity.render --bench bench/results.json --out docs/capacity.md --results capacity/results.json

faults: install  ## throttling, 5xx and timeouts at every AWS call of the local stack; everything converges (SLUICE_FAULT_*)
	$(BIN)/pytest tests/soak/test_faults.py -s

load: install  ## 5,000 documents through the local stack: throughput, memory, nothing lost (SLUICE_LOAD_DOCS)
	$(BIN)/pytest tests/soak/test_load.py -s
