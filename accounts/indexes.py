"""
Indexes that Django cannot declare the same way on every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import models
from django.db.models import Q


class PartialIndex(models.Index):
    """An index of the rows matching ``where``; on a database without partial
    indexes (MariaDB/MySQL), an index of every row on the ``fallback`` columns.

    ``models.Index(condition=...)`` is created without its condition on
    MariaDB, as a full index on the same columns (and ``migrate`` warns about
    it, models.W037): the columns that suit a partial index are rarely the
    ones a full index needs. The unnotified rows, for example, are found on
    PostgreSQL by an index on ``(id)`` of the rows where ``notified_at IS
    NULL``, already in ``id`` order; on MariaDB they need ``(notified_at,
    id)``, and an index on ``(id)`` alone would copy the primary key.
    """

    def __init__(self, *, where: Q, fallback: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.where = where
        self.fallback = list(fallback)

    def deconstruct(self) -> Any:
        path, args, kwargs = super().deconstruct()
        kwargs["where"] = self.where
        kwargs["fallback"] = list(self.fallback)
        return path, args, kwargs

    def for_connection(self, connection: Any) -> models.Index:
        """The plain ``Index`` this one is on ``connection``'s database."""
        if connection.features.supports_partial_indexes:
            return models.Index(
                fields=list(self.fields),
                condition=self.where,
                name=self.name,
                db_tablespace=self.db_tablespace,
            )
        return models.Index(fields=self.fallback, name=self.name, db_tablespace=self.db_tablespace)

    def create_sql(self, model: Any, schema_editor: Any, using: str = "", **kwargs: Any) -> Any:
        return self.for_connection(schema_editor.connection).create_sql(
            model, schema_editor, using, **kwargs
        )
