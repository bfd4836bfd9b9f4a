"""Built-in nodes: one node family per module, found by the registry at start-up."""
