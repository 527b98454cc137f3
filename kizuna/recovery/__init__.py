"""Backups and restores of a whole node (docs/operations.md).

A backup is a directory holding the store as of one moment, the node's ``kizuna.toml`` and a
manifest (``backup.json``) with the version count, the audit chain's length and head hash and a
checksum of the data file. Both directions check the copy with the audit chain and the count before
they say it worked.
"""

from kizuna.recovery.backups import BackupError, back_up, restore

__all__ = ["BackupError", "back_up", "restore"]
