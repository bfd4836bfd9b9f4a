"""The Stable Diffusion library behind the nodes: loading, text, sampling and images.

Modules here are plain library code with their own tests; the node declarations in `nodes/`
are thin wrappers over them. The registry does not scan this package for nodes.
"""
