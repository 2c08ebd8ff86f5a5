"""The `symdl` command line, one module per job (see `symdl --help`)."""
