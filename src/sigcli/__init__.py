"""sig: log in once, keep credentials sealed, sign requests for any program."""
