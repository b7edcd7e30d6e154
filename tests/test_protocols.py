"""Threshold policies, per-species APCER (3+ species), video level, and protocol tables with hand-computed values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from openfas.eval import metrics as M
from openfas.eval.protocols import load_run, mean_std, protocol_of, protocol_table
from openfas.eval.scores import ScoreTable, choose_threshold, evaluate_tables

# live: 0.9 0.8 0.7 0.3 ; print: 0.6 0.2 ; replay: 0.75 0.5 0.1 0.05 ; mask: 0.85 0.4 0.35
S3 = np.array([0.9, 0.8, 0.7, 0.3, 0.6, 0.2, 0.75, 0.5, 0.1, 0.05, 0.85, 0.4, 0.35])
Y3 = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
A3 = np.array(["live"] * 4 + ["print"] * 2 + ["replay"] * 4 + ["mask"] * 3)


def _table(scores, labels, attacks, videos=None, domain="d") -> ScoreTable:  # noqa: ANN001
    n = len(scores)
    videos = videos if videos is not None else [f"v{i}" for i in range(n)]
    return ScoreTable([f"s{i}" for i in range(n)], list(videos), [domain] * n, list(attacks),
                      np.asarray(labels), np.asarray(scores, dtype=float))


def test_apcer_three_species_by_hand() -> None:
    r = M.apcer_bpcer(S3, Y3, A3, 0.5)
    # accepted (≥ 0.5): print 0.6 → 1/2 ; replay 0.75, 0.5 (tie) → 2/4 ; mask 0.85 → 1/3 ; live rejected 0.3 → 1/4
    assert r["apcer_per_attack"] == {"mask": pytest.approx(1 / 3), "print": 0.5, "replay": 0.5}
    assert r["apcer"] == 0.5 and r["bpcer"] == 0.25
    assert r["apcer_pooled"] == pytest.approx(4 / 9)
    assert r["acer"] == pytest.approx(0.375) and r["hter"] == pytest.approx((4 / 9 + 0.25) / 2)
    # APCER ≤ 1/3 per species: print (2) may accept 0 → τ > 0.6 ; replay (4) may accept 1 → τ > 0.5 ;
    # mask (3) may accept 1 → τ > 0.4  ⇒ τ = nextafter(0.6); live rejected: 0.3 → BPCER 1/4
    b, t = M.bpcer_at_apcer(S3, Y3, A3, 1 / 3)
    assert t == np.nextafter(0.6, 1) and b == 0.25
    # APCER ≤ 0.5: print 1 → τ > 0.2 ; replay 2 → τ > 0.1 ; mask 1 → τ > 0.4 ⇒ τ = nextafter(0.4)
    assert M.threshold_at_apcer(S3, Y3, A3, 0.5) == np.nextafter(0.4, 1)


def test_score_set_matches_brute_force_with_four_species() -> None:
    rng = np.random.default_rng(3)
    n = 500
    y = (rng.random(n) < 0.35).astype(int)
    s = np.round(rng.normal(y * 1.0, 1.0), 1)  # many ties
    a = np.where(y == 1, "live", rng.choice(["print", "replay", "mask", "other"], size=n))
    ss = M.ScoreSet(s, y, a)
    live, att = s[y == 1], s[y == 0]
    # AUC: Mann–Whitney with half ties, evaluated directly
    u = ((live[:, None] > att[None, :]).sum() + 0.5 * (live[:, None] == att[None, :]).sum()) / (live.size * att.size)
    assert ss.auc() == pytest.approx(u, abs=1e-12)
    for t in (-0.5, 0.0, 0.3, 1.1):
        r = ss.apcer_bpcer(t)
        for sp in ("print", "replay", "mask", "other"):
            assert r["apcer_per_attack"][sp] == pytest.approx(np.mean(s[a == sp] >= t))
        assert r["apcer"] == max(r["apcer_per_attack"].values())
        assert r["bpcer"] == pytest.approx(np.mean(live < t))
    roc = ss.roc()
    for t, fpr, tpr in zip(roc["thresholds"][1:50], roc["fpr"][1:50], roc["tpr"][1:50], strict=True):
        assert fpr == pytest.approx(np.mean(att >= t)) and tpr == pytest.approx(np.mean(live >= t))


def test_factorize_few_and_many_values() -> None:
    rng = np.random.default_rng(0)
    few = rng.choice(["replay", "print", "mask"], size=1000)
    codes, names = M.factorize(few)
    assert names == ["mask", "print", "replay"] and (np.array(names)[codes] == few).all()
    many = np.array([f"v{i % 50:02d}" for i in rng.permutation(1000)])  # > 32 distinct: np.unique fallback
    codes, names = M.factorize(many)
    assert len(names) == 50 and (np.array(names)[codes] == many).all()
    codes, names = M.factorize(["b", "a", "b"])  # a plain list
    assert names == ["a", "b"] and codes.tolist() == [1, 0, 1]


def test_dev_threshold_policies_by_hand() -> None:
    dev = _table([0.9, 0.7, 0.65, 0.4, 0.6, 0.3, 0.8, 0.2], [1, 1, 1, 1, 0, 0, 0, 0],
                 ["live"] * 4 + ["print", "print", "replay", "replay"])
    test = _table(S3, Y3, A3)
    # dev EER: candidates … τ=0.65 → FAR 1/4 (0.8), FRR 1/4 (0.4) → |diff| 0 ; so τ = 0.65
    assert choose_threshold("dev_eer", test, dev) == 0.65
    # dev APCER ≤ 0.5: print (2) may accept 1 → τ > 0.3 ; replay (2) may accept 1 → τ > 0.2 ⇒ nextafter(0.3)
    t = choose_threshold("dev_apcer", test, dev, apcer_target=0.5)
    assert t == np.nextafter(0.3, 1)
    out = evaluate_tables(test, dev, "dev_apcer", apcer_target=0.5, video_level=False)
    assert out["threshold"]["policy"] == "dev_apcer" and out["threshold"]["apcer_target"] == 0.5
    assert "dev" in out["threshold"]["source"] and "APCER" in out["threshold"]["source"]
    # on test at τ just above 0.3: print 0.6 → 1/2 ; replay 0.75 0.5 → 2/4 ; mask 0.85 0.4 0.35 → 3/3 ; live 0.3 → 1/4
    f = out["frame"]
    assert f["apcer_per_attack"] == {"mask": 1.0, "print": 0.5, "replay": 0.5}
    assert f["apcer"] == 1.0 and f["bpcer"] == 0.25 and f["acer"] == 0.625
    assert out["headline"]["level"] == "frame"
    fixed = evaluate_tables(test, None, "fixed", 0.5, video_level=False)
    assert fixed["frame"]["acer"] == pytest.approx(0.375)
    eer_t = evaluate_tables(test, None, "eer", video_level=False)["threshold"]["value"]
    assert eer_t == M.eer(S3, Y3)[1]
    with pytest.raises(ValueError, match="needs dev"):
        evaluate_tables(test, None, "dev_apcer")
    with pytest.raises(ValueError, match="unknown threshold policy"):
        evaluate_tables(test, None, "median")


def test_video_level_unequal_frame_counts() -> None:
    # video a (live): 3 frames 0.9 0.6 0.3 → 0.6 ; b (live): 1 frame 0.2 ; c (print): 2 frames 0.5 0.7 → 0.6 ;
    # d (replay): 4 frames 0.1 0.1 0.1 0.5 → 0.2
    s = [0.9, 0.6, 0.3, 0.2, 0.5, 0.7, 0.1, 0.1, 0.1, 0.5]
    y = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    a = ["live"] * 4 + ["print"] * 2 + ["replay"] * 4
    v = ["a", "a", "a", "b", "c", "c", "d", "d", "d", "d"]
    vs, vl, va, ids = M.video_level(s, y, a, v)
    assert ids.tolist() == ["a", "b", "c", "d"] and vs == pytest.approx([0.6, 0.2, 0.6, 0.2])
    assert vl.tolist() == [1, 1, 0, 0] and va.tolist() == ["live", "live", "print", "replay"]
    out = evaluate_tables(_table(s, y, a, v), None, "fixed", 0.55)
    vid = out["video"]
    # at 0.55: live a accepted, b rejected → BPCER 1/2 ; print c accepted → 1 ; replay d rejected → 0
    assert vid["bpcer"] == 0.5 and vid["apcer_per_attack"] == {"print": 1.0, "replay": 0.0}
    assert out["n_test_videos"] == 4 and out["headline"]["level"] == "video"
    assert out["video_threshold"]["value"] == 0.55


def test_mean_std_by_hand() -> None:
    assert mean_std([1, 2, 3, 4]) == pytest.approx((2.5, math.sqrt(1.25)))
    assert mean_std([1, 2, 3, 4], ddof=1) == pytest.approx((2.5, math.sqrt(5 / 3)))
    assert mean_std([0.3]) == (0.3, 0.0)
    with pytest.raises(ValueError):
        mean_std([])


def test_protocol_of_rules() -> None:
    assert protocol_of({"experiment": {"name": "cdcn-oulu-p3_2"}}) == ("OULU-P3", "3_2")
    assert protocol_of({"data": {"cache": "/data/oulu/Protocol_4_6"}}) == ("OULU-P4", "4_6")
    assert protocol_of({"data": {"protocol": "Protocol_1"}}) == ("OULU-P1", None)
    assert protocol_of({"data": {"train_domains": ["oulu", "casia", "replay"], "test_domains": ["msu"]}}) == (
        "OCI-M", None)
    assert protocol_of({"data": {"train_domains": ["casia", "replay_attack", "msu"],
                                 "test_domains": ["oulu_npu"]}}) == ("ICM-O", None)
    assert protocol_of({"experiment": {"name": "demo"}}) == ("custom", None)


def _fake_run(root: Path, name: str, config: dict, head: dict, policy: str = "dev_eer") -> Path:
    d = root / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(config))
    (d / "metrics.json").write_text(json.dumps({"headline": {**head, "level": "video"},
                                                "threshold": {"policy": policy, "value": 0.5}}))
    return d


def test_protocol_table_oulu_and_dg(tmp_path: Path) -> None:
    runs = [_fake_run(tmp_path, "p1", {"experiment": {"name": "oulu-p1"}, "model": {"name": "cdcn"}},
                      {"apcer": 0.012, "bpcer": 0.008, "acer": 0.010})]
    acers = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06]
    for k, acer in enumerate(acers, 1):
        runs.append(_fake_run(tmp_path, f"p3_{k}", {"experiment": {"name": f"oulu-p3_{k}"}, "model": {"name": "cdcn"}},
                              {"apcer": 2 * acer, "bpcer": 0.0, "acer": acer}))
    dg = {"M": ["oulu", "casia", "replay"], "O": ["casia", "replay", "msu"]}
    for method, hters in (("cdcn", {"M": 0.1389, "O": 0.1645}), ("ldcnet", {"M": 0.05, "O": 0.1})):
        for target, train in dg.items():
            cfg = {"data": {"train_domains": train, "test_domains": [{"M": "msu", "O": "oulu"}[target]]},
                   "model": {"name": method}}
            runs.append(_fake_run(tmp_path, f"{method}-{target}", cfg, {"hter": hters[target], "auc": 0.9},
                                  policy="eer"))
    table = protocol_table(runs)
    lines = table.splitlines()
    p1 = next(line for line in lines if line.startswith("1 "))
    assert [c.strip() for c in p1.split("|")] == ["1", "cdcn", "1.20", "0.80", "1.00"]
    p3 = next(line for line in lines if line.startswith("3 "))
    mu, sd = np.mean(acers), np.std(acers)  # population std, computed independently
    assert [c.strip() for c in p3.split("|")][4] == f"{100 * mu:.2f}±{100 * sd:.2f}"  # 3.50±1.71
    assert [c.strip() for c in p3.split("|")][2] == f"{200 * mu:.2f}±{200 * sd:.2f}"
    header = next(line for line in lines if line.startswith("Method"))
    assert header.index("OCI-M HTER(%)") < header.index("ICM-O HTER(%)")
    cdcn = next(line for line in lines if line.startswith("cdcn"))
    assert [c.strip() for c in cdcn.split("|")] == ["cdcn", "13.89", "90.00", "16.45", "90.00"]
    assert "eer (video level)" in table and "dev_eer (video level)" in table
    assert load_run(runs[1]).protocol == "OULU-P3" and load_run(runs[1]).sub == "3_1"


def test_load_run_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="metrics.json"):
        load_run(tmp_path)
    (tmp_path / "metrics.json").write_text("{bad")
    with pytest.raises(ValueError, match=r"metrics\.json: not valid JSON"):
        load_run(tmp_path)
