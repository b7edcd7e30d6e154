"""Config schema, dotted overrides, error messages, and the CLI's help texts."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from openfas.cli import app
from openfas.config import ConfigError, load_config
from openfas.methods.build import build_method, check_config


def test_overrides_are_typed_and_nested() -> None:
    cfg = load_config(None, ["model.width=16", "optim.lr=3e-4", "data.train_domains=[a,b]", "train.grad_clip=null"])
    assert cfg.model.kwargs() == {"width": 16}
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.data.train_domains == ["a", "b"]
    assert cfg.train.grad_clip is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.epoch=3"], "unknown key 'train.epoch'"),
        (["data.synth.sizee=3"], "unknown key 'data.synth.sizee'"),
        (["model.widht=3"], "no option 'widht'"),
        (["model.name=nonexistent"], "unknown model 'nonexistent'"),
        (["method.name=nonexistent"], "unknown method 'nonexistent'"),
        (["method.cdl_wieght=2"], "unknown key 'cdl_wieght'"),
        (["optim.name=lion"], "optim.name"),
        (["train.epochs"], "not of the form"),
    ],
)
def test_bad_config_names_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_config(load_config(None, overrides), "<defaults>")


def test_schema_alone_knows_no_registry_the_builder_checks_it() -> None:
    cfg = load_config(None, ["model.widht=3", "method.name=nonexistent"])  # keys of free-form sections: schema-valid
    assert cfg.model.kwargs() == {"widht": 3}
    with pytest.raises(ConfigError, match=r"^<config>: model: model 'pixelnet' has no option 'widht'"):
        build_method(cfg)
    res = runner.invoke(app, ["train", "model.widht=3"])
    assert res.exit_code == 2 and "<defaults>: model: " in res.output and "no option 'widht'" in res.output


def test_yaml_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: 3\n  bogus: 1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown key 'train\.bogus'"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")


def test_model_and_data_mismatch_is_reported() -> None:
    from openfas.methods import get_method

    cfg = load_config(None, ["model.map_size=16", "data.map_size=32"])
    method = get_method(cfg.method.name)(cfg, get_method(cfg.method.name).Params())
    with pytest.raises(ConfigError, match=r"model\.map_size=16 does not match"):
        method.build_model()


def test_packaged_demo_config_loads() -> None:
    cfg = load_config("demo.yaml")
    assert cfg.experiment.name == "demo" and cfg.data.cache == "synthetic"


runner = CliRunner()


@pytest.mark.parametrize("cmd", [[], ["train"], ["eval"], ["predict"], ["export"], ["serve"], ["data"],
                                 ["data", "prepare"], ["data", "inspect"], ["data", "synth"], ["demo"], ["models"]])
def test_every_command_has_help(cmd: list[str]) -> None:
    res = runner.invoke(app, [*cmd, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage" in res.output
    # the first line of each command's docstring shows up in its help
    assert len(res.output.strip().splitlines()) > 3


def test_cli_reports_config_errors_cleanly() -> None:
    res = runner.invoke(app, ["train", "train.epoch=3"])
    assert res.exit_code == 2
    assert "unknown key 'train.epoch'" in res.output


def test_models_command_lists_registry() -> None:
    res = runner.invoke(app, ["models"])
    assert res.exit_code == 0 and "pixelnet" in res.output and "pixelwise" in res.output


def test_inspect_missing_cache_is_a_clear_error(tmp_path: Path) -> None:
    res = runner.invoke(app, ["data", "inspect", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "no crop cache here" in res.output


def test_data_synth_records_domain_shift_and_rejects_bad_sizes_cleanly(tmp_path: Path) -> None:
    import json

    out = tmp_path / "synth"
    res = runner.invoke(app, ["data", "synth", str(out), "--subjects", "1", "--size", "32"])
    assert res.exit_code == 2 and "subjects_per_domain must be >= 3" in res.output
    assert not out.exists()
    res = runner.invoke(app, ["data", "synth", str(out), "--subjects", "3", "--size", "32", "--domains", "da,db",
                              "--domain-shift", "2.5"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "info.json").read_text())["synth"]["domain_shift"] == 2.5


def test_base_files_compose_key_by_key(tmp_path: Path) -> None:
    (tmp_path / "bases").mkdir()
    (tmp_path / "bases" / "_root.yaml").write_text(
        "data:\n  batch_size: 3\n  train_domains: [a, b]\n  synth:\n    size: 40\n    seed: 1\noptim:\n  lr: 0.5\n")
    (tmp_path / "bases" / "_mid.yaml").write_text("_base_: _root.yaml\ndata:\n  synth:\n    size: 48\n")
    (tmp_path / "run.yaml").write_text("_base_: bases/_mid.yaml\ndata:\n  train_domains: [c]\n")
    cfg = load_config(tmp_path / "run.yaml", ["optim.lr=0.25"])
    d = cfg.data
    assert (d.batch_size, d.train_domains, d.synth.size, d.synth.seed) == (3, ["c"], 48, 1)  # lists replace
    assert cfg.optim.lr == 0.25  # overrides apply last
    (tmp_path / "two.yaml").write_text("_base_: [bases/_root.yaml, run.yaml]\ndata:\n  batch_size: 9\n")
    d = load_config(tmp_path / "two.yaml").data
    assert (d.batch_size, d.train_domains, d.synth.size) == (9, ["c"], 48)  # later bases win
    (tmp_path / "loop.yaml").write_text("_base_: loop2.yaml\n")
    (tmp_path / "loop2.yaml").write_text("_base_: loop.yaml\n")
    with pytest.raises(ConfigError, match="inherits from itself"):
        load_config(tmp_path / "loop.yaml")
    (tmp_path / "bad.yaml").write_text("_base_: {a: 1}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: _base_ must be a file name"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "gone.yaml").write_text("_base_: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="nowhere.yaml: config file not found"):
        load_config(tmp_path / "gone.yaml")


def test_protocol_configs_hold_only_what_differs() -> None:
    from openfas.config import PACKAGED_CONFIGS, list_packaged_configs

    assert not any(Path(n).name.startswith("_") for n in list_packaged_configs())  # bases are not configs
    child = (PACKAGED_CONFIGS / "cdcn" / "cdcnpp_oulu_p2.yaml").read_text()
    keys = [line for line in child.splitlines() if line and not line.startswith("#")]
    assert keys[0] == "_base_: _oulu_base.yaml" and len(keys) <= 8
    cfg = load_config("cdcn/cdcnpp_oulu_p2.yaml")
    assert (cfg.model.name, cfg.experiment.name, cfg.optim.step_size) == ("cdcn++", "cdcnpp_oulu_p2", 50)
