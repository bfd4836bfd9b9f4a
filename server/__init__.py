"""Latentgraph's HTTP + websocket server: a durable job queue in front of one shared Executor.

Nothing here imports torch at module level, so `latentgraph serve` starts fast.
"""
