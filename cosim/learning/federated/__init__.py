"""The federated engine: clients on vehicles, scheduling policies, rounds and aggregation."""
