# Thin wrapper: every target builds .venv from nothing on first use (pip install of the project with its
# test extras, which compiles the Cython extensions), then runs inside it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The real data when the shared folder sits beside the checkout; the commands fall back to generated data.
DATA   ?= $(firstword $(FASTNN_DATA) $(wildcard ../shared/data))
OUT    ?= fastnn-output

.PHONY: demo test bench clean

$(BIN)/fastnn: pyproject.toml setup.py $(wildcard fastnn/*.py fastnn/_kernels/*.py fastnn/_kernels/*.pyx fastnn/_kernels/*.pxi)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet ".[test]"
	touch $@

demo: $(BIN)/fastnn
	$(BIN)/fastnn demo $(if $(DATA),--data $(DATA)) --out $(OUT)

test: $(BIN)/fastnn
	$(BIN)/pytest -q

bench: $(BIN)/fastnn
	cd bench && ../$(BIN)/python -m pytest --benchmark-only -o pythonpath= -q  # the installed fastnn, not the source tree

clean:
	rm -rf $(VENV) build *.egg-info $(OUT)
