"""Every config the repository ships loads with its schema, and every ablation variant in it
validates: a typo in a shipped YAML fails here, not an hour into a run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cinemri.recon import build_denoiser
from cinemri.recon.config import load_recon_config
from cinemri.seg.config import load_seg_config
from cinemri.tasks.recon.ablation import check_variants
from cinemri.tasks.seg.ablation import AblationExperiment, variants
from cinemri.tasks.seg.grad import GradExperiment
from cinemri.train import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# data.train is given on the command line (--data) for the configs that train on real files
DATA = ["data.train=[somewhere]"]


def _top_keys(path: Path) -> set[str]:
    return set(yaml.safe_load(path.read_text()) or {})


@pytest.mark.parametrize("path", sorted((CONFIGS / "recon").glob("*.yaml")), ids=lambda p: p.name)
def test_recon_config_loads_and_its_variants_build(path):
    config = load_recon_config([path], DATA)
    build_denoiser(config.model.denoiser, config.model.denoiser_options)
    if config.ablation.variants:
        check_variants(config.ablation.variants)
        for overrides in config.ablation.variants.values():
            variant = load_recon_config([path], [*DATA, *overrides])
            build_denoiser(variant.model.denoiser, variant.model.denoiser_options)


@pytest.mark.parametrize("path", sorted((CONFIGS / "seg").glob("*.yaml")), ids=lambda p: p.name)
def test_seg_config_loads_with_its_schema(path, tmp_path):
    keys = _top_keys(path)
    if "ablation" in keys:
        assert variants(load_config(AblationExperiment, [path], DATA), tmp_path)
    elif "analysis" in keys:
        load_config(GradExperiment, [path], DATA)
    else:
        load_seg_config([path], DATA)


def test_equal_time_comparisons_share_one_budget_and_their_unet_run(tmp_path):
    """Both seg comparisons run into one folder, where the U-Net + combined loss variant of the
    model comparison is read back by the loss comparison: it must be the same experiment."""
    from cinemri.train.config import config_to_dict

    found = {}
    for name in ("compare_models_real.yaml", "compare_losses_real.yaml"):
        config = load_config(AblationExperiment, [CONFIGS / "seg" / name], DATA)
        assert config.train.time_budget_min and config.train.time_budget_min > 0
        found[name] = variants(config, tmp_path)
    models, losses = found.values()
    assert config_to_dict(models["unet-combined-aug"]) == config_to_dict(losses["unet-combined-aug"])
    assert {v.train.time_budget_min for exp in found.values() for v in exp.values()} == {20}
    assert load_recon_config([CONFIGS / "recon" / "ablation_real.yaml"], DATA).train.time_budget_min > 0
