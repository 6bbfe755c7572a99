"""One module per command: FLAGS, an options class built from the parsed Args, and run(args, app)."""
