"""The stepping engine: time grids, the one Runge-Kutta stage loop (explicit, diagonally implicit, IMEX),
adaptive step control, Newton-Krylov and GMRES, the adjoint of any f(t, y), and the two entry points
`integrate` and `odeint`."""
