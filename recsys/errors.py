"""Precise exceptions raised by the library.

Only the HTTP layer turns these into status codes; the command line turns them
into an exit status and a message.
"""

from __future__ import annotations


class RecsysError(Exception):
    """Base class of every error the library raises on purpose."""


class ContractError(RecsysError):
    """The input directory breaks the data contract as a whole (not one row)."""


class MissingTable(ContractError):
    def __init__(self, table: str, detail: str = "") -> None:
        self.table = table
        super().__init__(f"required table {table!r} is missing" + (f": {detail}" if detail else ""))


class MissingColumn(ContractError):
    def __init__(self, table: str, column: str) -> None:
        self.table = table
        self.column = column
        super().__init__(f"table {table!r} lacks required column {column!r}")


class ConfigError(RecsysError, ValueError):
    """A configuration value or hyperparameter is invalid."""


class ArtifactError(RecsysError):
    """An artifact is missing, incomplete or fails its integrity check."""


class NotFound(RecsysError):
    """An entity the caller named does not exist (in the served artifact)."""

    entity = "entity"

    def __init__(self, entity_id: str) -> None:
        self.entity_id = entity_id
        super().__init__(f"unknown {self.entity}: {entity_id!r}")


class UnknownUser(NotFound):
    entity = "user"


class UnknownArtist(NotFound):
    entity = "artist"


class UnknownTrack(NotFound):
    entity = "track"
