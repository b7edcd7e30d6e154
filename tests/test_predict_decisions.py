"""`openfas predict` decisions: non-zero exit when any input could not be scored (with a summary line), folders
taken without their sub-folders unless --recursive, and --explain saying how the threshold was chosen."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from deploy_fixtures import faces_scene, synth_face
from typer.testing import CliRunner

from openfas.cli import app


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
