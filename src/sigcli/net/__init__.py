"""sig's own HTTP transport on the standard library: one exchange, origin-safe redirects, TLS contexts,
networkProxy (http, SOCKS). No providers, no credentials."""
