"""`python -m latentgraph_cli` is the `latentgraph` command."""

from latentgraph_cli.main import main

raise SystemExit(main())
