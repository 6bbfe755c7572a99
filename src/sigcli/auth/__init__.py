"""Logging in and keeping credentials valid: the AuthManager, the strategies, login planning and the
browser login cascade, OAuth2, the validation probe."""
