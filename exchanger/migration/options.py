"""The command line of the migration, kept free of heavy imports so that ``exchanger --help`` stays fast."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_WORKER_ID = "universal-worker"  # CAMUNDA_WORKER_ID's default in the old tool
DEFAULT_BATCH_SIZE = 20  # stranded tasks released at once


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", help="act; without it nothing is changed (dry run)")
    p.add_argument("--old-worker-id", action="append", default=None,
                   help=f"the old tool's CAMUNDA_WORKER_ID (repeatable; default {DEFAULT_WORKER_ID})")
    p.add_argument("--state-dir", type=Path, default=None,
                   help="before.json, backup.jsonl, journal.jsonl, reconciliation.tsv "
                        "(default: <project root>/state/migration/<env>)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="stranded tasks released at once")
    p.add_argument("--adopt-rate", type=float, default=None,
                   help="stranded tasks released per second (default: half of BITRIX_RATE_PER_S)")
    p.add_argument("--old-lock-file", type=Path, default=None,
                   help="the old task-creator's lock file (default /tmp/exchanger-task-creator-<env>.lock)")
    p.add_argument("--keep-old-queues", action="store_true", help="do not delete the old-only queues")
