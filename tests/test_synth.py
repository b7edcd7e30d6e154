"""Tests of the synthetic live/spoof generator (openfas.data.synth.pad)."""

from __future__ import annotations

import json
from collections import Counter

import cv2
import numpy as np
import pytest

from openfas.data.cache import CropCacheReader
from openfas.data.synth.pad import (
    SynthCacheMismatch,
    camera_params,
    face_geometry,
    generate_synthetic,
    render_sample,
    write_folder_layout,
)

SIZE = 64


def _gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float64)


def _radius(n: int) -> np.ndarray:
    yy, xx = np.mgrid[0:n, 0:n]
    return np.hypot((yy - n // 2) / n, (xx - n // 2) / n)


def _hf_ratio(img: np.ndarray) -> float:
    """Share of spectral energy above 0.25 cycles/px among everything above 0.02 cycles/px."""
    g = _gray(img)
    power = np.abs(np.fft.fftshift(np.fft.fft2(g - g.mean()))) ** 2
    r = _radius(g.shape[0])
    return float(power[r > 0.25].sum() / power[r > 0.02].sum())


def _detail_spectrum(img: np.ndarray) -> np.ndarray:
    g = _gray(img)
    g = g - cv2.GaussianBlur(g, (0, 0), 4)
    win = np.hanning(g.shape[0])[:, None] * np.hanning(g.shape[1])[None, :]
    return np.abs(np.fft.fftshift(np.fft.fft2(g * win)))


def test_render_shapes_dtypes_and_determinism() -> None:
    mods = ("rgb", "depth", "ir")
    for attack in ("live", "print", "replay"):
        a = render_sample(3, attack, "dom", 1, SIZE, mods, rng_seed=11)
        b = render_sample(3, attack, "dom", 1, SIZE, mods, rng_seed=11)
        for m in mods:
            assert a[m].shape == (SIZE, SIZE, 3) and a[m].dtype == np.uint8
            assert np.array_equal(a[m], b[m]), (attack, m)
        assert a["mask"].shape == (SIZE, SIZE) and a["mask"].dtype == np.uint8
        assert a["depth_target"].shape == (SIZE, SIZE) and a["depth_target"].dtype == np.uint8
        # Depth and IR are gray replicated over three channels.
        assert np.array_equal(a["depth"][..., 0], a["depth"][..., 2])
        assert np.array_equal(a["ir"][..., 0], a["ir"][..., 1])
        c = render_sample(3, attack, "dom", 1, SIZE, mods, rng_seed=12)
        assert not np.array_equal(a["rgb"], c["rgb"])
        d = render_sample(4, attack, "dom", 1, SIZE, mods, rng_seed=11)
        assert not np.array_equal(a["rgb"], d["rgb"])
    # Frames of one video differ (jitter, noise) but are of the same scene.
    f0 = render_sample(3, "live", "dom", 0, SIZE, rng_seed=11)["rgb"].astype(float)
    f1 = render_sample(3, "live", "dom", 1, SIZE, rng_seed=11)["rgb"].astype(float)
    other = render_sample(9, "live", "dom", 0, SIZE, rng_seed=99)["rgb"].astype(float)
    assert 0 < np.abs(f0 - f1).mean() < np.abs(f0 - other).mean()


def test_spoof_targets_are_empty() -> None:
    for attack in ("print", "replay"):
        out = render_sample(1, attack, "dom", 0, SIZE, rng_seed=2)
        assert not out["mask"].any() and not out["depth_target"].any()


def test_live_mask_is_the_face_ellipse() -> None:
    size = 96
    for subject, rng_seed, frame in [(0, 5, 0), (7, 8, 1), (21, 3, 2)]:
        out = render_sample(subject, "live", "dom", frame, size, rng_seed=rng_seed)
        mask = out["mask"]
        assert set(np.unique(mask)) == {0, 255}
        g = face_geometry(subject, frame, size, rng_seed=rng_seed)
        ys, xs = np.mgrid[0:size, 0:size] + 0.5
        dx, dy = xs - g["cx"], ys - g["cy"]
        c, s = np.cos(g["angle"]), np.sin(g["angle"])
        q = ((c * dx + s * dy) / g["a"]) ** 2 + ((-s * dx + c * dy) / g["b"]) ** 2
        # Inside the ellipse (with a one-pixel margin) the mask is 255, outside it is 0.
        assert (mask[q < 0.95] == 255).all()
        assert (mask[q > 1.05] == 0).all()
        # The relief lives inside the mask and peaks there.
        rel = out["depth_target"]
        assert (rel[mask == 0] == 0).all() and rel.max() == 255


def test_print_loses_high_frequencies() -> None:
    ratios = []
    for s in range(12):
        dom = f"synth_{'abcd'[s % 4]}"
        live = render_sample(s, "live", dom, 0, 96, rng_seed=s)["rgb"]
        printed = render_sample(s, "print", dom, 0, 96, rng_seed=s)["rgb"]
        ratios.append(_hf_ratio(printed) / _hf_ratio(live))
    ratios = np.array(ratios)
    assert np.median(ratios) < 0.5
    assert (ratios < 1.0).mean() >= 0.75


def test_replay_has_moire_peak_that_live_lacks() -> None:
    n = 96
    ratios = []
    band = _radius(n) > 0.04
    for s in range(12):
        dom = f"synth_{'abcd'[s % 4]}"
        live = _detail_spectrum(render_sample(s, "live", dom, 0, n, rng_seed=s)["rgb"])
        replay = _detail_spectrum(render_sample(s, "replay", dom, 0, n, rng_seed=s)["rgb"])
        k = np.argmax(np.where(band, replay, 0))
        ratios.append(replay.flat[k] / live.flat[k])
        # The peak is narrow: far above the replay's own median in the band.
        if ratios[-1] > 3:
            assert replay.flat[k] > 8 * np.median(replay[band])
    assert (np.array(ratios) > 3).mean() >= 0.75


def test_domains_shift_colour_statistics() -> None:
    a, b = camera_params("synth_a"), camera_params("synth_b")
    assert a == camera_params("synth_a") and a != b
    assert camera_params("synth_a", seed=1) != a
    diffs = []
    for s in range(4):
        la = render_sample(s, "live", "synth_a", 0, SIZE, rng_seed=s)
        lb = render_sample(s, "live", "synth_b", 0, SIZE, rng_seed=s)
        la2 = render_sample(s, "live", "synth_a", 0, SIZE, rng_seed=s)
        assert np.array_equal(la["mask"], lb["mask"])  # same face, only the camera/scene differs
        m = la["mask"] > 0
        diffs.append(np.abs(la["rgb"][m].mean(0) - lb["rgb"][m].mean(0)).max())
        assert np.array_equal(la["rgb"], la2["rgb"])
    assert min(diffs) > 4.0


def test_depth_modality_live_relief_vs_flat_spoofs() -> None:
    c = slice(SIZE // 4, 3 * SIZE // 4)
    live_sd, replay_sd = [], []
    for s in range(8):
        for attack, out_list in (("live", live_sd), ("replay", replay_sd)):
            d = render_sample(s, attack, "dom", 0, SIZE, ("depth",), rng_seed=s)["depth"][..., 0]
            out_list.append(cv2.medianBlur(d, 5)[c, c].astype(float).std())
    assert np.median(live_sd) > 3 * np.median(replay_sd)


def test_ir_modality_replay_screens_are_dark() -> None:
    c = slice(SIZE // 4, 3 * SIZE // 4)
    live = [
        render_sample(s, "live", "dom", 0, SIZE, ("ir",), rng_seed=s)["ir"][c, c].mean() for s in range(6)
    ]
    replay = [
        render_sample(s, "replay", "dom", 0, SIZE, ("ir",), rng_seed=s)["ir"][c, c].mean() for s in range(6)
    ]
    assert np.median(replay) < 0.3 * np.median(live)


def test_generate_cache_counts_splits_and_idempotence(tmp_path) -> None:
    domains = ("d1", "d2")
    kw = dict(
        domains=domains,
        subjects_per_domain=4,
        videos_per_subject=2,
        frames_per_video=2,
        size=48,
        modalities=("rgb", "depth"),
        target="depth",
        seed=3,
        progress=False,
    )
    path = generate_synthetic(tmp_path / "c", **kw)
    reader = CropCacheReader(path)
    recs = reader.records()
    assert len(recs) == 2 * 4 * 2 * 3 * 2
    assert Counter(r.domain for r in recs) == {"d1": 48, "d2": 48}
    assert Counter(r.attack for r in recs) == {"live": 32, "print": 32, "replay": 32}
    assert len(reader.media_status()) == 2 * 4 * 2 * 3
    # 4 subjects per domain: 2 train, 1 dev, 1 test; splits are per subject.
    for dom in domains:
        subj_split = {(r.subject, r.split) for r in recs if r.domain == dom}
        assert len({s for s, _ in subj_split}) == 4 == len(subj_split)
        assert Counter(sp for _, sp in subj_split) == {"train": 2, "dev": 1, "test": 1}
        for split in ("train", "dev", "test"):
            assert {r.attack for r in recs if r.domain == dom and r.split == split} == {
                "live",
                "print",
                "replay",
            }
    for r in recs:
        assert r.modalities == ("rgb", "depth")
        assert r.label == (1 if r.attack == "live" else 0)
        tgt = reader.target(r.sample_id)
        if r.attack == "live":
            assert r.target == "depth" and tgt is not None and tgt.shape == (48, 48) and tgt.max() == 255
        else:
            assert r.target == "" and tgt is None
    assert reader.image(recs[0].sample_id, "depth").shape == (48, 48, 3)
    info = json.loads((path / "info.json").read_text())
    assert info["synth"]["subjects_per_domain"] == 4
    # Same parameters: nothing is rewritten.
    mtime = (path / "crops.lmdb" / "data.mdb").stat().st_mtime_ns
    generate_synthetic(tmp_path / "c", **kw)
    assert (path / "crops.lmdb" / "data.mdb").stat().st_mtime_ns == mtime
    # Different parameters: a clear error naming the folder.
    with pytest.raises(SynthCacheMismatch, match=str(tmp_path / "c")):
        generate_synthetic(tmp_path / "c", **{**kw, "seed": 4})
    # The same generation elsewhere gives byte-identical crops.
    other = CropCacheReader(generate_synthetic(tmp_path / "c2", **kw))
    sid = recs[5].sample_id
    assert np.array_equal(other.image(sid), reader.image(sid))


def test_generate_resumes_interrupted_run(tmp_path) -> None:
    kw = dict(domains=("d1",), subjects_per_domain=3, frames_per_video=1, size=32, seed=0, progress=False)
    full = CropCacheReader(generate_synthetic(tmp_path / "full", **kw))
    part = generate_synthetic(tmp_path / "part", **kw)
    # Simulate an interruption: drop some media items, then run again.
    import lmdb

    env = lmdb.open(str(part / "crops.lmdb"))
    with env.begin(write=True) as txn:
        for mid in ("d1-s00-v0-print", "d1-s02-v0-live"):
            txn.delete(f"done/{mid}".encode())
            txn.delete(f"meta/{mid}-f00".encode())
            txn.delete(f"img/{mid}-f00/rgb".encode())
    with env.begin() as txn:
        assert sum(1 for k, _ in txn.cursor() if k.startswith(b"meta/")) == 7
    env.close()
    info = json.loads((part / "info.json").read_text())
    (part / "info.json").write_text(json.dumps({**info, "synth_complete": False}))
    generate_synthetic(part, **kw)
    resumed = CropCacheReader(part)
    assert [r.sample_id for r in resumed.records()] == [r.sample_id for r in full.records()]
    assert np.array_equal(resumed.image("d1-s02-v0-live-f00"), full.image("d1-s02-v0-live-f00"))


def test_generate_rejects_bad_parameters(tmp_path) -> None:
    with pytest.raises(ValueError, match="subjects_per_domain"):
        generate_synthetic(tmp_path / "x", subjects_per_domain=2, progress=False)
    with pytest.raises(ValueError, match="attacks"):
        generate_synthetic(tmp_path / "x", attacks=("mask",), progress=False)
    with pytest.raises(ValueError, match="target"):
        generate_synthetic(tmp_path / "x", target="edges", progress=False)


def test_learnable_but_not_trivial(tmp_path) -> None:
    from sklearn.linear_model import LogisticRegression

    path = generate_synthetic(
        tmp_path / "lr",
        domains=("synth_a", "synth_b"),
        subjects_per_domain=8,
        videos_per_subject=2,
        frames_per_video=1,
        size=64,
        seed=0,
        progress=False,
    )
    reader = CropCacheReader(path)
    r = _radius(64)
    bands = [(0.02, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.8)]

    def feats(img: np.ndarray) -> list[float]:
        g = _gray(img)
        power = np.abs(np.fft.fftshift(np.fft.fft2(g - g.mean()))) ** 2
        return [float(np.log(power[(r >= lo) & (r < hi)].mean() + 1e-9)) for lo, hi in bands]

    x, y, split = [], [], []
    for rec in reader.records():
        x.append(feats(reader.image(rec.sample_id)))
        y.append(rec.label)
        split.append(rec.split)
    x, y, split = np.array(x), np.array(y), np.array(split)
    train, test = split == "train", split != "train"
    clf = LogisticRegression(class_weight="balanced", max_iter=2000).fit(x[train], y[train])
    pred = clf.predict(x[test])
    bal_acc = 0.5 * ((pred[y[test] == 1] == 1).mean() + (pred[y[test] == 0] == 0).mean())
    assert bal_acc > 0.7  # learnable on held-out subjects …
    # … but a single global brightness statistic is near chance.
    bright = np.array([[_gray(reader.image(rec.sample_id)).mean()] for rec in reader.records()])
    clf_b = LogisticRegression(class_weight="balanced").fit(bright[train], y[train])
    pb = clf_b.predict(bright[test])
    bal_b = 0.5 * ((pb[y[test] == 1] == 1).mean() + (pb[y[test] == 0] == 0).mean())
    assert bal_b < bal_acc


@pytest.mark.parametrize("as_video", [False, True])
def test_write_folder_layout(tmp_path, as_video: bool) -> None:
    out = write_folder_layout(
        tmp_path / "raw",
        domain="lab",
        n_live=2,
        n_print=1,
        n_replay=1,
        size=96,
        seed=1,
        as_video=as_video,
        frames=3,
    )
    ext = ".avi" if as_video else ".png"
    files = {sub: sorted((out / sub).glob(f"*{ext}")) for sub in ("live", "spoof/print", "spoof/replay")}
    assert [len(files[k]) for k in ("live", "spoof/print", "spoof/replay")] == [2, 1, 1]
    for f in files["live"]:
        if as_video:
            cap = cv2.VideoCapture(str(f))
            frames = []
            while True:
                ok, fr = cap.read()
                if not ok:
                    break
                frames.append(fr)
            cap.release()
            assert len(frames) == 3 and frames[0].shape == (96, 96, 3)
            img = frames[0]
        else:
            img = cv2.imread(str(f))
            assert img.shape == (96, 96, 3)
        assert img.std() > 5
    again = write_folder_layout(
        tmp_path / "raw2", domain="lab", n_live=2, n_print=1, n_replay=1, size=96, seed=1
    )
    if not as_video:
        name = files["live"][0].name
        assert np.array_equal(cv2.imread(str(files["live"][0])), cv2.imread(str(again / "live" / name)))


def test_scene_framing_places_a_small_face() -> None:
    out = render_sample(2, "live", "dom", 0, 128, rng_seed=4, face_scale=0.15, face_center=(40.0, 80.0))
    m = out["mask"] > 0
    assert 0.02 < m.mean() < 0.1
    ys, xs = np.nonzero(m)
    assert abs(xs.mean() - 40) < 6 and abs(ys.mean() - 80) < 6
    for attack in ("print", "replay"):
        img = render_sample(2, attack, "dom", 0, 128, rng_seed=4, face_scale=0.15, face_center=(40.0, 80.0))[
            "rgb"
        ]
        assert img.shape == (128, 128, 3)


# ------------------------------------------------------------------ domain_shift (harder DG protocol)
DOMS = ("synth_a", "synth_b", "synth_c", "synth_d")


def test_domain_shift_spreads_domain_colour_statistics() -> None:
    """The same live faces seen by the four cameras: the spread of their mean face colour across domains grows
    with ``domain_shift``; shift 1 is the default camera."""
    for d in DOMS:
        assert camera_params(d, shift=1.0) == camera_params(d)
        assert camera_params(d, shift=2.5) != camera_params(d)

    def spread(shift: float) -> float:
        out = []
        for s in range(3):
            means = []
            for d in DOMS:
                r = render_sample(s, "live", d, 0, SIZE, rng_seed=s, domain_shift=shift)
                means.append(r["rgb"][r["mask"] > 0].mean(0))
            out.append(np.ptp(np.array(means), axis=0).max())
        return float(np.median(out))

    assert spread(2.5) > 1.5 * spread(1.0)
    with pytest.raises(ValueError, match="domain_shift"):
        camera_params("synth_a", shift=-1.0)


def test_domain_shift_fades_rgb_texture_but_keeps_depth_and_ir_cues() -> None:
    """At shift 2.5 the held-out camera of the synthetic DG protocol (synth_d) is blurrier and lower in
    resolution: the fine-detail energy of the RGB images drops, while depth (relief vs flat) and IR (dark
    screens) still separate live from replay."""
    c = slice(SIZE // 4, 3 * SIZE // 4)
    hf = {1.0: [], 2.5: []}
    for shift in hf:
        for s in range(4):
            for attack in ("live", "print", "replay"):
                hf[shift].append(_hf_ratio(render_sample(s, attack, "synth_d", 0, SIZE, rng_seed=s,
                                                         domain_shift=shift)["rgb"]))
    assert np.median(hf[2.5]) < 0.5 * np.median(hf[1.0])
    live_sd, replay_sd, live_ir, replay_ir = [], [], [], []
    for s in range(6):
        lv = render_sample(s, "live", "synth_d", 0, SIZE, ("depth", "ir"), rng_seed=s, domain_shift=2.5)
        rp = render_sample(s, "replay", "synth_d", 0, SIZE, ("depth", "ir"), rng_seed=s, domain_shift=2.5)
        live_sd.append(cv2.medianBlur(lv["depth"][..., 0], 5)[c, c].astype(float).std())
        replay_sd.append(cv2.medianBlur(rp["depth"][..., 0], 5)[c, c].astype(float).std())
        live_ir.append(lv["ir"][c, c].mean())
        replay_ir.append(rp["ir"][c, c].mean())
    assert np.median(live_sd) > 2 * np.median(replay_sd)
    assert np.median(replay_ir) < 0.3 * np.median(live_ir)


def test_domain_shift_is_recorded_only_when_not_default(tmp_path) -> None:
    kw = dict(domains=("d1",), subjects_per_domain=3, frames_per_video=1, size=32, progress=False)
    default = generate_synthetic(tmp_path / "a", **kw)
    explicit = generate_synthetic(tmp_path / "b", **kw, domain_shift=1.0)
    assert (default / "info.json").read_text() == (explicit / "info.json").read_text()
    assert "domain_shift" not in json.loads((default / "info.json").read_text())["synth"]
    ra, rb = CropCacheReader(default), CropCacheReader(explicit)
    for rec in ra.records():
        assert np.array_equal(ra.image(rec.sample_id), rb.image(rec.sample_id))
    with pytest.raises(SynthCacheMismatch):
        generate_synthetic(tmp_path / "a", **kw, domain_shift=2.0)
    shifted = generate_synthetic(tmp_path / "c", **kw, domain_shift=2.0)
    assert json.loads((shifted / "info.json").read_text())["synth"]["domain_shift"] == 2.0
    rc = CropCacheReader(shifted)
    assert not all(np.array_equal(ra.image(r.sample_id), rc.image(r.sample_id)) for r in ra.records())


def test_synth_config_domain_shift_is_additive() -> None:
    from openfas.config import ConfigError, load_config

    base = load_config(None, [])
    assert "domain_shift" not in base.to_dict()["data"]["synth"]  # default dump (and cache digest) unchanged
    cfg = load_config(None, ["data.synth.domain_shift=2.5"])
    assert cfg.data.synth.domain_shift == 2.5 and cfg.to_dict()["data"]["synth"]["domain_shift"] == 2.5
    with pytest.raises(ConfigError):
        load_config(None, ["data.synth.domain_shift=-1"])
