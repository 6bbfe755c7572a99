"""Rules a provider's config carries that sig runs itself: the sandboxed validateRule engine (jsrule.py)."""
