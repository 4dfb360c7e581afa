"""The BPMN 2.0 subset Exchanger runs: the parser, JUEL expressions, timers and Camunda's exception types.

camunda-sync validates a converted model with this parser before any deploy, and the sandbox engine
(``exchanger_sandbox.camunda``, a separate distribution) executes what it parses: both refuse the same
models. Modules: ``parser`` (XML → process model), ``juel`` (expressions), ``timers`` (durations,
dates, cycles), ``errors`` (Camunda's exception classes as its REST API reports them).
"""
