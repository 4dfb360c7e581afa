"""The ``exchanger`` command: one module per command group, wired in :mod:`exchanger.cli.main`."""
