"""task-creator: consumes the system queues, runs handlers and trackers, reports results to Camunda.

Run ``EXCHANGER_ENV=dev python main.py`` (or ``make creator``); configuration in config.env.example.
"""

import sys

from exchanger.creator.main import COMPONENT, main
from exchanger.runtime import run

if __name__ == "__main__":
    sys.exit(run(COMPONENT, main))
