# Two commands do all the set-up: `make demo` and `make test`.
# Both create .venv and install cinemri with its dependencies on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install clean weights weights-seg weights-seg-recon

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

# Re-create the bundled reconstruction weights from the four Sunnybrook cine studies (DICOM) plus
# phantom k-space: `make weights SUNNYBROOK=/path/to/sunnybrook` (about 6 h on 2 CPU cores): the
# cascade starting from 20 iterations of temporal CS-TV with gated stages, from scratch
# (configs/recon/cascade_cs_gated.yaml, 125 minutes), then fine-tuned from 30 iterations of CS-TV with
# spatial TV added (configs/recon/cascade_cs_spatial.yaml, 40 minutes), then on the 50-iteration start
# it is used with (configs/recon/cascade_start50.yaml, 75 minutes) and longer in bf16
# (configs/recon/cascade_start50_long.yaml, 110 minutes). A cut run continues with
# `$(CINEMRI) recon train --config <its config> --data ... --resume runs/recon/<its out_dir>/last.pt`,
# then the lines after it. See docs/benchmarks.md.
CINEMRI := $(VENV)/bin/cinemri
weights: $(STAMP)
	@test -n "$(SUNNYBROOK)" || { echo "usage: make weights SUNNYBROOK=/path/to/sunnybrook"; exit 2; }
	test -f data/phantom/split.json || $(CINEMRI) phantom --out data/phantom --cases 48 --seed 0 --workers 2
	$(CINEMRI) recon train --config configs/recon/cascade_cs_gated.yaml --data $(SUNNYBROOK) data/phantom
	$(CINEMRI) export-weights runs/recon/cascade_cs_gated/best.pt runs/recon/cascade_cs_gated/best_fp16.pt --fp16
	$(CINEMRI) recon train --config configs/recon/cascade_cs_spatial.yaml --data $(SUNNYBROOK) data/phantom
	$(CINEMRI) export-weights runs/recon/cascade_cs_spatial/best.pt src/cinemri/weights/recon_default.pt --fp16 --set model.init_iters=50
	$(CINEMRI) recon train --config configs/recon/cascade_start50.yaml --data $(SUNNYBROOK) data/phantom
	$(CINEMRI) export-weights runs/recon/cascade_start50/best.pt src/cinemri/weights/recon_default.pt --fp16
	$(CINEMRI) recon train --config configs/recon/cascade_start50_long.yaml --data $(SUNNYBROOK) data/phantom
	$(CINEMRI) export-weights runs/recon/cascade_start50_long/best.pt src/cinemri/weights/recon_default.pt --fp16

# Re-create the bundled default segmenter from the ACDC training set (100 patient folders) plus
# phantom images: `make weights-seg ACDC=/path/to/ACDC/training` (about 2 hours on 2 CPU cores;
# resume a cut run with `$(CINEMRI) seg train --config configs/seg/default.yaml --data ...
# --resume runs/seg/default_unet/last.pt`, then the export line). See docs/benchmarks.md.
weights-seg: $(STAMP)
	@test -n "$(ACDC)" || { echo "usage: make weights-seg ACDC=/path/to/ACDC/training"; exit 2; }
	test -f data/phantom_seg/split.json || $(CINEMRI) phantom --out data/phantom_seg --cases 10 --frames 8 --coils 1 --seed 7 --workers 2
	$(CINEMRI) seg train --config configs/seg/default.yaml --data $(ACDC) data/phantom_seg
	$(CINEMRI) export-weights runs/seg/default_unet/best.pt src/cinemri/weights/seg_default.pt --fp16

# The segmenter `analyze` uses on images it reconstructs from undersampled k-space: the default
# above fine-tuned on the same patients plus their 5x single-coil reconstructions (the bundled
# cascade and CS-TV): `make weights-seg-recon ACDC=/path/to/ACDC/training` after `make weights-seg`
# and after `make weights` if you retrain the cascade too (it learns the bundled cascade's images);
# its split keeps the validation patients out; 4 minutes of reconstructions, 60 of training.
weights-seg-recon: $(STAMP)
	@test -n "$(ACDC)" || { echo "usage: make weights-seg-recon ACDC=/path/to/ACDC/training"; exit 2; }
	@test -f runs/seg/default_unet/split.txt || { echo "runs/seg/default_unet/split.txt missing: run make weights-seg first"; exit 2; }
	rm -rf data/acdc_r5  # reconstructions of another cascade must not mix in
	$(CINEMRI) seg recon-set --data $(ACDC) --split runs/seg/default_unet/split.txt --out data/acdc_r5
	$(CINEMRI) seg train --config configs/seg/recon_aware.yaml --data $(ACDC) data/phantom_seg data/acdc_r5
	$(CINEMRI) export-weights runs/seg/recon_aware/best.pt src/cinemri/weights/seg_recon.pt --fp16

clean:
	rm -rf $(VENV) demo_output .pytest_cache
