"""Run by test_unit_store.py in spawned processes (via runpy.run_path, so no test package import is needed).

`SIG_WORKER_ARGS` (injected into the globals) = (credentials_dir, key_path, worker_name, rounds).
Each round locks, re-reads and rewrites one credential, bumping a counter and appending to a log value.
"""

from __future__ import annotations


def bump(credentials_dir: str, key_path: str, worker: str, rounds: int) -> None:
    from sigcli.core.model import Credential
    from sigcli.core.secret import Secret
    from sigcli.store.credentials import CredentialStore

    store = CredentialStore(credentials_dir, key_path)

    def change(current: Credential | None) -> Credential:
        values = dict(current.values) if current is not None else {}
        count = int(values["count"].reveal()) if "count" in values else 0
        log = values["log"].reveal() if "log" in values else ""
        values["count"] = Secret(str(count + 1))
        values["log"] = Secret(f"{log},{worker}" if log else worker)
        return Credential("shared", "prompt", values)

    for _ in range(rounds):
        store.update("shared", change)


if __name__ == "__sig_worker__":
    bump(*globals()["SIG_WORKER_ARGS"])
