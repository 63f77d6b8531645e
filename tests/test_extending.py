"""docs/extending.md's examples run as written: a gradient strategy as one class, a block type as one module
and one registry line. The page's Python blocks are executed in order; their asserts are the checks."""

import re
from pathlib import Path

import pytest
import torch

import rknet
from rknet.blocks.registry import BLOCK_TYPES
from rknet.cli.options import accepted_gradients
from rknet.gradients.strategies import GRADIENTS

PAGE = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


@pytest.fixture
def page_namespace():
    """The namespace the page's code ran in; the strategy and block type it registered are removed after."""
    namespace: dict = {"__name__": "extending"}
    try:
        for block in re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S):
            exec(compile(block, str(PAGE), "exec"), namespace)  # noqa: S102  (our own docs page)
        yield namespace
    finally:
        GRADIENTS.pop("counted", None)
        BLOCK_TYPES.pop("damped_euler", None)


def test_the_page_has_both_examples_and_they_run(page_namespace):
    assert {"Counted", "DampedEulerBlock"} <= set(page_namespace)
    assert page_namespace["counted"].calls == 2


def test_the_registered_strategy_and_block_type_are_seen_through_the_declarations(page_namespace):
    assert "damped_euler: backprop, selective, checkpoint, counted" in accepted_gradients()
    assert "explicit: backprop, selective, checkpoint, adjoint, counted" in accepted_gradients()
    assert rknet.NetworkSpec(gradient="counted").gradient == "counted"
    with pytest.raises(ValueError, match="does not apply to rk4 blocks; they accept backprop, selective, "
                                         "checkpoint, adjoint, counted"):
        rknet.NetworkSpec(gradient="recount")
    block = page_namespace["DampedEulerBlock"](rknet.layers.DoubleSym(3, dims=0), gradient="counted")
    assert block(torch.randn(2, 3)).shape == (2, 3)


def test_without_the_page_the_registries_are_as_shipped():
    assert "counted" not in GRADIENTS and "damped_euler" not in BLOCK_TYPES
    assert rknet.supported_gradients(rknet.DynamicBlock) == ("backprop", "selective", "checkpoint", "adjoint")
