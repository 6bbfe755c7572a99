"""The terminal surface: argument parsing, output formats, prompts, exit codes; one module per command."""
