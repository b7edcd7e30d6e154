"""Cross-dataset domain-generalisation (DG) protocols: leave one of O, C, I, M out.

O = OULU-NPU, C = CASIA-FASD, I = Idiap Replay-Attack, M = MSU-MFSD. ``"OCI-M"`` trains on O, C and I and
tests on M (SSDG, Jia et al. CVPR 2020; RFMetaFAS, Shao et al. AAAI 2020; ANRL, Liu et al. ACM MM 2021).

Which splits are used (``convention``):

* ``"all"`` (default) – the practice of the SSDG reference code, whose label lists are reused by most later
  DG works: the source domains contribute the live and spoof videos of ALL their splits, and the target is
  evaluated on ALL its videos (its ``all_label.json``). (SSDG additionally counted Replay-Attack's
  enrolment videos as live; openfas's Replay-Attack adapter ignores ``enroll/``.)
* ``"train_test"`` – the stricter split-based variant some works use: the sources' ``train`` split only and
  the target's ``test`` split.

Either way the HTER threshold is chosen on the target scores themselves (EER threshold of the target
set) in the published DG tables, and AUC is reported alongside.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from openfas.data.datasets.base import DatasetError, get_dataset
from openfas.data.sample import MediaItem

DG_DATASETS: dict[str, str] = {"O": "oulu-npu", "C": "casia-fasd", "I": "replay-attack", "M": "msu-mfsd"}
DG_PROTOCOLS: dict[str, dict[str, list[str] | str]] = {
    "OCI-M": {"sources": ["oulu-npu", "casia-fasd", "replay-attack"], "target": "msu-mfsd"},
    "OMI-C": {"sources": ["oulu-npu", "msu-mfsd", "replay-attack"], "target": "casia-fasd"},
    "OCM-I": {"sources": ["oulu-npu", "casia-fasd", "msu-mfsd"], "target": "replay-attack"},
    "ICM-O": {"sources": ["replay-attack", "casia-fasd", "msu-mfsd"], "target": "oulu-npu"},
}
DG_CONVENTIONS: tuple[str, ...] = ("all", "train_test")


@dataclass(frozen=True)
class DGProtocol:
    """Source dataset names (trained on), the target dataset name (tested on) and the splits used of each."""

    name: str
    sources: list[str]
    target: str
    source_splits: str | tuple[str, ...] = "all"  # "all" = every split of the dataset
    target_splits: str | tuple[str, ...] = "all"
    convention: str = "all"

    def list_media(self, roots: dict[str, str | Path], role: str) -> list[MediaItem]:
        """Items of the ``role`` ("source" or "target") datasets; ``roots`` maps dataset name (or its letter)
        to its root folder. Each dataset's protocol covering all its media is used (OULU-NPU ``"all"``,
        Replay-Attack ``"grandtest"``, the single protocol of the others)."""
        if role not in ("source", "target"):
            raise ValueError(f"role must be 'source' or 'target', got {role!r}")
        names = self.sources if role == "source" else [self.target]
        which = self.source_splits if role == "source" else self.target_splits
        by_name = {DG_DATASETS.get(k, k): v for k, v in roots.items()}
        items: list[MediaItem] = []
        for ds in names:
            if ds not in by_name:
                raise DatasetError(f"DG protocol {self.name}: no root folder given for {ds} (roots: {sorted(roots)})")
            adapter = get_dataset(ds)(by_name[ds])
            protocol = "all" if "all" in adapter.protocols else None
            for split in adapter.splits if which == "all" else which:
                if split in adapter.splits:
                    items += adapter.list_media(split, protocol=protocol)
        return items


def dg_protocol(name: str, convention: str = "all") -> DGProtocol:
    """The leave-one-domain-out protocol ``name`` (``"OCI-M"``, ``"OMI-C"``, ``"OCM-I"``, ``"ICM-O"``; the
    separators ``-``, ``&``, ``→``, ``2`` and letter order are accepted, e.g. ``"O&C&I->M"``, ``"OCI2M"``).
    ``convention``: ``"all"`` or ``"train_test"`` (see the module docstring)."""
    if convention not in DG_CONVENTIONS:
        raise DatasetError(f"unknown DG convention {convention!r}; expected one of {', '.join(DG_CONVENTIONS)}")
    key = _canonical(name)
    if key not in DG_PROTOCOLS:
        raise DatasetError(f"unknown DG protocol {name!r}; known: {', '.join(DG_PROTOCOLS)} "
                           f"(O=OULU-NPU, C=CASIA-FASD, I=Replay-Attack, M=MSU-MFSD)")
    spec = DG_PROTOCOLS[key]
    src = list(spec["sources"])
    tgt = str(spec["target"])
    if convention == "all":
        return DGProtocol(key, src, tgt, "all", "all", convention)
    return DGProtocol(key, src, tgt, ("train",), ("test",), convention)


def _canonical(name: str) -> str:
    s = name.strip().upper()
    for sep in ("->", "→", "&", " ", "_", ","):
        s = s.replace(sep, "" if sep in ("&", " ", ",") else "-")
    s = s.replace("2", "-")
    if s.count("-") != 1:
        return s
    src, tgt = s.split("-")
    if len(tgt) != 1 or len(src) != 3 or set(src + tgt) != set("OCIM"):
        return s
    for key, spec in DG_PROTOCOLS.items():
        letters = {k for k, v in DG_DATASETS.items() if v in spec["sources"]}
        if letters == set(src) and DG_DATASETS[tgt] == spec["target"]:
            return key
    return s
