"""Analysis: reports and policy comparison, computed from traces alone."""
