"""Shareable models: save_pretrained / from_pretrained (safetensors + config.json), rknet.load of every
form, the safetensors reader's checks, and torch.export / ONNX export of each block type."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

import rknet
from rknet.io.safetensors import load_tensors, save_tensors


def trained_in_place(net: rknet.ODENet, x: torch.Tensor) -> rknet.ODENet:
    """A few training-mode passes, so that batch-norm running statistics differ from their start."""
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(x * 2 + 1)
    return net.eval()


@pytest.mark.parametrize("options", [
    {"norm": "batch"},
    {"method": "hamiltonian", "norm": "tv"},
    {"method": rknet.ButcherTableau([[0, 0], ["2/3", 0]], ["1/4", "3/4"], [0, "2/3"], name="mine"),
     "norm": "batch", "layer": "double", "t_controls": [0, 2, 4]},
])
def test_round_trip_gives_identical_outputs_in_eval_mode(tmp_path: Path, options) -> None:
    x = torch.randn(6, 3, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rknet.GridWarning)
        net = trained_in_place(rknet.ODENet(in_channels=3, num_classes=7, widths=(4, 6), **options), x)
    buffers = {name: b for name, b in net.named_buffers() if "running_mean" in name}
    if options.get("norm") == "batch":
        assert buffers and any(b.abs().sum() > 0 for b in buffers.values())  # statistics really moved
    rknet.save_pretrained(net, tmp_path / "shared")
    loaded = rknet.from_pretrained(tmp_path / "shared")
    assert not loaded.training and loaded.spec == net.spec
    assert torch.equal(loaded(x), net(x))
    for name, tensor in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert torch.equal(rknet.load(tmp_path / "shared")(x), net(x))
    assert torch.equal(rknet.load(tmp_path / "shared" / "model.safetensors")(x), net(x))


def test_config_json_is_plain_spec_with_a_format_marker(tmp_path: Path) -> None:
    net = rknet.ODENet(in_channels=1, num_classes=3, widths=(4, 4))
    rknet.save_pretrained(net, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config.pop("model_type") == "rknet.ODENet" and config.pop("format_version") == 1
    assert config == net.spec.to_dict()
    config["model_type"] = "bert"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not describe an rknet model"):
        rknet.from_pretrained(tmp_path)


def test_the_safetensors_package_reads_ours_and_we_read_its(tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.torch")
    tensors = {"a": torch.randn(3, 4), "b": torch.arange(5), "c": torch.tensor(2.5, dtype=torch.bfloat16),
               "d": torch.tensor([True, False]), "e": torch.zeros(0, 3, dtype=torch.float16)}
    save_tensors(tensors, tmp_path / "ours.safetensors", metadata={"format": "pt"})
    theirs = st.load_file(tmp_path / "ours.safetensors")
    assert set(theirs) == set(tensors) and all(torch.equal(theirs[k], tensors[k]) for k in tensors)
    st.save_file(tensors, tmp_path / "theirs.safetensors", metadata={"k": "v"})
    ours, metadata = load_tensors(tmp_path / "theirs.safetensors")
    assert metadata == {"k": "v"}
    assert all(torch.equal(ours[k], tensors[k]) and ours[k].dtype == tensors[k].dtype for k in tensors)


def test_corrupt_files_are_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    save_tensors({"a": torch.ones(4), "b": torch.ones(2)}, path)
    raw = path.read_bytes()
    path.write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="does not fit its shape"):
        load_tensors(path)
    header_size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_size])
    header["b"]["data_offsets"] = [0, 8]  # overlaps a
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + header_size:])
    with pytest.raises(ValueError, match="overlap or leave a gap"):
        load_tensors(path)
    path.write_bytes((10**9).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_tensors(path)
    with pytest.raises(ValueError, match="cannot be written"):
        save_tensors({"z": torch.zeros(2, dtype=torch.complex64)}, path)


def test_load_names_the_accepted_forms(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a run folder, a model.pt, or a folder with model.safetensors"):
        rknet.load(tmp_path)


def test_a_run_writes_its_best_model_as_a_pretrained_folder(tmp_path: Path) -> None:
    result = rknet.train({"data": "circles", "epochs": 1, "widths": [4, 4], "steps": 1, "norm": "batch",
                          "out": str(tmp_path / "run")}, log=lambda line: None)
    x = torch.randn(5, 2)
    shared = rknet.from_pretrained(result.out / "pretrained")
    assert torch.equal(shared(x), rknet.load(result.out)(x))
    assert json.loads((result.out / "config.json").read_text())["epochs"] == 1  # still the training options


SLOW = pytest.mark.slow  # torch.export traces for a second or more: the default network's export stays fast


@pytest.mark.parametrize("options", [{"norm": "batch"}, *(pytest.param(options, marks=SLOW) for options in (
    {"method": "leapfrog"}, {"method": "hamiltonian"}, {"gradient": "adjoint"},
    {"gradient": "checkpoint", "method": "heun"}, {"method": "imex_euler"}, {"method": "ars222"}))])
def test_every_block_type_exports_with_a_dynamic_batch(options) -> None:
    net = trained_in_place(rknet.ODENet(in_channels=3, num_classes=5, widths=(4, 6), **options),
                           torch.randn(4, 3, 8, 8))
    program = rknet.export_program(net, torch.randn(2, 3, 8, 8))
    x = torch.randn(3, 3, 8, 8)
    torch.testing.assert_close(program.module()(x), net(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("method", ["backward_euler", "sdirk2", "gauss2"])
def test_implicit_blocks_are_refused_by_export_in_one_line(method) -> None:
    """Their Newton-Krylov solves stop after a data-dependent number of iterations: torch.export cannot trace
    them (it fails deep inside with a guard on a data-dependent value), so export says so before it starts."""
    net = rknet.ODENet(in_channels=3, num_classes=5, widths=(4, 6), method=method)
    with pytest.raises(ValueError, match=f"cannot export {method} \\(an implicit method\\): .* data-dependent "
                                         "number of Newton-Krylov iterations"):
        rknet.export_program(net, torch.randn(2, 3, 8, 8))
    assert rknet.rediscretize(net, "rk4").spec.method.explicit  # the way out it names (rk4 exports, above)


@pytest.mark.slow  # ONNX export and onnxruntime
@pytest.mark.parametrize("options", [{"norm": "batch"}, {"method": "hamiltonian"}])
def test_onnx_file_runs_in_onnxruntime(tmp_path: Path, options) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    net = trained_in_place(rknet.ODENet(in_channels=3, num_classes=5, widths=(4, 6), **options),
                           torch.randn(4, 3, 8, 8))
    path = rknet.export_onnx(net, tmp_path / "net.onnx", torch.randn(2, 3, 8, 8))
    session = ort.InferenceSession(str(path))
    x = torch.randn(7, 3, 8, 8)
    (logits,) = session.run(["logits"], {"x": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(logits), net(x).detach(), rtol=1e-5, atol=1e-5)
