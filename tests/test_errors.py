"""One error base class: every public exception openfas defines derives from OpenFASError and keeps its builtin
base, and the command line turns any of them into a one-line message."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from typer.testing import CliRunner

import openfas
from openfas.errors import OpenFASError


def _openfas_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(openfas.__path__, "openfas."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra that is not installed
            continue
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == info.name
                    and not name.startswith("_")):
                found[f"{info.name}.{name}"] = obj
    return found


def test_every_public_exception_derives_from_openfas_error() -> None:
    found = _openfas_exceptions()
    assert {"openfas.config.ConfigError", "openfas.io.checkpoint.CheckpointError",
            "openfas.data.video.MediaError", "openfas.engine.trainer.TrainingDiverged"} <= set(found)
    outside = sorted(k for k, cls in found.items() if cls is not OpenFASError and not issubclass(cls, OpenFASError))
    assert outside == []


def test_builtin_bases_are_kept() -> None:
    from openfas.config import ConfigError
    from openfas.data.cache import CacheError
    from openfas.io.checkpoint import CheckpointError

    assert issubclass(ConfigError, ValueError) and issubclass(CheckpointError, RuntimeError)
    assert issubclass(CacheError, RuntimeError)


def test_cli_train_turns_an_openfas_error_into_one_line(tmp_path) -> None:  # noqa: ANN001
    from openfas.cli import app

    res = CliRunner().invoke(app, ["train", f"data.cache={tmp_path / 'nowhere'}",
                                   f"experiment.output_dir={tmp_path}"])
    assert res.exit_code == 2
    assert "no crop cache there" in res.output and "Traceback" not in res.output
