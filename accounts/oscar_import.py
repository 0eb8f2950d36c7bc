"""
Moving a ledger from django-oscar-accounts 3.0.x into this app.

:func:`import_oscar_accounts` (``manage.py import_oscar_accounts``) reads
the tables of django-oscar-accounts (``oscar_accounts_accounttype``,
``..._account``, ``..._account_secondary_users``, ``..._transfer``,
``..._transaction``; in the default database or another alias) and writes
the same ledger here, in one transaction, then checks it before committing:

* **account types**: the tree (treebeard's materialised paths) becomes
  parent links; a type without a code (oscar's own, from
  ``oscar_accounts_init``) gets one made from its name;
* **accounts**: names, codes (stored normalized: upper case, no spaces or
  dashes), descriptions, types, users (matched by username), statuses
  (``Open``/``Frozen``/``Closed``), credit limits (``None`` stays "no
  limit"), start and end dates, creation times, all in one currency
  (oscar-accounts has none: ``--currency``, default
  ``ACCOUNTS_DEFAULT_CURRENCY``). Oscar's bank, redemptions and lapsed
  accounts (found by name: ``ACCOUNTS_BANK_NAME``,
  ``ACCOUNTS_REDEMPTIONS_NAME``, ``ACCOUNTS_LAPSED_NAME`` or oscar's
  defaults) become this app's source, sales and expired core accounts;
  other accounts without a credit limit (oscar's "unpaid sources") stay
  ordinary accounts with no limit;
* **transfers**, oldest first, each with its two legs, its reference, merchant
  reference, description, user and username and its creation time (the
  legs take the transfer's); running balances are recomputed leg by leg;
* **reversals**: oscar's ``parent`` is kept where the transfer is a
  reversal in this app's sense (from the parent's destination back to its
  source, the parent not itself a reversal, never more than its amount in
  all); otherwise the transfer is imported without the link, and said so.
  (Oscar's own ``facade.reverse`` set no parent: those reversals arrive as
  plain transfers back to the source.)

References: oscar's are 32-character HMAC digests, which fit this app's
32-character column as they are, so customers and other systems keep
quoting the same ones. A reference that does not fit (longer, missing, or
not storable text) gets a new one, and the old and the new are reported.

Rows are written with the engine's own low-level writers
(``accounts.sql``), in one transaction, with the core accounts
locked. Not through ``accounts.facade``: its rules and its clock are for
live postings. It would stamp every transfer with today's time, refuse to
move money out of an account that is closed, frozen or past its end date
*now* (which most of an old ledger is), and judge past debits against
today's credit limits; history must be written as it happened.

Before committing, every imported account's balance is compared with the
balance oscar stored, and ``check_ledger`` must find nothing; otherwise
nothing is written. The import runs into a ledger with no transfers, holds
or accounts other than the core accounts (zero balances), and is refused
otherwise: a second run over the same data is refused, never merged.

Where the code lives: this module is the public import path (the function,
``ImportRefused``, ``ImportReport`` and ``OscarNames`` are importable from
here); ``accounts.oscar_tables`` reads oscar's tables,
``accounts.oscar_import_job`` holds an import's state and checks, and
``accounts.oscar_import_accounts`` and ``accounts.oscar_import_transfers``
are its steps.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import DEFAULT_DB_ALIAS, connections, router, transaction

from . import amounts, sql
from .clock import DatabaseNow
from .conf import conf
from .integrity import check_ledger
from .models import Account, Transfer
from .oscar_import_accounts import AccountsStep
from .oscar_import_job import ImportRefused, ImportReport
from .oscar_import_transfers import TransfersStep
from .oscar_tables import OscarNames

__all__ = ["import_oscar_accounts", "ImportRefused", "ImportReport", "OscarNames"]


class _Import(AccountsStep, TransfersStep):
    """An import: its steps in order, in one transaction, then the checks."""

    # Checks after writing ------------------------------------------------------------------------

    def verify(self) -> None:
        stored = dict(
            Account.objects.using(self.target)
            .filter(pk__in=list(self.expected))
            .values_list("pk", "balance")
        )
        for pk, (label, expected) in self.expected.items():
            found = stored.get(pk)
            found = found.amount if found is not None and hasattr(found, "amount") else found
            if found != expected:
                self.problem(
                    "%s: oscar's balance is %s but its transactions give %s"
                    % (label, expected, found)
                )
        self.report.balances_checked = len(self.expected)
        self.refuse_if_any()
        over = Account.objects.using(self.target).filter(
            pk__in=list(self.accounts.values()), credit_limit__isnull=False
        )
        # The limits were set now, by the import: check_ledger reads an account
        # below its limit as a limit lowered under an existing debt.
        over.update(credit_limit_changed_at=DatabaseNow())
        for account in over.order_by("pk"):
            limit = amounts.raw(account, "credit_limit")
            balance = amounts.raw(account, "balance")
            assert limit is not None and balance is not None
            if balance < -limit:
                self.note(
                    "account %s is below minus its credit limit (%s, limit %s): it cannot be "
                    "debited until it is back within it" % (account, balance, limit)
                )
        report = check_ledger(self.target)
        if not report.ok:
            raise ImportRefused(
                ["check_ledger: %s" % problem for problem in report.problems], report.total
            )

    def notes_on_the_rest(self) -> None:
        if (
            "oscar_accounts_ipaddressrecord"
            in connections[self.source].introspection.table_names()
        ):
            count = self.oscar["ip"].objects.using(self.source).count()
            if count:
                self.note(
                    "%d IP address record(s) of failed code lookups were not imported: the "
                    "code lookup throttle counts failures in the cache "
                    "(ACCOUNTS_CODE_LOOKUP_*)" % count
                )
        expired = [
            pk
            for pk in Account.objects.using(self.target)
            .filter(pk__in=list(self.accounts.values()))
            .expired()
            .exclude(status=Account.Status.CLOSED)
            .values_list("pk", flat=True)
        ]
        if expired:
            self.note(
                "%d account(s) are past their end date and not closed: "
                "close_expired_accounts will sweep them" % len(expired)
            )

    def run(self, progress: Callable[[int], None] | None) -> ImportReport:
        self.check_tables()
        with transaction.atomic(using=self.target):
            # Nothing moves on the core accounts while the history is
            # written, and the ledger is judged new under that lock.
            core = [
                Account.objects.db_manager(self.target).core(role, self.currency).pk
                for role in Account.Role.values
            ]
            sql.lock_accounts(self.target, sorted(core))
            self.check_empty()
            types = self.account_types()
            planned, self.core = self.plan_accounts(types)
            self.refuse_if_any()
            self.write_accounts(types, planned)
            self.set_core_types(types, self.core)
            self.transfers(progress)
            self.refuse_if_any()
            self.verify()
            self.notes_on_the_rest()
            if self.report.dry_run:
                transaction.set_rollback(True, using=self.target)
        return self.report


def import_oscar_accounts(
    *,
    source: str = DEFAULT_DB_ALIAS,
    currency: str | None = None,
    names: OscarNames | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import the ledger of django-oscar-accounts 3.0.x from database ``source``.

    Writes into the database this app writes to, in one transaction: all of
    it, checked, or nothing (see the module's docstring). ``dry_run`` does
    everything, checks included, then rolls back. ``progress(transfers)`` is
    called after each thousand transfers. Returns an :class:`ImportReport`.

    Raises ``ImportRefused`` (nothing written) when oscar's tables are not
    there, this ledger is not new, something cannot be imported as it is
    (a status, a code that collides once normalized, a transfer whose legs
    are not its amount, an amount the currency cannot hold), or the checks
    afterwards fail (a balance differs from oscar's, ``check_ledger``); and
    ``UnsupportedCurrency`` for a currency not in ``ACCOUNTS_CURRENCIES``.
    """
    target = router.db_for_write(Transfer)
    code = amounts.check_currency(currency or conf.DEFAULT_CURRENCY)
    job = _Import(source, target, code, names or OscarNames.from_settings(), dry_run)
    return job.run(progress)
