import dataclasses
import typing

import pytest

from colorgan.cli import METHODS, build_parser, config_from_args
from colorgan.method.config import ColorGANConfig


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


def bad_values(f: dataclasses.Field, kind: type) -> list:
    """Values that break ``f``'s declared type, choices or range."""
    meta, values = f.metadata, [[1, 2]]  # a list is never a valid field value
    if meta.get("choices"):
        values.append("no-such-choice")
    if meta.get("min") is not None:
        values.append(kind(meta["min"]) - 1)
    if meta.get("max") is not None:
        values.append(kind(meta["max"]) + 1)
    if kind is float:
        values += [float("nan"), float("inf")]
    return values


FIELD_CASES = [(f.name, value) for f in dataclasses.fields(ColorGANConfig)
               for value in bad_values(f, typing.get_type_hints(ColorGANConfig)[f.name])]


@pytest.mark.parametrize("name, value", FIELD_CASES, ids=[f"{n}={v!r}" for n, v in FIELD_CASES])
def test_every_field_is_checked_and_the_error_names_it(name, value):
    with pytest.raises(ValueError) as err:
        ColorGANConfig.from_params({name: value})
    message = str(err.value)
    assert message.startswith(f"{name}: "), message
    assert any(word in message for word in ("expected", "choose one of", "minimum", "maximum", "finite")), message


@pytest.mark.parametrize("changes, message", [
    ({"data": "voc", "data_root": "/no/such/VOCdevkit"}, "data_root: '/no/such/VOCdevkit' is not an existing folder"),
    ({"data": "folder", "data_root": "/no/such/photos"}, "data_root: '/no/such/photos' is not an existing folder"),
    ({"vgg_weights": "/no/such/vgg19.pth"}, "vgg_weights: '/no/such/vgg19.pth' is not allowed; use 'imagenet', "
                                            "'random', or the path of an existing state_dict file"),
    ({"vgg_weights": "imagnet"}, "vgg_weights: 'imagnet' is not allowed"),
    ({"run_dir": ""}, "run_dir: '' is not allowed"),
])
def test_paths_are_checked_when_the_config_is_built(changes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        ColorGANConfig(**changes)


def test_existing_paths_are_accepted(tmp_path):
    (tmp_path / "vgg19.pth").write_bytes(b"checked when loaded, not here")
    cfg = ColorGANConfig(data="folder", data_root=str(tmp_path), vgg_weights=str(tmp_path / "vgg19.pth"))
    assert cfg.data_root == str(tmp_path)


def test_parameters_that_are_not_a_dict_are_refused():
    with pytest.raises(ValueError, match="must be a dict of field values, got list"):
        ColorGANConfig.from_params([("lambda_s", 0.0)])


def test_cli_params_that_are_not_json_name_the_flag(tmp_path, capsys):
    from colorgan.cli import main

    assert main(["train", "--params", "{num_steps: 5}", "--run-dir", str(tmp_path / "r")]) == 2
    assert "error: --params: not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
