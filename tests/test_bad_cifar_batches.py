"""Bad CIFAR batches: restricted unpickling refuses every global but the allowed ones, and never runs code.

Part of the bad-input suite (issue 13): each explicit test feeds one bad input and asserts the exception
type or exit code and the first words of the one-line message; the Hypothesis tests throw random input at
the same readers and assert that each loads cleanly or ends in a one-line ValueError. Add a test for every
new way in which bad input is found to slip through.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from bad_input import FUZZ, TINY, RunsShell, cifar_folder, one_line, refused
from conftest import run_cli
from rknet.data.safe_pickle import ALLOWED_GLOBALS


class OpensFile:
    """Unpickling calls builtins.open, creating the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.mark.parametrize(("payload", "refused_global"), [(RunsShell, r"(posix|nt)\.system"),
                                                         (OpensFile, r"(io|builtins)\.open")])
def test_malicious_cifar_batch_is_refused_and_never_runs(tmp_path, payload, refused_global):
    marker = tmp_path / "MARKER"
    batch = cifar_folder(tmp_path, {b"data": payload(marker), b"labels": [1]})
    message = refused(f"cifar10:{tmp_path}")
    assert re.match(rf"cifar10: {re.escape(str(batch))} refused: its pickle asks for {refused_global}, which a "
                    "CIFAR batch never holds", message), message
    assert not marker.exists()


def test_malicious_cifar_batch_on_the_command_line(tmp_path, capsys):
    marker = tmp_path / "MARKER"
    cifar_folder(tmp_path, {b"data": RunsShell(marker), b"labels": [1]})
    code, _, err = run_cli(["train", "--data", f"cifar10:{tmp_path}", "--out", str(tmp_path / "run"), *TINY], capsys)
    assert code == 2 and one_line(err).startswith("rknet train: error: cifar10: ")
    assert "refused: its pickle asks for" in err and not marker.exists() and not (tmp_path / "run").exists()


def test_cifar_labels_must_be_integers(tmp_path):
    cifar_folder(tmp_path, {b"data": np.zeros((2, 3072), np.uint8), b"labels": [1.7, 2.0]})
    assert re.match(r"cifar10: \S+test_batch: labels\[0\] = 1.7 is not an integer", refused(f"cifar10:{tmp_path}"))


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CIFAR-10 folder whose test batch each fuzzing example replaces."""
    root = tmp_path_factory.mktemp("cifar")
    cifar_folder(root, {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]})
    return root


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_as_a_cifar_batch_are_refused_in_one_line(cifar_root, data):
    (cifar_root / "cifar-10-batches-py" / "test_batch").write_bytes(data)
    message = refused(f"cifar10:{cifar_root}")
    assert message.startswith(f"cifar10: {cifar_root / 'cifar-10-batches-py' / 'test_batch'} ")


DANGEROUS = [("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"),
             ("builtins", "open"), ("builtins", "getattr"), ("subprocess", "Popen"), ("numpy", "load"),
             ("numpy.lib.npyio", "load"), ("pickle", "loads"), ("torch", "load"), ("shutil", "rmtree")]
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}(\.[A-Za-z_][A-Za-z0-9_]{0,10}){0,2}", fullmatch=True)


@FUZZ
@given(st.one_of(st.sampled_from(DANGEROUS), st.tuples(NAMES, NAMES)))
def test_any_global_but_the_allowed_ones_is_refused_unlooked_up(cifar_root, target):
    module, name = target
    crafted = f"c{module}\n{name}\n(S'touch {cifar_root}/MARKER'\ntR.".encode()  # protocol 0: module.name(arg)
    (cifar_root / "cifar-10-batches-py" / "test_batch").write_bytes(crafted)
    if target in ALLOWED_GLOBALS:
        event("allowed global")
        return
    assert re.match(rf"cifar10: \S+test_batch refused: its pickle asks for {re.escape(module)}\.{re.escape(name)},",
                    refused(f"cifar10:{cifar_root}"))
    assert not (cifar_root / "MARKER").exists()
