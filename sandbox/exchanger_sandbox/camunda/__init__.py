"""Sandbox Camunda-7-compatible engine: ``/engine-rest`` over an own token engine with SQLite state.

The model comes from :mod:`exchanger.bpmn` (parser, JUEL, timers, exception types: the product's camunda-sync
validates with the same parser). Modules: ``variables`` (typed values), ``store`` (SQLite),
``runtime`` (token engine), ``engine`` (commands, lock, transactions), ``fetch`` (fetchAndLock and
long polling), ``queries``/``dto``/``multipart``/``rest`` (HTTP API), ``clock``, ``server`` (start/CLI).
"""
