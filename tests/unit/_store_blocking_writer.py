"""A credential writer that stops half-way: run as `python _store_blocking_writer.py CRED_DIR KEY_PATH ID`.

It seals a credential for ID through the real CredentialStore, but the fsync of the temp file never
returns: the process prints "blocked <temp path>" and sleeps, holding the file's lock, with its
`<ID>.json.tmp.*` on disk, until the test kills it (kill -9, as a crash would)."""

from __future__ import annotations

import os
import sys
import time


def main(credentials_dir: str, key_path: str, provider_id: str) -> None:
    from sigcli.core.model import Credential
    from sigcli.core.secret import Secret
    from sigcli.store.credentials import CredentialStore

    def stuck_fsync(fd: int) -> None:
        temp = os.readlink(f"/proc/self/fd/{fd}")
        print(f"blocked {temp}", flush=True)
        time.sleep(600)  # bounded: the test kills this process long before
        raise SystemExit(3)

    store = CredentialStore(credentials_dir, key_path)
    os.fsync = stuck_fsync  # only in this helper process: the write stops between write() and rename()
    store.write(Credential(provider_id, "api-token", {"token": Secret("tok-STUCK-WRITER-0001")}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
