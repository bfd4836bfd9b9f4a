"""ComfyUI's HTTP + websocket protocol on top of our queue, store and executor (see routes.py)."""
