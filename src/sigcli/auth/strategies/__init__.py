"""Login strategies: one module per login method, found through the strategy table (core/strategies.py).

A strategy satisfies `auth.base.Strategy`. Its module is imported only when the strategy is used.
"""

from __future__ import annotations

import importlib

from ...core.errors import ErrorCode, SigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..base import Strategy


def strategy_for(name: str) -> Strategy:
    """An instance of the strategy called `name`; CONFIG_ERROR for a name the table does not have."""
    from ...core.strategies import (  # the table: loaded by the first strategy used, not by `status`
        NAMES,
        spec,
    )

    row = spec(name)
    if row is None:
        raise SigError(
            ErrorCode.CONFIG_ERROR,
            f'no strategy named "{name}"',
            f"use one of: {', '.join(NAMES)}",
        )
    module_name, _, class_name = row.implementation.partition(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    strategy: Strategy = getattr(module, class_name)()
    return strategy
