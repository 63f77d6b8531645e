"""Methods as data: Butcher tableaus (explicit, diagonally and fully implicit), their presets, IMEX pairs, the
reversible schemes' names and the registry that turns a name, a value or a tableau file into one of them."""
