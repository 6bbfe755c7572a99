"""Browser login: adapters (native CDP, Playwright) behind one small protocol, extraction and the cascade."""
