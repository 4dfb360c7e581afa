"""camunda-sync: ``EXCHANGER_ENV=dev python main.py`` (the code lives in ``exchanger.sync``; ``--once``,
``--dry-run``, ``--diagram ID``, ``status`` and ``convert in.bpmn`` are described in exchanger/sync/cli.py)."""

from exchanger.sync.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
