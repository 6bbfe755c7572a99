"""Vocabulary with no I/O: errors, secrets, durations, providers, credentials, hosts."""
