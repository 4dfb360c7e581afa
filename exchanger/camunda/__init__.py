"""Camunda 7 REST: settings, the pooled client with typed errors, and the BPMN metadata parser + cache."""
