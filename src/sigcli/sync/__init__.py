"""Many machines: SSH remotes, the OpenSSH transport, the sync engine and what each remote is trusted with."""
