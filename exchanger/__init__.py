"""Exchanger: the bridge between Camunda 7 external service tasks and the systems where work gets done."""

__version__ = "0.1.0"
