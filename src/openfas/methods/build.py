"""Turn a validated config into a training method, checking its components against the registries.

:mod:`openfas.config` checks only the schema (keys and types); whether ``model.name`` / ``method.name`` exist
and accept the given options is known only to the model and method registries, so that check happens here,
where the config is built into objects (the trainer, :func:`openfas.methods.restore.build_model_from_checkpoint`,
and the command line right after loading, to fail before any work).
"""

from __future__ import annotations

from pydantic import ValidationError

from openfas.config import Config, ConfigError, format_validation_error
from openfas.methods.base import Method, get_method
from openfas.models._registry import check_model_kwargs
from openfas.optim import check_optim


def check_config(cfg: Config, source: str = "<config>") -> None:
    """Check model/method names and options against the registries and the optimiser/scheduler against torch
    (the error names the bad key)."""
    try:
        check_model_kwargs(cfg.model.name, cfg.model.kwargs())
    except (KeyError, ValueError) as err:
        raise ConfigError(f"{source}: model: {err.args[0]}") from None
    try:
        check_optim(cfg.optim)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    try:
        method_cls = get_method(cfg.method.name)
        method_cls.Params.model_validate(cfg.method.kwargs())
    except KeyError as err:
        raise ConfigError(f"{source}: method: {err.args[0]}") from None
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, f"{source}: method")) from None


def build_method(cfg: Config, source: str = "<config>") -> Method:
    """The method of ``cfg`` with its validated options (after :func:`check_config`)."""
    check_config(cfg, source)
    method_cls = get_method(cfg.method.name)
    return method_cls(cfg, method_cls.Params.model_validate(cfg.method.kwargs()))
