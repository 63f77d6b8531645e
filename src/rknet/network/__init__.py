"""Networks: the one spec (`NetworkSpec`), `ODENet`, re-discretisation, conversion from DynamicBlocks,
regularisation in time."""
