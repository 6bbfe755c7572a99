"""Prompt strategy: ask for each `from: prompt` extract rule (its `match` is the question)."""

from __future__ import annotations

from ...core.errors import ErrorCode, SigError
from ...core.model import IDENTIFIER_KEYS, Credential, Provider
from ...core.secret import Secret
from ..base import LoginContext, StaticStrategy


class PromptStrategy(StaticStrategy):
    """Ask the user for each value a `from: prompt` extract rule names."""

    name = "prompt"

    def authenticate(self, provider: Provider, ctx: LoginContext) -> Credential:
        """One answer per prompt rule (from the flags given, else asked); MANUAL_SETUP_REQUIRED when missing."""
        supplied = {
            "token": ctx.token.reveal() if ctx.token else None,
            "cookie": ctx.cookie.reveal() if ctx.cookie else None,
            "username": ctx.username,
            "password": ctx.password.reveal() if ctx.password else None,
        }
        values: dict[str, Secret] = {}
        for rule in provider.extract:
            if rule.get("from") != "prompt":
                continue
            key = str(rule.get("as"))
            answer = supplied.get(key)
            if not answer and ctx.ask is not None:
                answer = ctx.ask(str(rule.get("match") or key), key not in IDENTIFIER_KEYS)
            if not answer or not answer.strip():
                raise SigError(
                    ErrorCode.MANUAL_SETUP_REQUIRED,
                    f'provider "{provider.id}" needs a value for "{rule.get("match") or key}" and none was given',
                    f"run `sig login {provider.id}` in a terminal and answer the prompt",
                )
            values[key] = Secret(answer.strip())
        if not values:
            raise SigError(
                ErrorCode.CONFIG_ERROR,
                f'provider "{provider.id}" uses strategy "prompt" but has no extract rule with from: prompt',
                "add extract rules such as {from: prompt, as: token, match: API token}",
            )
        return Credential(provider.id, self.name, values)


TYPE_CHECKING = False

if TYPE_CHECKING:
    from ..base import Strategy

    _check: type[Strategy] = PromptStrategy  # mypy: the class satisfies the strategy protocol
