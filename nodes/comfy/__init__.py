"""ComfyUI compatibility: its workflow formats converted onto our nodes through one mapping table."""
