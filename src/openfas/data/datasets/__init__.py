"""Dataset adapters: public FAS datasets in their own published layouts → :class:`~openfas.data.sample.MediaItem`.

``get_dataset("oulu-npu")(root).list_media("train", protocol="1")``; names: ``oulu-npu``, ``casia-fasd``,
``replay-attack``, ``msu-mfsd``, ``casia-surf``, ``cefa``, ``nuaa``, ``folder`` (short aliases: ``oulu``, ``casia``,
``replay``, ``msu``, ``surf``). Leave-one-domain-out protocols: :func:`dg_protocol`.
"""

from openfas.data.datasets.base import (
    DatasetAdapter,
    DatasetError,
    get_dataset,
    list_datasets,
    register_dataset,
)
from openfas.data.datasets.casia_fasd import CasiaFASD
from openfas.data.datasets.cefa import CeFA
from openfas.data.datasets.folder import FolderDataset
from openfas.data.datasets.msu import MsuMFSD
from openfas.data.datasets.nuaa import NUAA, parse_nuaa_name
from openfas.data.datasets.oulu import OuluNPU, parse_oulu_name
from openfas.data.datasets.protocols import DG_PROTOCOLS, DGProtocol, dg_protocol
from openfas.data.datasets.replay import ReplayAttack, parse_replay_name
from openfas.data.datasets.surf import CasiaSURF

__all__ = [
    "DG_PROTOCOLS", "CasiaFASD", "CasiaSURF", "CeFA", "DGProtocol", "DatasetAdapter", "DatasetError", "FolderDataset",
    "MsuMFSD", "NUAA", "OuluNPU", "ReplayAttack", "dg_protocol", "get_dataset", "list_datasets", "parse_nuaa_name",
    "parse_oulu_name", "parse_replay_name", "register_dataset",
]
