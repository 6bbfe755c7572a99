""""Did you mean …?" for a mistyped command, flag or setting name."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to `word`, if one is close enough (a case-only difference always is)."""
    pool = list(candidates)
    folded = {c.casefold(): c for c in pool}
    if word.casefold() in folded:
        return folded[word.casefold()]
    import difflib  # only on an error path: it is not free to import

    found = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    return found[0] if found else None
