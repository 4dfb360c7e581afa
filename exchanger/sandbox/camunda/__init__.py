"""Sandbox Camunda-7-compatible engine: ``/engine-rest`` over an own token engine with SQLite state.

Modules: ``bpmn`` (parser), ``juel`` (expressions), ``variables`` (typed values), ``store`` (SQLite),
``runtime`` (token engine), ``engine`` (commands, lock, transactions), ``fetch`` (fetchAndLock and
long polling), ``queries``/``dto``/``multipart``/``rest`` (HTTP API), ``clock``, ``server`` (start/CLI).
"""
