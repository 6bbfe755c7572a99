"""Config: locate, load and validate (both formats into one Provider model), round-trip edits."""
