"""A reader of dlib's binary serialisation (``.dat`` model files) that executes nothing.

dlib writes its objects with the functions of ``dlib/serialize.h`` and the ``serialize`` friends of its DNN layers
(``dlib/dnn/core.h``, ``layers.h``, ``input.h``, ``loss.h``, ``tensor.h``). The pieces, as read here:

* **integer**: one control byte, then ``n`` = ``control & 0x0F`` (1…8) little-endian magnitude bytes; bit 0x80 of
  the control byte marks a negative signed value (unsigned values must not have it). 0 is ``01 00``.
* **float / double**: an integer mantissa and an integer exponent, value = mantissa · 2^exponent; the exponents
  32000 / 32001 / 32002 stand for +inf / −inf / NaN. (dlib's pre-2013 ASCII float format is refused.)
* **string**: an unsigned length, then that many bytes. **bool**: one byte, ``'0'`` or ``'1'``.
* **tensor**: version (1 or 2), then num_samples, k, nr, nc; version 2 stores the values as raw little-endian
  float32, version 1 as one float (above) each. **alias_tensor**: version 1, then its four dimensions.
* a **network** ``add_loss_layer<LOSS, add_layer<L1, add_layer<L2, … add_layer<Ln, INPUT>>>>`` nests: the
  loss layer writes (version, loss details, sub-network); each ``add_layer`` writes its version, then its
  **whole sub-network**, then its own layer details and bookkeeping (3 bools, cached tensors); tag and skip
  layers write only (version 1, sub-network). The headers of every layer therefore come first, outermost first,
  and the details follow innermost (the input layer) first. Tags and skips carry no id in the file, so the
  reader is told the network's layout (:func:`read_dlib_network`'s ``wrappers``) and checks the file against it.

Every read is bounds-checked against the bytes left: a truncated, padded or malformed file raises
:class:`DlibFormatError` naming the file and the byte offset, never reads past the end, never loops without
consuming bytes and never allocates more than the file could hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from openfas.errors import OpenFASError

MAX_FILE_BYTES = 1 << 30  # 1 GiB: far above any dlib DNN model; refuse anything larger before reading it
MAX_STRING_BYTES = 4096
MAX_TENSOR_ELEMENTS = 1 << 28
_FLOAT_SPECIAL = {32000: math.inf, 32001: -math.inf, 32002: math.nan}


class DlibFormatError(OpenFASError, ValueError):
    """A dlib ``.dat`` file is truncated, malformed or not the network expected; the message names the file."""


class DlibReader:
    """Sequential reader of dlib-serialised values from an in-memory byte string."""

    def __init__(self, data: bytes, source: str = "<bytes>") -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.source = source

    # -- primitives -------------------------------------------------------------------------------------------
    def fail(self, problem: str) -> DlibFormatError:
        return DlibFormatError(f"{self.source}: {problem} (at byte {self.pos} of {len(self.data)})")

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or n > self.remaining():
            raise self.fail(f"truncated: {what} needs {n} bytes, {self.remaining()} left")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def integer(self, what: str = "integer", signed: bool = True) -> int:
        control = self.take(1, what)[0]
        size = control & 0x0F
        if control & 0x70 or not 1 <= size <= 8:
            raise self.fail(f"bad control byte 0x{control:02x} of {what}")
        negative = bool(control & 0x80)
        if negative and not signed:
            raise self.fail(f"negative value for unsigned {what}")
        value = int.from_bytes(self.take(size, what), "little")
        return -value if negative else value

    def unsigned(self, what: str = "unsigned integer") -> int:
        return self.integer(what, signed=False)

    def real(self, what: str = "float") -> float:
        if self.remaining() and self.data[self.pos] & 0x70:
            raise self.fail(f"{what} is in dlib's old ASCII float format, which is not supported")
        mantissa = self.integer(f"{what} mantissa")
        exponent = self.integer(f"{what} exponent")
        if exponent in _FLOAT_SPECIAL:
            return _FLOAT_SPECIAL[exponent]
        if not -32768 <= exponent <= 32767 or not -(1 << 63) <= mantissa < (1 << 63):
            raise self.fail(f"{what} mantissa/exponent out of range")
        try:
            return math.ldexp(mantissa, exponent)
        except OverflowError:
            return math.copysign(math.inf, mantissa)

    def string(self, what: str = "string") -> str:
        n = self.unsigned(f"length of {what}")
        if n > MAX_STRING_BYTES:
            raise self.fail(f"{what} claims {n} bytes (more than {MAX_STRING_BYTES})")
        raw = bytes(self.take(n, what))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not ASCII") from None

    def boolean(self, what: str = "bool") -> bool:
        ch = self.take(1, what)[0]
        if ch not in (0x30, 0x31):
            raise self.fail(f"{what} is byte 0x{ch:02x}, expected '0' or '1'")
        return ch == 0x31

    def version(self, expected: str, what: str) -> None:
        got = self.string(f"version string of {what}")
        if got != expected:
            raise self.fail(f"{what}: version {got!r}, expected {expected!r}")

    def _dims(self, what: str) -> tuple[int, int, int, int]:
        dims = tuple(self.integer(f"{what} dimension") for _ in range(4))
        if any(d < 0 for d in dims):
            raise self.fail(f"{what} has a negative dimension {dims}")
        return dims  # type: ignore[return-value]

    def tensor(self, what: str = "tensor") -> np.ndarray:
        """A ``resizable_tensor`` as a float32 array of shape (num_samples, k, nr, nc)."""
        version = self.integer(f"{what} version")
        if version not in (1, 2):
            raise self.fail(f"{what}: tensor version {version} (expected 1 or 2)")
        dims = self._dims(what)
        count = math.prod(dims)
        # each value takes 4 bytes (version 2) or at least 4 (version 1: two integers of >= 2 bytes each)
        if count > MAX_TENSOR_ELEMENTS or 4 * count > self.remaining():
            raise self.fail(f"truncated or corrupt: {what} of shape {dims} does not fit in the "
                            f"{self.remaining()} bytes left")
        if version == 2:
            values = np.frombuffer(self.take(4 * count, what), dtype="<f4").astype(np.float32)
        else:
            values = np.array([self.real(f"{what} value") for _ in range(count)], np.float32)
        return values.reshape(dims)

    def alias_tensor(self, what: str = "alias_tensor") -> tuple[int, int, int, int]:
        version = self.integer(f"{what} version")
        if version != 1:
            raise self.fail(f"{what}: alias_tensor version {version} (expected 1)")
        return self._dims(what)


# -- DNN layers ------------------------------------------------------------------------------------------------


@dataclass
class DlibLayer:
    """One computational layer's details: its dlib type (the version string without the trailing number),
    its hyper-parameters and its parameter tensors."""

    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DlibNetwork:
    loss: DlibLayer
    input: DlibLayer
    layers: list[DlibLayer]  # computational layers, input side first


def _split_params(r: DlibReader, params: np.ndarray, parts: list[tuple[str, tuple[int, int, int, int]]],
                  what: str) -> dict[str, np.ndarray]:
    flat = params.reshape(-1)
    need = sum(math.prod(shape) for _, shape in parts)
    if need != flat.size:
        raise r.fail(f"{what}: parameter tensor holds {flat.size} values, its aliases need {need}")
    out, start = {}, 0
    for name, shape in parts:
        n = math.prod(shape)
        out[name] = flat[start:start + n].reshape(shape).copy()
        start += n
    return out


def _read_con(r: DlibReader, what: str) -> DlibLayer:
    params = r.tensor(f"{what} params")
    opts: dict[str, Any] = {k: r.integer(f"{what} {k}") for k in ("num_filters", "nr", "nc", "stride_y",
                                                                  "stride_x", "padding_y", "padding_x")}
    filters = r.alias_tensor(f"{what} filters")
    biases = r.alias_tensor(f"{what} biases")
    for k in ("learning_rate_multiplier", "weight_decay_multiplier", "bias_learning_rate_multiplier",
              "bias_weight_decay_multiplier"):
        opts[k] = r.real(f"{what} {k}")
    if filters[0] != opts["num_filters"] or filters[2:] != (opts["nr"], opts["nc"]):
        raise r.fail(f"{what}: filter shape {filters} does not match its options {opts}")
    return DlibLayer("con", opts, _split_params(r, params, [("weight", filters), ("bias", biases)], what))


def _read_affine(r: DlibReader, what: str) -> DlibLayer:
    params = r.tensor(f"{what} params")
    gamma = r.alias_tensor(f"{what} gamma")
    beta = r.alias_tensor(f"{what} beta")
    mode = r.integer(f"{what} mode")
    return DlibLayer("affine", {"mode": mode}, _split_params(r, params, [("gamma", gamma), ("beta", beta)], what))


def _read_pool(kind: str) -> Any:
    def read(r: DlibReader, what: str) -> DlibLayer:
        opts = {k: r.integer(f"{what} {k}") for k in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")}
        return DlibLayer(kind, opts)
    return read


def _read_fc(r: DlibReader, what: str) -> DlibLayer:
    num_outputs = r.unsigned(f"{what} num_outputs")
    num_inputs = r.unsigned(f"{what} num_inputs")
    params = r.tensor(f"{what} params")
    weights = r.alias_tensor(f"{what} weights")
    biases = r.alias_tensor(f"{what} biases")
    bias_mode = r.integer(f"{what} bias_mode")
    opts: dict[str, Any] = {"num_outputs": num_outputs, "num_inputs": num_inputs, "bias_mode": bias_mode}
    for k in ("learning_rate_multiplier", "weight_decay_multiplier", "bias_learning_rate_multiplier",
              "bias_weight_decay_multiplier"):
        opts[k] = r.real(f"{what} {k}")
    if weights[:2] != (num_inputs, num_outputs):
        raise r.fail(f"{what}: weight alias {weights} does not match {num_inputs} inputs × {num_outputs} outputs")
    if bias_mode not in (0, 1):
        raise r.fail(f"{what}: bias mode {bias_mode} (expected 0 = FC_HAS_BIAS or 1 = FC_NO_BIAS)")
    parts = [("weight", weights)] + ([("bias", biases)] if bias_mode == 0 else [])
    return DlibLayer("fc", opts, _split_params(r, params, parts, what))


def _no_details(kind: str) -> Any:
    def read(r: DlibReader, what: str) -> DlibLayer:  # noqa: ARG001
        return DlibLayer(kind)
    return read


_LAYER_READERS = {
    "con_4": _read_con,
    "affine_": _read_affine,
    "relu_": _no_details("relu"),
    "max_pool_2": _read_pool("max_pool"),
    "avg_pool_2": _read_pool("avg_pool"),
    "add_prev_": _no_details("add_prev"),
    "fc_2": _read_fc,
}


def _read_layer_details(r: DlibReader, what: str) -> DlibLayer:
    tag = r.string(f"version string of {what}")
    reader = _LAYER_READERS.get(tag)
    if reader is None:
        raise r.fail(f"{what}: unsupported dlib layer {tag!r} (known: {', '.join(_LAYER_READERS)})")
    return reader(r, what)


def _read_input(r: DlibReader) -> DlibLayer:
    tag = r.string("version string of the input layer")
    if tag != "input_rgb_image_sized":
        raise r.fail(f"input layer {tag!r} is not supported (expected 'input_rgb_image_sized')")
    means = [r.real(f"input layer average {c}") for c in ("red", "green", "blue")]
    nr, nc = r.unsigned("input layer rows"), r.unsigned("input layer columns")
    return DlibLayer("input_rgb_image_sized", {"avg_rgb": means, "nr": nr, "nc": nc})


def _read_loss(r: DlibReader) -> DlibLayer:
    tag = r.string("version string of the loss layer")
    if tag != "loss_metric_2":
        raise r.fail(f"loss layer {tag!r} is not supported (expected 'loss_metric_2')")
    return DlibLayer("loss_metric", {"margin": r.real("loss margin"), "distance_threshold": r.real("loss threshold")})


def _skip_bookkeeping(r: DlibReader, what: str, version: int, is_input: bool) -> None:
    """The fields ``add_layer`` writes after its details (state flags and cached tensors, unused here)."""
    for flag in ("this_layer_setup_called", "gradient_input_is_stale", "get_output_and_gradient_input_disabled"):
        r.boolean(f"{what} {flag}")
    r.tensor(f"{what} x_grad")
    r.tensor(f"{what} cached_output")
    if is_input:
        r.tensor(f"{what} grad_final")
        if version >= 3:
            r.unsigned(f"{what} sample_expansion_factor")
    elif version == 2:
        r.tensor(f"{what} params_grad")


def parse_dlib_network(data: bytes, wrappers: list[str], source: str = "<bytes>") -> DlibNetwork:
    """Parse a serialised ``add_loss_layer`` network.

    ``wrappers``: the network's layers outermost first (the order of the C++ type), each ``"layer"`` (an
    ``add_layer``; the last one sits on the input layer) or ``"tag"`` / ``"skip"``. The file must hold exactly
    that network and nothing after it."""
    if not wrappers or wrappers[-1] != "layer" or any(w not in ("layer", "tag", "skip") for w in wrappers):
        raise ValueError("wrappers must be 'layer'/'tag'/'skip' entries ending with the 'layer' on the input")
    r = DlibReader(data, source)
    if (v := r.integer("loss layer version")) != 1:
        raise r.fail(f"loss layer version {v} (expected 1)")
    loss = _read_loss(r)
    versions = []
    last = len(wrappers) - 1
    for i, kind in enumerate(wrappers):
        v = r.integer(f"version of wrapper {i} ({kind})")
        allowed = (2, 3) if i == last else (1, 2) if kind == "layer" else (1,)
        if v not in allowed:
            raise r.fail(f"wrapper {i} ({kind}) has version {v}, expected one of {allowed}: "
                         "the file does not hold the expected network")
        versions.append(v)
    net_input = _read_input(r)
    layers: list[DlibLayer] = []
    for i in range(last, -1, -1):  # details come innermost first
        if wrappers[i] != "layer":
            continue
        what = f"layer {len(layers)} (wrapper {i})"
        layers.append(_read_layer_details(r, what))
        _skip_bookkeeping(r, what, versions[i], is_input=i == last)
    if r.remaining():
        raise r.fail(f"{r.remaining()} unexpected bytes after the network")
    return DlibNetwork(loss, net_input, layers)


def read_dlib_network(path: str | Path, wrappers: list[str]) -> DlibNetwork:
    """:func:`parse_dlib_network` of a file (size-checked before it is read)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise DlibFormatError(f"{path}: cannot read the dlib model ({err.strerror or err})") from None
    if size > MAX_FILE_BYTES:
        raise DlibFormatError(f"{path}: {size} bytes is too large for a dlib DNN model")
    return parse_dlib_network(path.read_bytes(), wrappers, str(path))


__all__ = ["DlibFormatError", "DlibLayer", "DlibNetwork", "DlibReader", "parse_dlib_network", "read_dlib_network"]
