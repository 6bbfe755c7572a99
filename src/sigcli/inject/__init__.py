"""Handing credentials to a program: env variables and the child of `sig run`, mount files, one
authenticated request (`sig request`, the SDK), the userinfo lookup."""
