"""Config: defaults, YAML validation, composition, overrides, round trip."""

from dataclasses import dataclass, field

import pytest
import yaml

from cinemri.train import Experiment, TrainConfig, build, config_to_dict, load_config, make_experiment, parse_value


@dataclass
class ModelSection:
    name: str = "unet"
    channels: list[int] = field(default_factory=lambda: [16, 32])
    cbam: bool = True
    dropout: float | None = None


@dataclass
class ReconExperiment:
    train: TrainConfig = field(default_factory=TrainConfig)
    model: ModelSection = field(default_factory=ModelSection)


def write(path, data):
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_defaults_without_files():
    cfg = load_config(ReconExperiment)
    assert cfg.train == TrainConfig() and cfg.model == ModelSection()


def test_unknown_key_names_key_and_file(tmp_path):
    f = write(tmp_path / "a.yaml", {"train": {"lr": 0.1, "lr_max": 2.0}})
    with pytest.raises(ValueError, match=r"a\.yaml.*unknown key 'train\.lr_max'"):
        load_config(ReconExperiment, f)
    g = write(tmp_path / "b.yaml", {"optim": {"lr": 0.1}})
    with pytest.raises(ValueError, match=r"b\.yaml.*unknown key 'optim'"):
        load_config(ReconExperiment, g)


@pytest.mark.parametrize("section,key,value", [
    ("train", "epochs", 2.5), ("train", "epochs", "ten"), ("train", "lr", "fast"), ("train", "epochs", True),
    ("model", "cbam", "yes"), ("model", "channels", [16, "x"]), ("train", "amp", "fp8"),
    ("train", "betas", [0.9]), ("model", "dropout", "none"),
])
def test_wrong_type_is_an_error(tmp_path, section, key, value):
    f = write(tmp_path / "c.yaml", {section: {key: value}})
    with pytest.raises(ValueError, match=rf"c\.yaml.*{section}\.{key} expects"):
        load_config(ReconExperiment, f)


def test_values_are_converted_and_checked(tmp_path):
    f = write(tmp_path / "d.yaml", "train:\n  lr: 1e-3\n  epochs: 3\n  betas: [0.8, 0.99]\n  grad_clip: null\n"
                                   "model:\n  dropout: 1\n")
    cfg = load_config(ReconExperiment, f)
    assert cfg.train.lr == 0.001 and isinstance(cfg.train.lr, float)     # YAML 1.2 float form
    assert cfg.train.betas == (0.8, 0.99) and cfg.train.grad_clip is None
    assert cfg.model.dropout == 1.0 and isinstance(cfg.model.dropout, float)  # int accepted for float
    bad = write(tmp_path / "e.yaml", {"train": {"lr": -1.0}})
    with pytest.raises(ValueError, match=r"e\.yaml.*train\.lr must be >= 0"):
        load_config(ReconExperiment, bad)


def test_overrides_parse_yaml_values():
    cfg = load_config(ReconExperiment, overrides=["train.lr=1e-3", "model.cbam=false", "model.channels=[8, 16, 32]",
                                                  "train.out_dir=runs/x", "train.grad_clip=null", "train.amp=bf16"])
    assert cfg.train.lr == 1e-3 and cfg.model.cbam is False and cfg.model.channels == [8, 16, 32]
    assert cfg.train.out_dir == "runs/x" and cfg.train.grad_clip is None and cfg.train.amp == "bf16"
    assert parse_value("2.5e-4") == 2.5e-4 and parse_value("1") == 1 and parse_value("on") is True
    with pytest.raises(ValueError, match=r"override 'model\.cbam=maybe'.*model\.cbam expects bool"):
        load_config(ReconExperiment, overrides=["model.cbam=maybe"])
    with pytest.raises(ValueError, match=r"override 'train\.lrr=1'.*unknown key 'train\.lrr'"):
        load_config(ReconExperiment, overrides=["train.lrr=1"])
    with pytest.raises(ValueError, match="expected 'section.key=value'"):
        load_config(ReconExperiment, overrides=["train.lr"])


def test_composition_base_key_and_file_list(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "base.yaml", {"train": {"lr": 0.1, "epochs": 7, "seed": 3}, "model": {"channels": [4]}})
    write(tmp_path / "sub" / "unet.yaml", {"base": "../base.yaml", "train": {"lr": 0.2}, "model": {"cbam": False}})
    write(tmp_path / "more.yaml", {"train": {"seed": 9}})
    cfg = load_config(ReconExperiment, [tmp_path / "sub" / "unet.yaml", tmp_path / "more.yaml"],
                      overrides=["train.epochs=11"])
    assert (cfg.train.lr, cfg.train.epochs, cfg.train.seed) == (0.2, 11, 9)
    assert cfg.model.channels == [4] and cfg.model.cbam is False
    # an error in a key that came from the base names the base file
    write(tmp_path / "base.yaml", {"train": {"epochs": "many"}})
    with pytest.raises(ValueError, match=r"base\.yaml.*train\.epochs expects int"):
        load_config(ReconExperiment, tmp_path / "sub" / "unet.yaml")


def test_circular_and_missing_files(tmp_path):
    write(tmp_path / "x.yaml", {"base": "y.yaml"})
    write(tmp_path / "y.yaml", {"base": ["x.yaml"]})
    with pytest.raises(ValueError, match="circular"):
        load_config(ReconExperiment, tmp_path / "x.yaml")
    with pytest.raises(ValueError, match=r"nope\.yaml does not exist"):
        load_config(ReconExperiment, tmp_path / "nope.yaml")
    write(tmp_path / "list.yaml", "- 1\n- 2\n")
    with pytest.raises(ValueError, match="top level must be a mapping"):
        load_config(ReconExperiment, tmp_path / "list.yaml")


def test_round_trip_and_registered_sections(tmp_path):
    schema = make_experiment("SegExperiment", {"model": ModelSection})
    cfg = load_config(schema, overrides=["model.name=mednext", "train.epochs=4"])
    plain = config_to_dict(cfg)
    assert plain["train"]["betas"] == [0.9, 0.999] and plain["model"]["name"] == "mednext"
    assert build(schema, plain) == cfg
    path = tmp_path / "dump.yaml"
    path.write_text(yaml.safe_dump(plain))
    assert load_config(schema, path) == cfg
    assert load_config(Experiment, overrides=["train.seed=5"]).train.seed == 5
    with pytest.raises(ValueError, match="reserved"):
        make_experiment("Bad", {"train": ModelSection})


@pytest.mark.parametrize("typed, value", [("off", "off"), ("Off", "off"), ("no", "off"), ("false", "off"),
                                          ("auto", "auto"), ("bf16", "bf16"), ("fp16", "fp16")])
def test_every_documented_amp_value_is_accepted_as_typed(typed, value):
    from cinemri.train.config import Experiment, load_config

    assert load_config(Experiment, overrides=[f"train.amp={typed}"]).train.amp == value  # YAML reads off as false


def test_a_boolean_for_a_choice_without_an_off_value_is_still_refused():
    from cinemri.train.config import Experiment, load_config

    with pytest.raises(ValueError, match="train.schedule expects"):
        load_config(Experiment, overrides=["train.schedule=off"])
