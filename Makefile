# Two commands do all the set-up: `make demo` and `make test`.
# Both create .venv and install cinemri with its dependencies on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	# CPU-only machines get the CPU build of torch (never a multi-GB CUDA build);
	# where CUDA is present, a torch the user already has is kept.
	@if ! $(PY) -c "import torch" 2>/dev/null; then \
		if command -v nvidia-smi >/dev/null 2>&1; then $(PY) -m pip install torch; \
		else $(PY) -m pip install torch==2.13.0 || $(PY) -m pip install torch --index-url https://download.pytorch.org/whl/cpu; fi; \
	fi
	$(PY) -m pip install -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cinemri demo --out demo_output

test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) demo_output .pytest_cache
