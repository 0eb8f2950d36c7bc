"""
Worker processes for the crash and soak tests (run as ``python -m tests.workers``).

Each worker is a separate process with its own database connection, pointed
at the test database the parent test created:

    python -m tests.workers crash <database name> <source pk> <destination pk>
    python -m tests.workers soak <database name> <seconds> <seed> <pk> <pk> ...
    python -m tests.workers spend <database name> <operations> <seed> <wallet> <shop> <bank>

``crash`` posts transfers for ever, printing each reference once its commit
has returned; the test kills it with SIGKILL. ``soak`` runs random mixed
operations until the time is up and prints a JSON summary. ``spend`` pays
from a spending-limited wallet by transfers, partial transfers and holds,
captures and releases them, and repays its debt from the bank, then prints
what it did.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections import Counter
from decimal import Decimal


def setup(database: str) -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, root)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    from django.conf import settings

    settings.DATABASES["default"]["NAME"] = database
    import django

    django.setup()


def crash(source: int, destination: int) -> None:
    from accounts import facade

    n = 0
    while True:
        n += 1
        transfer = facade.transfer(
            source, destination, Decimal("0.01"), idempotency_key="crash-%d" % n
        )
        print(transfer.reference, flush=True)


def soak(seconds: float, seed: int, pks: list[int]) -> None:
    import logging

    from django.db import DatabaseError

    from accounts import facade
    from accounts.exceptions import AccountException
    from accounts.models import Account, Hold, Transfer

    rng = random.Random(seed)
    done: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    errors: list[str] = []
    deadline = time.monotonic() + seconds

    class Retries(logging.Handler):
        """A deadlock the facade retried is still one: report it."""

        def emit(self, record: logging.LogRecord) -> None:
            errors.append("retried: %s" % record.getMessage())

    retries = logging.getLogger("accounts.retry")
    retries.setLevel(logging.INFO)
    retries.addHandler(Retries())

    def amount() -> Decimal:
        return Decimal(rng.randint(1, 3000)) / 100

    def transfer():
        source, destination = rng.sample(pks, 2)
        facade.transfer(source, destination, amount(), allow_partial=rng.random() < 0.3)

    def reverse():
        mine = Transfer.objects.filter(source__in=pks, parent__isnull=True).order_by("?").first()
        if mine is not None:
            facade.reverse(mine, amount=rng.choice([None, Decimal("0.01")]))

    def hold():
        source, destination = rng.sample(pks, 2)
        facade.hold(source, destination, amount())

    def resolve():
        held = Hold.objects.filter(source__in=pks, status="active").order_by("?").first()
        if held is not None:
            if rng.random() < 0.5:
                facade.capture(held, rng.choice([None, held.amount.amount / 2]))
            else:
                facade.release(held)

    def freeze_or_thaw():
        account = Account.objects.get(pk=rng.choice(pks))
        (account.thaw if account.is_frozen() else account.freeze)()

    operations = [transfer] * 6 + [reverse, hold, hold, resolve, resolve, freeze_or_thaw]
    while time.monotonic() < deadline:
        operation = rng.choice(operations)
        try:
            operation()
            done[operation.__name__] += 1
        except AccountException as exc:
            refused[type(exc).__name__] += 1
        except DatabaseError as exc:
            errors.append("%s: %s" % (type(exc).__name__, str(exc).splitlines()[0]))
    print(json.dumps({"done": done, "refused": refused, "errors": errors}), flush=True)


def spend(operations: int, seed: int, wallet: int, shop: int, bank: int) -> None:
    from accounts import facade
    from accounts.exceptions import AccountException
    from accounts.models import Hold

    rng = random.Random(seed)
    done: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    holds: list[int] = []
    for _n in range(operations):
        amount = Decimal(rng.randint(100, 9000)).scaleb(-2)
        choice = rng.choice(["transfer", "transfer", "partial", "hold", "resolve", "repay"])
        try:
            if choice == "transfer":
                facade.transfer(wallet, shop, amount)
            elif choice == "partial":
                facade.transfer(wallet, shop, amount, allow_partial=True)
            elif choice == "hold":
                holds.append(facade.hold(wallet, shop, amount).pk)
            elif choice == "resolve":
                if not holds:
                    continue
                hold = Hold.objects.get(pk=holds.pop(rng.randrange(len(holds))))
                if rng.random() < 0.5:
                    facade.capture(hold, amount=min(amount, hold.amount.amount))
                else:
                    facade.release(hold)
            else:
                facade.repay(bank, wallet, amount)
            done[choice] += 1
        except AccountException as exc:
            refused[type(exc).__name__] += 1
    print(json.dumps({"done": done, "refused": refused}), flush=True)


if __name__ == "__main__":
    command, database, *args = sys.argv[1:]
    setup(database)
    if command == "crash":
        crash(int(args[0]), int(args[1]))
    elif command == "soak":
        soak(float(args[0]), int(args[1]), [int(pk) for pk in args[2:]])
    elif command == "spend":
        spend(*(int(arg) for arg in args))
    else:
        raise SystemExit("unknown worker %r" % command)
