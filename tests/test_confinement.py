"""Issue 26, principle 1: names from files are labels, never paths, and a shared model reads nothing outside
its own folder. Each bad name is refused with one ValueError line naming the rule, before any folder is made."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import rknet
from conftest import run_cli
from rknet.io.layout import PRETRAINED_CONFIG
from rknet.methods.registry import resolve_method

HEUN = {"a": [[0, 0], [1, 0]], "b": [0.5, 0.5], "c": [0, 1]}
BAD_NAMES = {  # name -> the words of the refusal
    "../../../../tmp/x": "path separator", "a/b": "path separator", "a\\b": "path separator",
    "..": "path separator", ".hidden": "leading '.'", "x\ny": "control", "red\x1b[31m": "control",
    "tab\there": "control", "nul\x00": "control", "x" * 65: "at most 64", "": "non-empty", "   ": "non-empty",
}


@pytest.mark.parametrize("name", list(BAD_NAMES))
def test_a_tableau_name_that_is_not_a_label_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=BAD_NAMES[name]) as error:
        rknet.ButcherTableau(**HEUN, name=name)
    assert "\n" not in str(error.value) and "\x1b" not in str(error.value)


def test_a_bad_name_from_train_options_makes_no_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="tableau name"):
        rknet.train({"data": "circles", "epochs": 1, "widths": [2, 2], "steps": 1,
                     "method": {**HEUN, "name": "../../escaped"}}, log=lambda line: None)
    assert not (tmp_path.parent / "escaped").exists()
    assert not list(tmp_path.rglob("*escaped*"))


def test_a_bad_name_in_a_tableau_file_ends_in_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({**HEUN, "name": "a/b"}))
    with pytest.raises(ValueError, match=f"tableau file {path}: tableau name"):
        resolve_method(str(path))
    code, _, err = run_cli(["train", "--data", "circles", "--method", str(path), "--epochs", "1",
                            "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "path separator" in err
    assert not (tmp_path / "run").exists()


def test_good_names_still_work() -> None:
    for name in ("my-rk_2", "Heun 2 (mine)", "ralston3"):
        assert rknet.ButcherTableau(**HEUN, name=name).name == name
    assert rknet.ButcherTableau(**HEUN, name="  padded ").name == "padded"


def saved_with_method(tmp_path: Path, method: object) -> Path:
    folder = rknet.save_pretrained(rknet.ODENet(in_channels=2, num_classes=2, widths=(2, 2)), tmp_path / "shared")
    config = json.loads((folder / PRETRAINED_CONFIG).read_text())
    (folder / PRETRAINED_CONFIG).write_text(json.dumps({**config, "method": method}))
    return folder


def test_a_shared_model_naming_a_file_on_the_loading_machine_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({**HEUN, "name": "outside"}))
    read = []
    folder = saved_with_method(tmp_path, str(outside))
    original = Path.read_text
    Path.read_text = lambda self, *a, **k: read.append(self) or original(self, *a, **k)  # type: ignore[method-assign]
    try:
        with pytest.raises(ValueError, match="names its method by a file path"):
            rknet.from_pretrained(folder)
    finally:
        Path.read_text = original  # type: ignore[method-assign]
    assert outside not in read
    with pytest.raises(ValueError, match="names its method by a file path"):
        rknet.load(folder)


def test_a_shared_model_with_its_tableau_by_value_loads(tmp_path: Path) -> None:
    folder = saved_with_method(tmp_path, {**HEUN, "name": "mine"})
    assert rknet.from_pretrained(folder).spec.method.name == "mine"
    assert os.path.commonpath([folder, tmp_path]) == str(tmp_path)
