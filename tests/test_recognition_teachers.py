"""External teachers: the precomputed teacher-embedding table (safetensors, checked against the training list,
read by CSDN's distillation term) and dlib's ResNet (skipped without the dlib extra or ../shared)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import dlib_models_available

from openfas.config import load_config
from openfas.data.synth.identities import generate_identities
from openfas.engine.trainer import Trainer
from openfas.recognition.data import scan_identity_folder
from openfas.recognition.embedding_table import EmbeddingTable, EmbeddingTableError
from openfas.recognition.teacher import TeacherError

SHARED = Path(__file__).resolve().parents[2] / "shared"
LFW = SHARED / "data" / "lfw" / "lfw-deepfunneled"


@pytest.fixture(scope="module")
def ids_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_identities(tmp_path_factory.mktemp("tab") / "ids", identities=3, images_per_identity=3,
                               test_identities=3, test_images_per_identity=2, size=32, pairs_per_identity=2)


def test_table_round_trip_and_checks(tmp_path: Path) -> None:
    emb = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = EmbeddingTable(["a/1.png", "a/2.png", "b/1.png"], emb, teacher="toy", info={"k": 1})
    path = t.save(tmp_path / "t.safetensors")
    back = EmbeddingTable.load(path)
    assert back.files == t.files and back.teacher == "toy" and back.info == {"k": 1} and back.dim == 4
    np.testing.assert_array_equal(back.for_files(["b/1.png", "a/1.png"]).numpy(), emb[[2, 0]])
    with pytest.raises(EmbeddingTableError, match=r"1 of 2 training images have no teacher embedding.*c/9.png"):
        back.for_files(["a/1.png", "c/9.png"])
    with pytest.raises(EmbeddingTableError, match="duplicate"):
        EmbeddingTable(["a", "a"], emb[:2])
    with pytest.raises(EmbeddingTableError, match="NaN"):
        EmbeddingTable(["a"], np.full((1, 4), np.nan, np.float32))
    # a pickle (torch.save) under a .safetensors name is refused with a clear error, never unpickled
    torch.save({"embeddings": torch.zeros(3, 4)}, tmp_path / "p.safetensors")
    with pytest.raises(EmbeddingTableError, match="p.safetensors: cannot read"):
        EmbeddingTable.load(tmp_path / "p.safetensors")
    from safetensors.torch import save_file
    save_file({"embeddings": torch.zeros(1, 4)}, str(tmp_path / "ckpt.safetensors"), metadata={"format": "x"})
    with pytest.raises(EmbeddingTableError, match="not a teacher embedding table"):
        EmbeddingTable.load(tmp_path / "ckpt.safetensors")
    assert issubclass(EmbeddingTableError, TeacherError)  # the CLI reports it as a one-line error


def _cfg(root: Path, out: Path, *extra: str):  # noqa: ANN202
    return load_config("recognition/csdn_synth.yaml", [
        f"data.identities.root={root / 'train'}", f"data.identities.pairs={root / 'test' / 'pairs.txt'}",
        "data.image_size=32", "data.batch_size=4", "model.num_classes=3", "model.embedding_dim=8",
        "model.layers=[1,1]", "model.widths=[8,16]", "model.concept_hidden=8", "train.epochs=1",
        "train.device=cpu", f"experiment.output_dir={out}", *extra])


def test_csdn_distils_from_the_table_rows_of_the_batch(ids_root: Path, tmp_path: Path) -> None:
    _, samples = scan_identity_folder(ids_root / "train")
    rng = np.random.default_rng(0)
    table = EmbeddingTable([rel for rel, _ in samples][::-1], rng.standard_normal((len(samples), 8)), "random")
    path = table.save(tmp_path / "teacher.safetensors")
    trainer = Trainer(_cfg(ids_root, tmp_path, f"method.teacher_table={path}"), run_dir=tmp_path / "run",
                      progress=False)
    trainer.fit()
    hist = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert "kd" in hist[0]
    # the kd term of a batch is 1 − cos(student embedding, the table row of each item's file), written out here
    method, model = trainer.method, trainer.model.eval()
    ds = method.train_dataset(trainer)
    batch = {k: torch.stack([ds[i][k] for i in (4, 0, 7)]) for k in ("image", "image_normal", "label", "index")}
    terms = method.training_loss(model, batch, method.stages()[0])
    rows = table.for_files([samples[i][0] for i in (4, 0, 7)])
    with torch.no_grad():
        expect = (1 - F.cosine_similarity(model(batch["image"]).embedding, rows, dim=1)).mean()
    assert float(terms["kd"]) == pytest.approx(float(expect), abs=1e-5)


def test_table_must_cover_the_training_list_and_match_the_student(ids_root: Path, tmp_path: Path) -> None:
    _, samples = scan_identity_folder(ids_root / "train")
    short = EmbeddingTable([rel for rel, _ in samples[1:]], np.ones((len(samples) - 1, 8), np.float32))
    p = short.save(tmp_path / "short.safetensors")
    with pytest.raises(EmbeddingTableError, match=f"1 of {len(samples)} training images"):
        Trainer(_cfg(ids_root, tmp_path, f"method.teacher_table={p}"), run_dir=tmp_path / "r1", progress=False).fit()
    wide = EmbeddingTable([rel for rel, _ in samples], np.ones((len(samples), 5), np.float32))
    p = wide.save(tmp_path / "wide.safetensors")
    with pytest.raises(EmbeddingTableError, match="5-d teacher embeddings.*embedding_dim=8"):
        Trainer(_cfg(ids_root, tmp_path, f"method.teacher_table={p}"), run_dir=tmp_path / "r2", progress=False).fit()


@pytest.mark.skipif(not LFW.is_dir() or not dlib_models_available(), reason="needs ../shared LFW and the dlib extra")
def test_dlib_teacher_separates_same_and_different_people_on_lfw() -> None:
    import cv2

    from openfas.recognition.dlib_teacher import DlibRecognizer, DlibTeacher
    from openfas.recognition.landmarks import align_face

    rec = DlibRecognizer()
    files = ["Colin_Powell/Colin_Powell_0001.jpg", "Colin_Powell/Colin_Powell_0005.jpg",
             "Serena_Williams/Serena_Williams_0002.jpg"]
    imgs = [cv2.imread(str(LFW / f)) for f in files]
    e = np.stack([rec.embed_image(im) for im in imgs])
    assert e.shape == (3, 128)
    d = np.linalg.norm(e[:, None] - e[None], axis=-1)
    # dlib's documented operating point: same person when the Euclidean distance is below 0.6
    assert d[0, 1] < 0.6 < min(d[0, 2], d[1, 2])
    # the Teacher interface on aligned, normalised crops gives embeddings close to the photo path's
    crops = [align_face(im, rec.landmarker(im).five, 112)[0] for im in imgs]
    x = torch.stack([torch.from_numpy(c[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255 for c in crops])
    t = DlibTeacher(0.5, 0.5, rec)((x - 0.5) / 0.5)
    assert t.shape == (3, 128) and t.dtype == torch.float32
    dt = torch.cdist(t, t)
    assert dt[0, 1] < dt[0, 2] and dt[0, 1] < dt[1, 2]
