"""A small model registry in the spirit of timm: ``@register_model`` on a factory, then ``create_model(name)``.

Importing this module imports its package first (Python imports ``openfas.models`` before any of its
modules), and the package's ``__init__`` imports every model family, so the registry is complete whenever it
is reachable; it never imports the package back.
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable
from typing import Any

import torch.nn as nn
from pydantic import TypeAdapter, ValidationError
from pydantic.errors import PydanticUserError

from openfas.config import ConfigError
from openfas.errors import OpenFASError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a model factory under ``name`` (lower case, e.g. ``"cdcn++"``)."""

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name.lower()
        if key in _MODELS and _MODELS[key] is not fn:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[key] = fn
        return fn

    return decorator


def list_models(pattern: str = "*") -> list[str]:
    """Names of registered models matching a shell-style ``pattern``."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def model_factory(name: str) -> Callable[..., nn.Module]:
    key = name.lower()
    if key not in _MODELS:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(sorted(_MODELS))}")
    return _MODELS[key]


def check_model_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming any key that the model's factory does not accept, or whose value does not fit
    the factory's type annotation (``theta="abc"`` for a ``float``)."""
    fn = model_factory(name)
    try:
        sig = inspect.signature(fn, eval_str=True)
    except (NameError, TypeError):  # an annotation that cannot be resolved: check names only
        sig = inspect.signature(fn)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return
    for key, value in kwargs.items():
        if key not in sig.parameters:
            allowed = ", ".join(p for p in sig.parameters)
            raise ValueError(f"model {name!r} has no option {key!r} (accepted: {allowed})")
        annotation = sig.parameters[key].annotation
        if annotation is inspect.Parameter.empty or isinstance(annotation, str):
            continue
        try:
            TypeAdapter(annotation).validate_python(value)
        except ValidationError as err:
            expected = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
            reason = err.errors()[0]["msg"] if err.errors() else "invalid value"
            raise ValueError(f"model {name!r} option {key}={value!r}: expected {expected} ({reason})") from None
        except PydanticUserError:  # a type pydantic cannot describe (e.g. a module class): not checked
            continue


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model: ``create_model("cdcn++", theta=0.7)``."""
    check_model_kwargs(name, kwargs)
    try:
        return model_factory(name)(**kwargs)
    except OpenFASError:
        raise
    except (RuntimeError, ValueError) as err:  # e.g. a negative width: torch refuses the layer
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ConfigError(f"model {name!r} cannot be built with {shown or 'its defaults'}: "
                          f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
