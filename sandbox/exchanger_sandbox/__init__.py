"""Faithful stand-ins for Camunda 7 and the external systems, as real HTTP servers on loopback."""
