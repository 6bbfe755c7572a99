"""`sig doctor`'s checks as a service (checks.py): results in, rendering left to the CLI."""
