"""The browser: adapters (native CDP, Playwright) behind one small protocol, extraction rules and the
site checks. The login cascade that drives them (when to look, when a login is done) is in auth/browser_login.py."""
