# Thin wrapper: every target builds .venv from nothing on first use (pip install of the project with its
# test extras, which compiles the core), then runs inside it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The real data when the shared folder sits beside the checkout; the commands fall back to generated data.
DATA   ?= $(firstword $(FASTNN_DATA) $(wildcard ../shared/data))
OUT    ?= fastnn-output

# make bench: SAVE=NAME saves the run as NNNN_NAME (default: pytest-benchmark's autosave name), BENCH_ARGS="-k dropin"
# selects; make bench-speed [SPEED_ARGS="--rows mlp predict --processes 4"] measures issue 24's speed table and saves
# it under bench/.speed; make bench-compare [BASE=0001] [NEW=0003] [SPEED="OLD.json NEW.json"]
# [COMPARE_ARGS="--stat min"] compares two saved runs' speedups and two saved speed tables' ratios.
SAVE         ?=
BENCH_ARGS   ?=
BASE         ?=
NEW          ?=
SPEED        ?=
COMPARE_ARGS ?=
SPEED_ARGS   ?=
PROCESSES_ARGS ?=
STARTUP_ARGS ?=
BENCH_EPOCH_ARGS ?=

.PHONY: demo test bench bench-compare bench-speed bench-epoch bench-processes bench-startup clean

# Rebuilt when any source of the package changes, in any subpackage.
$(BIN)/fastnn: pyproject.toml setup.py $(shell find fastnn \( -name '*.py' -o -name '*.pyx' -o -name '*.pxi' \) -print)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet ".[test]"
	touch $@

demo: $(BIN)/fastnn
	$(BIN)/fastnn demo $(if $(DATA),--data $(DATA)) --out $(OUT)

# bench/ is collected first (pytest --collect-only), so that a stale import there fails `make test`, which CI runs.
test: $(BIN)/fastnn
	$(BIN)/ruff check .
	cd bench && $(abspath $(BIN))/python -m pytest --collect-only -qq -p no:cacheprovider
	$(BIN)/pytest -q

# The pytest-benchmark suite; every run is saved under bench/.benchmarks (git-ignored) for bench-compare.
bench: $(BIN)/fastnn
	cd bench && $(abspath $(BIN))/python -m pytest --benchmark-only -q \
		$(if $(SAVE),--benchmark-save=$(SAVE),--benchmark-autosave) $(BENCH_ARGS)

# Speedup ratios (baseline / fastnn) of the two latest saved runs, or of BASE against the latest (or NEW), then
# those of the two latest speed tables (or SPEED="OLD.json NEW.json") with the issue's goals met or not; exits 1
# when a ratio dropped by more than 15% (each comparison is skipped when fewer than two runs are saved, 2 when
# both are).  Standard library only, so no venv needed.
bench-compare:
	$(PYTHON) bench/compare.py --both $(if $(BASE),--base $(BASE)) $(if $(NEW),--new $(NEW)) \
		$(if $(SPEED),--speed $(SPEED)) $(COMPARE_ARGS)

# Every row of issue 24's speed table in one command: fastnn and its baselines (PyTorch, NumPy, onnxruntime; a
# missing one skipped) each in fresh processes, interleaved, with the same-run GEMM peak; saved under bench/.speed
# (SPEED_ARGS="--rows mlp cnn dropin predict --processes 6 --rounds 5 --json out.json --against main=PYTHON").
bench-speed: $(BIN)/fastnn
	$(abspath $(BIN))/python bench/speed_table.py $(SPEED_ARGS)

# The fused epoch against the NumPy loop (one BLAS thread) and PyTorch, in one process; the threads and the load
# on stderr (BENCH_EPOCH_ARGS="--batch-size 1024 --dtype float64 --baseline-threads 2 --out DIR").
bench-epoch: $(BIN)/fastnn
	$(abspath $(BIN))/python bench/epoch_benchmark.py $(BENCH_EPOCH_ARGS)

# One epoch per contender, each in its own process, interleaved (PROCESSES_ARGS="--processes 4 --json out.json").
bench-processes: $(BIN)/fastnn
	$(abspath $(BIN))/python bench/epoch_processes.py $(PROCESSES_ARGS)

# Start-up times in fresh processes: fastnn toy, import fastnn.functional, a first ocr.read_text (STARTUP_ARGS="--repeat 9").
bench-startup: $(BIN)/fastnn
	$(abspath $(BIN))/python bench/startup.py $(STARTUP_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info $(OUT)
