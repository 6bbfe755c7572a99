"""Helpers shared by command modules."""

from __future__ import annotations

from ..core.errors import usage_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..core.model import Provider
    from .app import App


from ..config.load import provider_not_found  # noqa: E402 - re-exported for the command modules


def resolve_existing(app: App, target: str) -> Provider:
    provider = app.config.resolve(target)
    if provider is None:
        raise provider_not_found(target)
    return provider


def one_positional(args_positionals: list[str], usage: str) -> str:
    if len(args_positionals) != 1:
        raise usage_error(
            "expected one argument" if not args_positionals else f"unexpected argument {args_positionals[1]!r}",
            f"usage: {usage}",
        )
    return args_positionals[0]
