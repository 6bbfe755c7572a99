"""Placeholders: what a sandboxed program holds instead of a secret, for programs that insist on a variable.

Each value of a named provider's credential gets a fresh random stand-in for this run
(`sig-ph-` + 32 hex digits). The child's SIG_<P>_* and app-named variables (`env:` maps, `--env`) are
built from the stand-ins exactly as `sig run` builds them from the values, so a derived variable
(`SIG_P_AUTH_HEADER=Bearer sig-ph-…`) holds the stand-in too. The proxy knows the map (stand-in →
provider, value key) for this run only: it swaps a stand-in for the value in requests to that
provider's own hosts and refuses (403, audited) a request carrying one anywhere else. Identifier values
(username, email) are not secrets (core.model.IDENTIFIER_KEYS) and stay as they are.
"""

from __future__ import annotations

import os

PREFIX = "sig-ph-"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..core.model import Credential, Provider


def new_placeholder() -> str:
    """A fresh placeholder: the prefix and 128 random bits."""
    return PREFIX + os.urandom(16).hex()


def stand_in(credential: Credential, table: dict[str, tuple[str, str]]) -> Credential:
    """A copy of `credential` whose secret values are new placeholders, each recorded in `table`
    (placeholder -> (provider id, key))."""
    from ..core.model import IDENTIFIER_KEYS, Credential
    from ..core.secret import Secret

    values: dict[str, Secret] = {}
    for key, value in credential.values.items():
        if key in IDENTIFIER_KEYS or not value.reveal():
            values[key] = value
            continue
        placeholder = new_placeholder()
        table[placeholder] = (credential.provider_id, key)
        values[key] = Secret(placeholder)
    kind = credential.extra.get("credentialType")  # the one extra the variables use (refresh tokens stay out)
    return Credential(credential.provider_id, credential.strategy, values, credential.updated_at,
                      credential.expires_at, None, {"credentialType": kind} if isinstance(kind, str) else {})


def child_variables(chosen: list[tuple[Provider, Credential]], env_options: list[tuple[str, Provider, str]]
                    ) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """(the variables `sig run` would give, built from placeholders; the placeholder table)."""
    from ..inject.env import app_env, provider_env, template_values

    table: dict[str, tuple[str, str]] = {}
    fakes = {provider.id: stand_in(credential, table) for provider, credential in chosen}
    env: dict[str, str] = {}
    for provider, _credential in chosen:
        env.update(provider_env(provider, fakes[provider.id]))
        env.update(app_env(provider, fakes[provider.id])[0])
    for name, provider, key in env_options:
        value = template_values(provider, fakes[provider.id]).get(key)
        if value is not None:
            env[name] = value
    return env, table
