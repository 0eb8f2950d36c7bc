"""
Importing oscar's transfers, oldest first, with their legs and reversals.

Each transfer is written with the engine's low-level writer
(``accounts.sql.write_transfer``) as it happened: its moment, its
reference where it fits, its parent where it is a reversal in this app's
sense (see :mod:`accounts.oscar_import`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from . import sql
from .arguments import storable
from .exceptions import InvalidArgument
from .models import Transfer, generate_reference
from .oscar_import_job import ImportJob
from .oscar_tables import CHUNK, chunks

__all__ = ["TransfersStep"]


@dataclass
class _Original:
    """A written transfer that others name as their parent."""

    pk: int
    source: int
    destination: int
    amount: Decimal
    reversed: Decimal
    is_reversal: bool


class TransfersStep(ImportJob):
    """The transfers of an import."""

    # Transfers -------------------------------------------------------------------------------

    def transfers(self, progress: Callable[[int], None] | None) -> None:
        oscar_transfer, oscar_leg = self.oscar["transfer"], self.oscar["leg"]
        parents = set(
            oscar_transfer.objects.using(self.source)
            .filter(parent_id__isnull=False)
            .values_list("parent_id", flat=True)
            .distinct()
        )
        originals: dict[int, _Original] = {}
        references: set[str] = set()
        rows = (
            oscar_transfer.objects.using(self.source)
            .order_by("date_created", "pk")
            .iterator(chunk_size=CHUNK)
        )
        done = 0
        for chunk in chunks(rows, CHUNK):
            legs: dict[int, list[tuple[int, Decimal]]] = {}
            for transfer_id, account_id, amount in (
                oscar_leg.objects.using(self.source)
                .filter(transfer_id__in=[row.pk for row in chunk])
                .values_list("transfer_id", "account_id", "amount")
            ):
                legs.setdefault(transfer_id, []).append((account_id, amount))
            for row in chunk:
                self.transfer(row, legs.get(row.pk, []), parents, originals, references)
            done += len(chunk)
            if progress is not None:
                progress(done)
        self.report.transfers = done

    def transfer(
        self,
        row: Any,
        legs: list[tuple[int, Decimal]],
        parents: set[int],
        originals: dict[int, _Original],
        references: set[str],
    ) -> None:
        label = "transfer %s (#%s)" % (row.reference, row.pk)
        shape = [(row.source_id, -row.amount), (row.destination_id, row.amount)]
        if sorted(legs) != sorted(shape):
            self.problem(
                "%s: its legs %s are not minus %s on account #%s and plus it on account #%s"
                % (label, sorted(legs), row.amount, row.source_id, row.destination_id)
            )
            return
        if not self.amount(row.amount, "The amount of %s" % label, positive=True):
            return
        source = self.accounts.get(row.source_id) or self.core.get(row.source_id)
        destination = self.accounts.get(row.destination_id) or self.core.get(row.destination_id)
        if source is None or destination is None or source == destination:
            self.problem("%s: its accounts could not be mapped" % label)
            return
        parent = None
        if row.parent_id is not None:
            parent = self.parent(row, label, source, destination, originals)
        reference = row.reference
        fits = (
            isinstance(reference, str) and 0 < len(reference) <= 32 and reference not in references
        )
        if fits:
            try:
                storable(reference, "reference")
            except InvalidArgument:
                fits = False
        if not fits:
            reference = generate_reference()
            self.note(
                "%s: reference %r does not fit here; its reference is now %s"
                % (label, row.reference, reference)
            )
        references.add(reference)
        merchant = self.text(row.merchant_reference, "The merchant reference of %s" % label, 128)
        description = self.text(row.description or "", "The description of %s" % label) or ""
        username = self.text(row.username or "", "The username of %s" % label, 150) or ""
        value = row.amount
        new_source = self.balances.get(source, Decimal(0)) - value
        new_destination = self.balances.get(destination, Decimal(0)) + value
        for balance in (new_source, new_destination):
            if not self.amount(balance, "A balance after %s" % label):
                return
        if self.problem_count:
            return  # nothing more will be written: go on looking for problems only
        posted = Transfer(
            reference=reference,
            source_id=source,
            destination_id=destination,
            currency=self.currency,
            amount=value,
            parent_id=parent.pk if parent is not None else None,
            merchant_reference=merchant,
            description=description,
            user_id=self.users.get(row.user_id) if row.user_id is not None else None,
            username=username,
            created=row.date_created,
            # Oscar has no effective dates: a transfer took effect when posted.
            effective_at=row.date_created,
        )
        # The legs of a transfer sum to zero; each records its account's new
        # balance. Both take the transfer's moment.
        sql.write_transfer(
            self.target,
            posted,
            [
                (source, self.currency, -value, new_source, row.date_created),
                (destination, self.currency, value, new_destination, row.date_created),
            ],
            {source: {"balance": new_source}, destination: {"balance": new_destination}},
        )
        self.balances[source], self.balances[destination] = new_source, new_destination
        if parent is not None:
            parent.reversed += value
            self.report.reversals += 1
        if row.pk in parents:
            originals[row.pk] = _Original(
                posted.pk, source, destination, value, Decimal(0), parent is not None
            )

    def parent(
        self,
        row: Any,
        label: str,
        source: int,
        destination: int,
        originals: dict[int, _Original],
    ) -> _Original | None:
        """The transfer ``row`` reverses, or None (and a note) when it cannot be one here."""
        original = originals.get(row.parent_id)
        if original is None:
            reason = "its parent #%s comes after it or was not imported" % row.parent_id
        elif original.is_reversal:
            reason = "its parent #%s is itself a reversal" % row.parent_id
        elif (original.source, original.destination) != (destination, source):
            reason = "it does not move money back from its parent's destination to its source"
        elif original.reversed + row.amount > original.amount:
            reason = (
                "with it, parent #%s would be reversed by more than its amount" % row.parent_id
            )
        else:
            return original
        self.note(
            "%s: imported without its link to the transfer it names as parent: %s"
            % (label, reason)
        )
        return None
