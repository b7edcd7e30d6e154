"""Models that ship inside the package: sealed ONNX files under ``openfas/deploy/bundled/`` listed in its
``manifest.json`` (name, version, file, SHA-256, licence, training data, threshold, model card, retrain command,
and optionally the face detector it is deployed with).

``resolve_model(None)`` is the default bundled model; ``resolve_model("openfas-light")`` a bundled model by
name; any other value is a path to the user's own checkpoint or ONNX file. A bundled file is used only when its
bytes match the manifest's SHA-256 (and then the ONNX seal is checked as for any model file).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUNDLED_DIR = Path(__file__).with_name("bundled")
MANIFEST = BUNDLED_DIR / "manifest.json"


def _error(message: str) -> Exception:
    # deferred: the ONNX path loads no torch, and openfas.io.checkpoint imports it
    from openfas.io.checkpoint import CheckpointError

    return CheckpointError(message)


@dataclass(frozen=True)
class BundledModel:
    """One entry of the manifest."""

    name: str
    version: str
    file: str
    sha256: str
    licence: str
    trained_on: str
    threshold: float
    card: str
    retrain: str
    detector: str = ""  # detector spec used when none is given; "" = the one its training crops were cut with
    directory: Path = BUNDLED_DIR

    @property
    def path(self) -> Path:
        return self.directory / self.file

    def verified_path(self) -> Path:
        """The model file, after checking its bytes against the manifest's SHA-256."""
        if not self.path.is_file():
            raise _error(f"{self.path}: the bundled model {self.name} is missing from the installation")
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        if digest != self.sha256:
            raise _error(f"{self.path}: the bundled model {self.name} does not match its manifest "
                                  f"(SHA-256 {digest[:12]}…, expected {self.sha256[:12]}…); reinstall openfas")
        return self.path

    def identity(self) -> dict[str, str]:
        """What a result says about the model that scored it."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


def _manifest(directory: Path | None = None) -> dict[str, Any]:
    path = (directory or BUNDLED_DIR) / "manifest.json"
    if not path.is_file():
        return {"default": None, "models": []}
    return json.loads(path.read_text())


_OPTIONAL_FIELDS = ("detector",)


def bundled_models(directory: Path | None = None) -> list[BundledModel]:
    """Every model the installation ships, in manifest order."""
    fields = [k for k in BundledModel.__dataclass_fields__ if k != "directory"]
    return [BundledModel(**{k: m[k] for k in fields if k in m or k not in _OPTIONAL_FIELDS},
                         directory=directory or BUNDLED_DIR) for m in _manifest(directory)["models"]]


def bundled_detector(identity: dict[str, str], directory: Path | None = None) -> str | None:
    """The face detector a bundled model is deployed with when none is given (its manifest's ``detector``), found
    by the SHA-256 of the model file (the same bytes loaded from another path count too); ``None`` for other
    model files and for bundled models without one (they use the detector their training crops were cut with)."""
    digest = identity.get("sha256")
    return next((m.detector or None for m in bundled_models(directory) if digest and m.sha256 == digest), None)


def default_model_name(directory: Path | None = None) -> str | None:
    return _manifest(directory).get("default")


def get_bundled(name: str | None = None, directory: Path | None = None) -> BundledModel:
    """The bundled model ``name`` (None: the default one)."""
    models = {m.name: m for m in bundled_models(directory)}
    wanted = name if name is not None else default_model_name(directory)
    if wanted is None or wanted not in models:
        known = ", ".join(models) or "none"
        what = "no default bundled model" if wanted is None else f"no bundled model named {wanted!r}"
        raise _error(f"{what} (bundled: {known}); give a checkpoint or .onnx file")
    return models[wanted]


def is_bundled_name(spec: str | Path | None, directory: Path | None = None) -> bool:
    return spec is not None and str(spec) in {m.name for m in bundled_models(directory)}


def resolve_model(spec: str | Path | None, directory: Path | None = None) -> tuple[Path, dict[str, str]]:
    """``(model file, identity)``: the default bundled model for None, a bundled model by name, else the user's
    file (identity: its name, ``version`` "user file" and the SHA-256 of its bytes)."""
    if spec is None or is_bundled_name(spec, directory):
        model = get_bundled(None if spec is None else str(spec), directory)
        return model.verified_path(), model.identity()
    path = Path(spec)
    if not path.is_file():
        raise _error(f"{path}: model file not found (bundled models: "
                              f"{', '.join(m.name for m in bundled_models(directory)) or 'none'})")
    return path, {"name": path.name, "version": "user file", "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
