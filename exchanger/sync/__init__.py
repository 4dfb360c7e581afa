"""camunda-sync: StormBPMN diagrams into Camunda (see exchanger/sync/cli.py)."""
