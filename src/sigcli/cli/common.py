"""Helpers shared by command modules."""

from __future__ import annotations

from ..config.load import provider_not_found
from ..core.errors import usage_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..core.model import Provider
    from .app import App


def resolve_existing(app: App, target: str) -> Provider:
    """The provider `target` names (id, name, URL or host), or PROVIDER_NOT_FOUND."""
    provider = app.config.resolve(target)
    if provider is None:
        raise provider_not_found(target)
    return provider


def one_positional(args_positionals: list[str], usage: str) -> str:
    """The one positional argument a command takes, or a usage error naming the extra or missing one."""
    if len(args_positionals) != 1:
        raise usage_error(
            "expected one argument" if not args_positionals else f"unexpected argument {args_positionals[1]!r}",
            f"usage: {usage}",
        )
    return args_positionals[0]
