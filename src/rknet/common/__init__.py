"""Small helpers every tier uses: argument checks, table files (TOML/YAML/JSON), kernels, the process
group, the CPU, figures. Imports nothing else of rknet."""
