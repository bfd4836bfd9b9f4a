"""Training the embedded demo model (see train/README.md)."""
