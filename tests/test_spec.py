"""NetworkSpec: one home of the defaults, validation in one place, by-value round trips, user tableaus
from the command line, and the reference network exactly."""

import dataclasses
import json
import warnings

import pytest
import torch

import rknet
from rknet.cli.main import build_parser
from rknet.layers import Antisymmetric, DoubleSym
from rknet.network.spec import DEFAULTS, NetworkSpec
from rknet.training.config import TrainConfig

MIDPOINT_TOML = 'name = "mymid"\na = [[0, 0], ["1/2", 0]]\nb = [0, 1]\nc = [0, "1/2"]\n'


def test_cli_trainconfig_odenet_and_spec_defaults_are_one_source():
    config = TrainConfig()
    net = rknet.ODENet()
    assert net.spec == DEFAULTS == NetworkSpec()
    assert config.network_spec() == DEFAULTS
    # The CLI adds no defaults of its own: every option is None unless given, so TrainConfig's apply.
    args = build_parser().parse_args(["train"])
    assert all(getattr(args, f.name) is None for f in dataclasses.fields(TrainConfig))
    # Help shows the spec's defaults and the registries' names.
    help_text = " ".join(build_parser()._subparsers._group_actions[0].choices["train"].format_help().split())
    for name in rknet.METHODS:
        assert name in help_text
    assert f"(default {DEFAULTS.layer})" in help_text


def test_spec_round_trips_through_json_with_a_user_tableau():
    tableau = rknet.ButcherTableau([[0, 0], [2 / 3, 0]], [1 / 4, 3 / 4], [0, 2 / 3], name="myralston2")
    spec = NetworkSpec(in_channels=2, num_classes=3, widths=(4, 5), method=tableau, dims=0, layer="antisymmetric",
                       layer_options={"gamma": 0.2}, t_states=(0, 0.5, 2), t_controls=(0, 2), norm="none")
    again = NetworkSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.method.name == "myralston2" and again.layer_options == {"gamma": 0.2}
    assert spec.to_dict()["method"]["b"] == [0.25, 0.75]
    assert DEFAULTS.to_dict()["method"] == "rk4"  # presets by name
    net = rknet.ODENet.from_spec(spec)
    assert all(block.layer.gamma == 0.2 for block in net.blocks)


@pytest.mark.parametrize(("options", "message"), [
    ({"widths": (4,)}, "widths must be at least 2 positive integers"),
    ({"in_channels": 0}, "in_channels must be a positive integer"),
    ({"layer": "triple"}, "unknown layer 'triple'"),
    ({"method": "rk5"}, "unknown method 'rk5'"),
    ({"norm": "layer"}, "unknown norm 'layer'"),
    ({"layer_options": {"gamma": 1}}, "unknown option 'gamma' for layer doublesym; its options: none"),
    ({"layer": "antisymmetric", "layer_options": {"gamma": -1}}, "gamma must be a finite number >= 0"),
    ({"method": "leapfrog", "t_controls": (0, 4)}, "leapfrog blocks keep one control per state step"),
    ({"method": "hamiltonian", "t_states": (0, 1, 3)}, "hamiltonian needs a uniform grid"),
    ({"gradient": "reversible"}, "gradient 'reversible' does not apply to rk4 blocks"),
    ({"t_controls": (1, 4)}, "must span t_states"),
])
def test_spec_validates_once_with_one_line_errors(options, message):
    with pytest.raises(ValueError, match=message):
        NetworkSpec(**options)


def test_a_layer_object_is_a_template_for_every_width():
    net = rknet.ODENet(2, 3, widths=(4, 6, 8), dims=0, layer=Antisymmetric(99, dims=0, gamma=0.3, norm="tv"))
    assert [block.layer.channels for block in net.blocks] == [4, 6]
    assert net.spec.layer_options == {"gamma": 0.3} and net.spec.norm == "tv"
    assert net(torch.randn(5, 2)).shape == (5, 3)


def test_layer_options_from_the_command_line(tmp_path, cli):
    code, _, err = cli("train", "--data", "circles", "--widths", "2,2", "--steps", "1", "--epochs", "1",
                       "--layer", "antisymmetric", "--layer-options", "gamma=0.25", "--out", tmp_path / "run")
    assert code == 0, err
    assert all(block.layer.gamma == 0.25 for block in rknet.load(tmp_path / "run").blocks)


def test_a_tableau_file_trains_loads_refines_and_reevaluates_identically(tmp_path, cli):
    (tmp_path / "mymid.toml").write_text(MIDPOINT_TOML)
    out = tmp_path / "run"
    code, _, err = cli("train", "--data", "circles", "--widths", "3,3", "--steps", "2", "--epochs", "1",
                       "--method", tmp_path / "mymid.toml", "--out", out)
    assert code == 0, err
    (tmp_path / "mymid.toml").unlink()  # the run keeps the tableau by value, not the file's path
    saved = json.loads((out / "config.json").read_text())["method"]
    assert saved["name"] == "mymid" and saved["b"] == [0.0, 1.0]
    model = rknet.load(out)
    assert model.spec.method == rknet.get_tableau("midpoint") and model.spec.method_name == "mymid"
    x = torch.randn(7, 2)
    with torch.no_grad():
        logits = model(x)
        rebuilt = rknet.ODENet.from_spec(NetworkSpec.from_dict(model.spec.to_dict())).eval()
        rebuilt.load_state_dict(model.state_dict())
        assert torch.equal(rebuilt(x), logits)
        assert torch.equal(rknet.rediscretize(model)(x), logits)  # same method and grid: the same network
        refined = model.refine(2)
        assert refined.spec.method_name == "mymid" and refined.spec.num_steps == 4
        assert torch.equal(rknet.rediscretize(refined, steps=2)(x), logits)  # and back
    code, stdout, err = cli("eval", out, "--device", "cpu")
    assert code == 0, err
    trained = rknet.evaluate_run(out, device="cpu")[0]
    assert "mymid" in stdout and f"{100 * trained['test_acc']:.2f}%" in stdout and "(as trained)" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert trained["test_acc"] == summary["test_acc"]


def test_a_bad_tableau_file_is_one_line(tmp_path, cli):
    (tmp_path / "bad.toml").write_text('a = [[0, 0], ["1/2", 0]]\nb = [0.5, 0.6]\nc = [0, "1/2"]\n')
    code, _, err = cli("train", "--method", tmp_path / "bad.toml", "--out", tmp_path / "run")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"rknet train: error: tableau file {tmp_path / 'bad.toml'}: tableau b sums to 1.1")
    assert not (tmp_path / "run").exists()


def test_reference_network_is_exact():
    net = rknet.ODENet()
    assert sum(p.numel() for p in net.parameters()) == 251_866
    assert net.opening[1].eps == 1e-4 and all(c.norm.eps == 1e-4 for c in net.connectors)
    block = net.blocks[0]
    assert block.method_name == "rk4" and block.t_controls == (0, 1, 2, 3, 4)
    assert isinstance(block.layer, DoubleSym) and block.layer.norm == "tv"


def reference_layout(net: rknet.ODENet) -> dict:
    """The state dict of `net` in the reference implementation's key layout (written here independently)."""
    state = net.state_dict()
    out = {"open.conv.weight": state["opening.0.weight"], "open.conv.bias": state["opening.0.bias"],
           "linear.weight": state["classifier.weight"], "linear.bias": state["classifier.bias"]}
    for key in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        out[f"open.normLayer.{key}"] = state[f"opening.1.{key}"]
    for b in range(len(net.blocks)):
        for j in range(len(net.blocks[b].t_controls)):
            prefix = f"dynamicBlocks.{b}.controlLayers.{j}."
            out[prefix + "weight"] = state[f"blocks.{b}.controls.K"][j]
            out[prefix + "conv.bias"] = state[f"blocks.{b}.controls.b1"][j]
            out[prefix + "convt.bias"] = -state[f"blocks.{b}.controls.b2"][j]
            out[prefix + "normLayer.bias"] = state[f"blocks.{b}.controls.norm_bias"][j]
            out[prefix + "normLayer.weight"] = torch.ones_like(out[prefix + "normLayer.bias"])
        for key in ("weight", "bias"):
            out[f"connectors.{b}.conv.{key}"] = state[f"connectors.{b}.conv.{key}"]
        for key in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            out[f"connectors.{b}.normLayer.{key}"] = state[f"connectors.{b}.norm.{key}"]
    return out


def test_conversion_from_the_reference_layout():
    net = rknet.ODENet()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)  # biases and shifts non-zero too
        for name, buffer in net.named_buffers():
            if "running" in name:
                buffer.uniform_(0.5, 1.5)
    state = reference_layout(net)
    assert len(state) == 4 + 5 + 3 * (5 * 5 + 2 + 5)
    converted = rknet.from_dynamicblocks(state).eval()
    assert converted.spec == net.spec
    b1 = state["dynamicBlocks.1.controlLayers.2.convt.bias"]
    assert torch.equal(converted.blocks[1].controls["b2"][2], -b1)  # rknet's b2 is the reference's -beta
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(converted(x), net.eval()(x))
    state["dynamicBlocks.0.controlLayers.0.normLayer.weight"] = torch.full((16,), 2.0)
    with pytest.raises(ValueError, match="TV norm's scale"):
        rknet.from_dynamicblocks(state)
    with pytest.raises(ValueError, match="not a DynamicBlocks state dict"):
        rknet.from_dynamicblocks(net.state_dict())


def test_spec_warns_about_knots_inside_steps_once_per_block():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rknet.ODENet(2, 2, widths=(2, 2), dims=0, t_states=(0, 1, 2), t_controls=(0, 0.5, 2))
    assert len([w for w in caught if issubclass(w.category, rknet.GridWarning)]) == 1
