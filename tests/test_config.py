import dataclasses

import pytest

from colorgan.cli import METHODS, build_parser, config_from_args
from colorgan.config import ColorGANConfig


def test_defaults_are_the_papers():
    cfg = ColorGANConfig()
    assert (cfg.lambda_g, cfg.lambda_p, cfg.lambda_l1, cfg.lambda_s) == (0.1, 100.0, 10.0, 1.0)
    assert (cfg.lr_g, cfg.lr_d, cfg.beta1, cfg.beta2, cfg.batch_size) == (1e-4, 2e-4, 0.5, 0.999, 16)
    assert (cfg.image_size, cfg.num_epochs, cfg.noise_std) == (256, 300, 0.1)


@pytest.mark.parametrize("changes, field", [
    ({"image_size": "64"}, "image_size: expected int"),
    ({"batch_size": 0}, "batch_size: 0 is below the minimum 1"),
    ({"norm": "layer"}, "norm: 'layer' is not allowed; choose one of"),
    ({"beta1": 1.5}, "beta1: 1.5 is above the maximum 1.0"),
    ({"image_size": 60}, "image_size: 60 must be divisible by 8"),
    ({"use_noise": False}, "lambda_s: the noise branch is off"),
    ({"lambda_g": 0.0, "lambda_p": 0.0, "lambda_l1": 0.0, "lambda_s": 0.0}, "all four are 0"),
    ({"data": "voc"}, "data_root: data='voc' needs data_root"),
    ({"device": "tpu"}, "device: 'tpu'"),
    ({"flip": 1}, "flip: expected bool"),
])
def test_invalid_values_name_the_field(changes, field):
    with pytest.raises(ValueError, match=field.replace("(", r"\(").replace(")", r"\)")):
        ColorGANConfig(**changes)


def test_from_params_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) for ColorGANConfig: 'lamda_s' \(did you mean 'lambda_s'\?\)"):
        ColorGANConfig.from_params({"lamda_s": 0.0})


def test_ints_are_accepted_for_float_fields():
    assert ColorGANConfig(lambda_p=50).lambda_p == 50


def test_cli_flags_are_the_config_fields():
    for method, (config_cls, _) in METHODS.items():
        parser = build_parser(method)
        train = parser._subparsers._group_actions[0].choices["train"]
        dests = {a.dest for a in train._actions} - {"help", "method", "params"}
        assert dests == {f.name for f in dataclasses.fields(config_cls)}


def test_cli_builds_a_validated_config():
    args = build_parser().parse_args(["train", "--image-size", "64", "--no-use-noise", "--lambda-s", "0",
                                      "--params", '{"num_steps": 5}'])
    cfg = config_from_args(ColorGANConfig, args)
    assert (cfg.image_size, cfg.use_noise, cfg.lambda_s, cfg.num_steps) == (64, False, 0.0, 5)
