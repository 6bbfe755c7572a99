"""OAuth2: settings, the token endpoint, the interactive grants and turning answers into credentials."""
