"""Gradient strategies (what a block's forward pass keeps for its backward pass), the continuous adjoint of a
block, and backprop's fused CPU fast path. Strategies read what a block declares; they import no block type."""
