"""The `latentgraph` command line: the front end above the engine, the nodes and the server."""
