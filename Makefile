# Two commands do all the set-up: `make demo` and `make test`.
# Both create .venv and install cinemri with its dependencies on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install clean weights

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

# Re-create the bundled phantom weights in src/cinemri/weights (about 2.5 hours on 2 CPU cores;
# seeded, so the same up to floating-point summation order). See docs/analyze.md.
CINEMRI := $(VENV)/bin/cinemri
weights: $(STAMP)
	test -f data/phantom/split.json || $(CINEMRI) phantom --out data/phantom --cases 100 --seed 0 --workers 2
	$(CINEMRI) recon train --config configs/recon/cascade_unet3d_cbam.yaml
	$(CINEMRI) recon train --config configs/recon/cascade_unet3d_cbam_ft.yaml
	$(CINEMRI) seg train --config configs/seg/phantom_small.yaml
	# the segmenter also learns on 12 training cases as the cascade reconstructs them at 5x
	mkdir -p data/phantom_recon5x
	for name in $$($(PY) -c "import json; print(' '.join(json.load(open('data/phantom/split.json'))['train'][:12]))"); do \
		$(CINEMRI) recon predict data/phantom/$$name.h5 --checkpoint runs/recon/cascade_unet3d_cbam_ft/best.pt \
			--acceleration 5 --name $${name}_r5 --out data/phantom_recon5x/$${name}_r5.h5 || exit 1; done
	$(PY) -c "import json, pathlib; d = pathlib.Path('data/phantom_recon5x'); \
		json.dump({'train': sorted(p.stem for p in d.glob('*.h5')), 'val': [], 'test': []}, open(d / 'split.json', 'w'))"
	$(CINEMRI) seg train --config configs/seg/phantom_small_recon.yaml
	$(CINEMRI) export-weights runs/recon/cascade_unet3d_cbam_ft/best.pt src/cinemri/weights/recon_phantom.pt
	$(CINEMRI) export-weights runs/seg/phantom_unet_w8_recon/best.pt src/cinemri/weights/seg_phantom.pt

clean:
	rm -rf $(VENV) demo_output .pytest_cache
