"""task-creator: consumes the system queues, runs handlers and trackers, reports results to Camunda.

Run ``EXCHANGER_ENV=dev python main.py`` (or ``make creator``, or the ``exchanger-creator`` command);
configuration in config.env.example. The code lives in ``exchanger.creator``.
"""

from exchanger.creator.main import run_main

if __name__ == "__main__":
    raise SystemExit(run_main())
