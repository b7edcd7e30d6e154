"""`openfas predict` decisions: non-zero exit when any input could not be scored (with a summary line), folders
taken without their sub-folders unless --recursive (and saying so when only sub-folders hold media), CSV rows
written as inputs are scored, and --explain saying how the threshold was chosen."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import cv2
import numpy as np
from deploy_fixtures import faces_scene, synth_face
from typer.testing import CliRunner

from openfas.cli import app
from openfas.deploy.predictor import Predictor


def _run(args: list[str]) -> tuple[int, dict | None, str]:
    res = CliRunner().invoke(app, ["predict", *args, "--no-progress"])
    try:
        data = json.loads(res.stdout)
    except json.JSONDecodeError:
        data = None
    return res.exit_code, data, res.stderr


def test_exit_code_summary_and_folder_depth(ckpt: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    (folder / "meta").mkdir(parents=True)
    cv2.imwrite(str(folder / "a.png"), faces_scene(2, 100))
    cv2.imwrite(str(folder / "b.jpg"), synth_face(1, 140))
    (folder / "meta" / "clip.webm").write_bytes(b"\x1aE\xdf\xa3 not really a video")
    (folder / "notes.txt").write_text("ignored: not media")

    code, data, err = _run([str(ckpt), str(folder)])  # only a.png and b.jpg: the meta/ folder is not entered
    assert code == 0, err
    assert sorted({Path(r["file"]).name for r in data["results"]}) == ["a.png", "b.jpg"]
    assert "2 input(s): 2 scored, 0 without a face, 0 unreadable, 0 not found" in err

    code, data, err = _run([str(ckpt), str(folder), "--recursive"])
    assert code == 1
    assert "clip.webm" in {Path(r["file"]).name for r in data["results"]}
    assert "3 input(s): 2 scored, 0 without a face, 1 unreadable, 0 not found" in err

    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((120, 160, 3), 128, np.uint8))
    code, data, err = _run([str(ckpt), str(folder / "a.png"), str(blank), str(tmp_path / "gone.jpg")])
    assert code == 1
    assert "3 input(s): 1 scored, 1 without a face, 0 unreadable, 1 not found" in err
    errors = {Path(r["file"]).name: r.get("error") for r in data["results"] if r.get("error")}
    assert errors == {"blank.png": "no face found", "gone.jpg": "not found"}

    code, _, err = _run([str(ckpt), str(blank)])  # the one input has no face: not a success
    assert code == 1 and "0 scored, 1 without a face" in err


def test_media_only_in_sub_folders_points_to_recursive(ckpt: Path, tmp_path: Path) -> None:
    folder = tmp_path / "shots"
    for sub in ("alice", "bob/day2"):
        (folder / sub).mkdir(parents=True)
    cv2.imwrite(str(folder / "alice" / "1.png"), synth_face(0, 120))
    cv2.imwrite(str(folder / "bob" / "day2" / "2.jpg"), synth_face(1, 120))
    (folder / "bob" / "notes.txt").write_text("not media")
    (folder / "readme.txt").write_text("not media either")

    code, data, err = _run([str(ckpt), str(folder)])
    assert code == 2 and data is None
    assert err.strip().splitlines() == ["error: no image or video files directly in the given inputs; their "
                                        "sub-folders hold 2 media file(s): add --recursive to read them"]
    code, data, err = _run([str(ckpt), str(folder), "--recursive"])
    assert code == 0, err
    assert sorted(Path(r["file"]).name for r in data["results"]) == ["1.png", "2.jpg"]

    res = CliRunner().invoke(app, ["calibrate", str(ckpt), str(folder), "--out", str(tmp_path / "site.safetensors")])
    assert res.exit_code == 2 and "sub-folders hold 2 media file(s): add --recursive" in res.stderr

    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    code, _, err = _run([str(ckpt), str(empty)])
    assert code == 2 and "no image or video files in the given inputs" in err and "--recursive" not in err


def test_csv_rows_are_written_as_inputs_are_scored(ckpt: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    folder = tmp_path / "in"
    folder.mkdir()
    for i, name in enumerate(("a.png", "b.png", "c.png")):
        cv2.imwrite(str(folder / name), synth_face(i, 120))
    out = tmp_path / "scores.csv"
    on_disk: dict[str, str] = {}  # the CSV file as it stood when each input started to be scored
    real_predict = Predictor.predict

    def spy(self: Predictor, image: Path, color: str = "bgr"):  # noqa: ANN202
        on_disk[Path(image).name] = out.read_text() if out.exists() else ""
        if Path(image).name == "c.png":
            raise RuntimeError("the machine went away")  # not an input error: the run stops here
        return real_predict(self, image, color)

    monkeypatch.setattr(Predictor, "predict", spy)
    res = CliRunner().invoke(app, ["predict", str(ckpt), str(folder), "--format", "csv", "--out", str(out),
                                   "--no-progress"])
    assert isinstance(res.exception, RuntimeError)

    def names(text: str) -> list[str]:
        return [Path(r["file"]).name for r in csv.DictReader(io.StringIO(text))]

    assert names(on_disk["b.png"]) == ["a.png"]  # a.png's row was on disk while b.png was pending
    assert names(on_disk["c.png"]) == ["a.png", "b.png"]
    kept = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [Path(r["file"]).name for r in kept] == ["a.png", "b.png"]
    assert all(float(r["score"]) >= 0 and r["error"] == "" for r in kept)
