"""Key file, envelope sealing, atomic files and locks, the credential store and the audit log."""
