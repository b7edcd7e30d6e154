"""Benchmark-protocol drivers: group run folders by protocol and print results the way papers print them.

* OULU-NPU P1–P4 (Liu et al. 2017 protocol files): APCER / BPCER / ACER; P3 and P4 have six leave-one-phone-out
  sub-protocols each and are reported as mean ± std over them (as ``bob pad multi-metrics`` does).
* Leave-one-domain-out domain generalisation over OULU-NPU (O), CASIA-FASD (C), Idiap Replay-Attack (I) and
  MSU-MFSD (M): OCI-M, OMI-C, OCM-I, ICM-O (train on three, test on the fourth): HTER and AUC.

A run folder holds ``metrics.json`` and ``config.json`` (the config it was trained with). Its protocol is, in
order: an explicit ``protocol`` entry (top level, ``data`` or ``experiment`` of the config, or metrics.json);
for OULU-NPU (``oulu`` in the experiment name or cache path) a ``p3_2`` / ``protocol_3_2`` / ``Protocol_3``
pattern there; for DG the train / test domains mapped to O, C, I, M; otherwise ``custom``.
Std is the population standard deviation (``ddof=0``, numpy's default) unless ``ddof`` says otherwise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openfas.eval.runfiles import read_run_json

#: Domain-name spellings of the four DG datasets (lower case, '-' and '_' equivalent).
DOMAIN_LETTERS = {"oulu": "O", "oulu-npu": "O", "oulunpu": "O", "o": "O",
                  "casia": "C", "casia-fasd": "C", "casia-mfsd": "C", "c": "C",
                  "replay": "I", "replay-attack": "I", "replayattack": "I", "idiap": "I", "i": "I",
                  "msu": "M", "msu-mfsd": "M", "m": "M"}
#: Canonical names of the leave-one-out protocols, keyed by the held-out (test) domain.
DG_PROTOCOLS = {"M": "OCI-M", "C": "OMI-C", "I": "OCM-I", "O": "ICM-O"}
OULU_PROTOCOLS = ("OULU-P1", "OULU-P2", "OULU-P3", "OULU-P4")
_OULU_RE = re.compile(r"(?:protocol|prot|p)[_\- ]?([1-4])(?:[_\-.]([1-6]))?(?![0-9])", re.IGNORECASE)


@dataclass
class RunResult:
    """One run folder: its protocol (``OULU-P3``, ``OCI-M``, ``custom``), sub-protocol and headline metrics."""

    run_dir: Path
    method: str
    protocol: str
    sub: str | None
    metrics: dict[str, float]
    level: str = "frame"
    threshold_policy: str = "?"
    extra: dict[str, Any] = field(default_factory=dict)


def mean_std(values: Sequence[float], ddof: int = 0) -> tuple[float, float]:
    """Mean and standard deviation √(Σ(x−μ)² / (n − ddof)); std is 0 for a single value."""
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("mean_std of no values")
    mu = sum(xs) / len(xs)
    if len(xs) - ddof <= 0:
        return mu, 0.0
    return mu, math.sqrt(sum((x - mu) ** 2 for x in xs) / (len(xs) - ddof))


def _letter(domain: str) -> str | None:
    return DOMAIN_LETTERS.get(domain.lower().replace("_", "-").strip())


def _oulu(text: str, force: bool = False) -> tuple[str, str | None] | None:
    low = text.lower()
    if not force and "oulu" not in low:
        return None
    m = _OULU_RE.search(low.replace("oulu", " "))
    if m is None:
        return None
    return f"OULU-P{m.group(1)}", (f"{m.group(1)}_{m.group(2)}" if m.group(2) else None)


def protocol_of(config: dict[str, Any] | None, metrics: dict[str, Any] | None = None) -> tuple[str, str | None]:
    """(protocol, sub-protocol) of a run from its stored config (see the module docstring for the rules)."""
    cfg = config or {}
    data, exp = cfg.get("data") or {}, cfg.get("experiment") or {}
    explicit = cfg.get("protocol") or data.get("protocol") or exp.get("protocol") or (metrics or {}).get("protocol")
    if explicit:
        text = str(explicit)
        found = _oulu(text, force=bool(re.match(r"\s*(oulu|p|prot|protocol)[_\- ]?[1-4]", text, re.IGNORECASE)))
        return found or (_normalise_explicit(text), None)
    for text in (str(exp.get("name", "")), Path(str(data.get("cache", ""))).name, str(data.get("cache", ""))):
        found = _oulu(text)
        if found:
            return found
    train, test = data.get("train_domains"), data.get("test_domains")
    if train and test and len(test) == 1:
        letters, target = [_letter(d) for d in train], _letter(test[0])
        tl = [x for x in letters if x]
        if target and len(tl) == len(letters) and target not in tl:
            if sorted(tl) == sorted(set("OCIM") - {target}):
                return DG_PROTOCOLS[target], None
            return "".join(tl) + "-" + target, None
    return "custom", None


def _normalise_explicit(text: str) -> str:
    t = text.strip().upper().replace("&", "").replace("→", "-").replace("->", "-").replace("_", "-")
    for name in DG_PROTOCOLS.values():
        if t.replace("-", "") == name.replace("-", ""):
            return name
    return text.strip()


def load_run(run_dir: str | Path) -> RunResult:
    """Read ``metrics.json`` (and ``config.json`` when present) of a run or eval folder."""
    run_dir = Path(run_dir)
    metrics = read_run_json(run_dir, "metrics.json") or {}
    if "headline" not in metrics:
        raise ValueError(f"{run_dir / 'metrics.json'}: no 'headline' entry (not written by openfas?)")
    config = read_run_json(run_dir, "config.json", required=False)
    protocol, sub = protocol_of(config, metrics)
    model = ((config or {}).get("model") or {}).get("name", "?")
    method = ((config or {}).get("method") or {}).get("name", "?")
    head = metrics["headline"]
    return RunResult(run_dir=run_dir, method=model if method in ("pixelwise", "?") else f"{model} ({method})",
                     protocol=protocol, sub=sub,
                     metrics={k: float(v) for k, v in head.items() if isinstance(v, int | float)},
                     level=str(head.get("level", "frame")),
                     threshold_policy=str((metrics.get("threshold") or {}).get("policy", "?")))


def aggregate(runs: Iterable[RunResult], keys: Sequence[str], ddof: int = 0
              ) -> dict[tuple[str, str], dict[str, tuple[float, float, int]]]:
    """``{(protocol, method): {metric: (mean, std, n)}}`` over the runs (sub-protocols / repeats) of each group."""
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for r in runs:
        groups.setdefault((r.protocol, r.method), []).append(r)
    out: dict[tuple[str, str], dict[str, tuple[float, float, int]]] = {}
    for key, rs in groups.items():
        out[key] = {}
        for k in keys:
            vals = [r.metrics[k] for r in rs if k in r.metrics]
            if vals:
                mu, sd = mean_std(vals, ddof)
                out[key][k] = (mu, sd, len(vals))
    return out


def _cell(stat: tuple[float, float, int] | None, with_std: bool) -> str:
    if stat is None:
        return "–"
    mu, sd, n = stat
    return f"{100 * mu:.2f}±{100 * sd:.2f}" if with_std and n > 1 else f"{100 * mu:.2f}"


def _render(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(header), "-|-".join("-" * w for w in widths), *(line(r) for r in rows)])


def protocol_table(run_dirs: Iterable[str | Path], ddof: int = 0) -> str:
    """Paper-style tables of a set of run folders: OULU-NPU (APCER/BPCER/ACER, P3/P4 as mean±std), DG
    leave-one-out (HTER/AUC per protocol, one row per method) and any other runs; values in %."""
    runs = [load_run(d) for d in run_dirs]
    parts: list[str] = []
    oulu = [r for r in runs if r.protocol in OULU_PROTOCOLS]
    if oulu:
        keys: tuple[str, ...] = ("apcer", "bpcer", "acer")
        agg = aggregate(oulu, keys, ddof)
        rows = [[p.replace("OULU-P", ""), m, *(_cell(agg[(p, m)].get(k), p in ("OULU-P3", "OULU-P4")) for k in keys)]
                for p, m in sorted(agg)]
        parts.append("OULU-NPU\n" + _render(["Prot.", "Method", "APCER(%)", "BPCER(%)", "ACER(%)"], rows))
    dg = [r for r in runs if re.fullmatch(r"[OCIM]{2,3}-[OCIM]", r.protocol)]
    if dg:
        protos = [p for p in DG_PROTOCOLS.values() if any(r.protocol == p for r in dg)]
        protos += sorted({r.protocol for r in dg} - set(protos))
        agg = aggregate(dg, ("hter", "auc"), ddof)
        methods = sorted({r.method for r in dg})
        header = ["Method"] + [f"{p} {k}(%)" for p in protos for k in ("HTER", "AUC")]
        rows = [[m, *(_cell(agg.get((p, m), {}).get(k), True) for p in protos for k in ("hter", "auc"))]
                for m in methods]
        parts.append("Leave-one-domain-out (O: OULU-NPU, C: CASIA-FASD, I: Replay-Attack, M: MSU-MFSD)\n"
                     + _render(header, rows))
    other = [r for r in runs if r not in oulu and r not in dg]
    if other:
        keys = ("auc", "eer", "hter", "apcer", "bpcer", "acer")
        rows = [[r.run_dir.name, r.method, *(_cell((r.metrics[k], 0.0, 1) if k in r.metrics else None, False)
                                             for k in keys)] for r in other]
        parts.append("Other runs\n" + _render(["Run", "Method", *(f"{k.upper()}(%)" for k in keys)], rows))
    policies = sorted({f"{r.threshold_policy} ({r.level} level)" for r in runs})
    parts.append(f"threshold policies: {', '.join(policies)}; ± = std over sub-protocols/runs (ddof={ddof})")
    return "\n\n".join(parts)
