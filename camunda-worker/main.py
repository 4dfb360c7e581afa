"""camunda-worker: ``EXCHANGER_ENV=dev python main.py`` (the code lives in ``exchanger.worker``)."""

from exchanger.worker.main import main

if __name__ == "__main__":
    raise SystemExit(main())
