"""Checks of ``cfg.data`` against a prepared crop cache, done before any training step.

* :func:`adapt_to_cache` — the demo configs describe a synthetic leave-one-domain-out protocol (domains
  ``synth_a``…, ``test_split: all``). Pointed at a prepared cache of one's own data (``data.cache=<folder>``),
  those settings cannot apply: domain lists that name only synthetic domains absent from the cache are dropped
  (= every domain of the cache), and ``test_split: all`` becomes ``test`` when the cache has a test split. Each
  change is logged in one line. Anything else is left as written (a real domain name that is missing stays an
  error of the dataset).
* :func:`check_dev_split` — the decision threshold (``eval.threshold`` ``dev_eer``/``dev_apcer``) and the
  best checkpoint (``train.select``) are chosen on the dev split; a missing dev split, or one without both
  live and attack samples, is an error naming the cache, the splits it has and the fix — before the first
  epoch, not after it.
* :func:`light_shortcut_warnings` — when the face's brightness, colour or noise alone tells live from attack in
  the training split, a model can learn the recording's light instead of the attack (NUAA: docs/real_faces.md);
  the trainer logs a warning naming ``data.augment=relight`` unless the run already draws each crop's light
  independently of its label (``relight``, ``light``, ``real`` or ``colour``) or reads an order-only input
  (``model.input_code: lbp``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from openfas.config import Config, ConfigError
from openfas.data.cache import CropCacheReader
from openfas.data.light import light_shortcuts, shortcut_lines
from openfas.data.sample import LIVE
from openfas.data.transforms import LIGHT_RECIPES, augment_recipe


def _synthetic_names(cfg: Config) -> set[str]:
    return set(cfg.data.synth.domains)


def adapt_to_cache(cfg: Config) -> list[str]:
    """Adjust ``cfg.data`` in place for a prepared cache (see the module docstring); returns the notes."""
    d = cfg.data
    if d.cache == "synthetic":
        return []
    path = Path(d.cache).expanduser()
    if not (path / "crops.lmdb").exists():
        return []  # resolve_cache reports the missing cache
    records = CropCacheReader(path).records()
    domains = {r.domain for r in records}
    splits = {r.split for r in records}
    synth = _synthetic_names(cfg)
    notes: list[str] = []
    changed = False
    for key in ("train_domains", "test_domains"):
        listed = getattr(d, key)
        if listed and not (set(listed) & domains) and all(x in synth or x.startswith("synth") for x in listed):
            setattr(d, key, None)
            changed = True
            notes.append(f"data.{key}={listed} names synthetic domains that are not in {path}; using every domain "
                         f"of the cache ({', '.join(sorted(domains))})")
    if changed and d.test_split == "all" and "test" in splits:
        d.test_split = "test"
        notes.append(f"data.test_split='all' belongs to the synthetic protocol; {path} has a test split: using it")
    return notes


def check_dev_split(cfg: Config, cache_dir: Path) -> None:
    """Raise :class:`ConfigError` when the dev split the run needs is missing or lacks live or attack samples."""
    d = cfg.data
    needs = []
    if cfg.eval.threshold in ("dev_eer", "dev_apcer"):
        needs.append(f"eval.threshold={cfg.eval.threshold}")
    if cfg.train.select != "last" and cfg.train.select_split == "dev":
        needs.append(f"train.select={cfg.train.select}")
    if not needs:
        return
    records = CropCacheReader(cache_dir).records()
    doms = set(d.train_domains) if d.train_domains is not None else None
    dev = [r for r in records if (d.dev_split == "all" or r.split == d.dev_split)
           and (doms is None or r.domain in doms)]
    have = Counter(r.split for r in records)
    splits = ", ".join(f"{s} ({n})" for s, n in sorted(have.items()))
    fix = ("prepare one (own folder: ROOT/dev/live/… and ROOT/dev/spoof/<attack>/… next to ROOT/train and "
           "ROOT/test; nuaa: protocol cross-session), or set data.dev_split, or eval.threshold=eer / fixed "
           "(and train.select=last)")
    if not dev:
        raise ConfigError(f"data.cache={cache_dir}: no samples in dev split {d.dev_split!r}"
                          + (f" of domains {sorted(doms)}" if doms else "")
                          + f" (the cache has splits: {splits}); {' and '.join(needs)} choose on dev: {fix}")
    live = sum(r.label == LIVE for r in dev)
    if live == 0 or live == len(dev):
        which = "live" if live == 0 else "attack"
        raise ConfigError(f"data.cache={cache_dir}: dev split {d.dev_split!r} has no {which} samples "
                          f"({len(dev)} crops); {' and '.join(needs)} need both classes on dev: {fix}")


def light_shortcut_warnings(cfg: Config, cache_dir: Path, per_split: int = 500) -> list[str]:
    """Warning lines when a light statistic alone nearly decides the training split's labels (else []).

    A split with no crops, or too few of a class, yields no report and so no warning."""
    d = cfg.data
    input_code = cfg.model.kwargs().get("input_code")
    texture_only = input_code == "lbp" or cfg.model.name == "lbp"  # LBP codes ignore brightness and gain
    varies_light = augment_recipe(d.augment) in (*LIGHT_RECIPES, "real", "colour")
    if varies_light or texture_only or "rgb" not in d.modalities:
        return []
    splits = None if d.train_split == "all" else [d.train_split]  # "all": the run trains on every split
    reports = light_shortcuts(CropCacheReader(cache_dir), splits, per_split=per_split, domains=d.train_domains)
    return [ln for ln in shortcut_lines(reports) if ln.startswith("WARNING")]
