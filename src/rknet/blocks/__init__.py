"""Dynamic blocks: the block interface and its Runge-Kutta, implicit, IMEX and reversible implementations,
and the registry that builds the block a method needs."""
