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
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.apps.registry import Apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connections, models, router, transaction
from django.utils.text import slugify
from django.utils.translation import gettext_lazy as _

from . import amounts, sql
from .arguments import storable
from .clock import DatabaseNow
from .codes import normalize_code
from .conf import conf
from .exceptions import AccountException, InvalidArgument
from .integrity import check_ledger
from .models import Account, AccountType, Hold, Transfer, generate_reference

#: Oscar's statuses, and this app's.
STATUSES = {
    "Open": Account.Status.OPEN,
    "Frozen": Account.Status.FROZEN,
    "Closed": Account.Status.CLOSED,
}
#: The length of each step of treebeard's materialised paths (its default).
STEP = 4
#: Transfers read (and their legs looked up) at a time.
CHUNK = 1000
#: Problems listed (all are counted).
SHOWN = 50

TABLES = (
    "oscar_accounts_accounttype",
    "oscar_accounts_account",
    "oscar_accounts_account_secondary_users",
    "oscar_accounts_transfer",
    "oscar_accounts_transaction",
)


class ImportRefused(AccountException):
    """The import would not give the same ledger, or has run already; nothing was written.

    ``problems`` lists what is wrong (at most 50; ``count`` has them all).
    """

    def __init__(self, problems: list[str], count: int | None = None) -> None:
        self.problems = problems[:SHOWN]
        self.count = len(problems) if count is None else count
        more = self.count - len(self.problems)
        text = "\n".join(["- %s" % problem for problem in self.problems])
        if more > 0:
            text += "\n- ... and %d more" % more
        super().__init__(
            _("The import was refused; nothing was written:\n%(problems)s"), problems=text
        )


@dataclass
class ImportReport:
    """What :func:`import_oscar_accounts` did (or, with ``dry_run``, would do)."""

    dry_run: bool
    currency: str
    account_types: int = 0
    accounts: int = 0
    transfers: int = 0
    #: Transfers imported with their link to the transfer they reverse.
    reversals: int = 0
    #: (oscar's account name, the core account it became).
    core: list[tuple[str, str]] = field(default_factory=list)
    #: Accounts whose balance was compared with the one oscar stored (all equal).
    balances_checked: int = 0
    #: What was imported differently from oscar's rows, or not imported.
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class OscarNames:
    """The names of oscar's core accounts."""

    bank: str
    redemptions: str
    lapsed: str

    @classmethod
    def from_settings(cls) -> OscarNames:
        """The names oscar-accounts used: its settings, or its defaults."""
        return cls(
            bank=getattr(settings, "ACCOUNTS_BANK_NAME", "Bank"),
            redemptions=getattr(settings, "ACCOUNTS_REDEMPTIONS_NAME", "Redemptions"),
            lapsed=getattr(settings, "ACCOUNTS_LAPSED_NAME", "Lapsed accounts"),
        )

    def roles(self) -> dict[str, str]:
        return {
            self.bank: Account.Role.SOURCE,
            self.redemptions: Account.Role.SALES,
            self.lapsed: Account.Role.EXPIRED,
        }


# Oscar's tables, read through models of their own ------------------------------------------


@functools.cache
def oscar_models() -> Any:
    """Unmanaged models of oscar-accounts' tables, in a registry of their own.

    A private registry: Django's app registry, migrations and checks never
    see them. Foreign keys are plain integer columns: only their values are
    read. The field types are those of oscar's migrations (0001 to 0004).
    """
    registry = Apps()

    def model(class_name: str, table: str, /, **fields: Any) -> Any:
        options = {"apps": registry, "app_label": "oscar_accounts", "db_table": table}
        meta = type("Meta", (), {**options, "managed": False})
        return type(class_name, (models.Model,), {"__module__": __name__, "Meta": meta, **fields})

    def money(**options: Any) -> models.DecimalField:
        return models.DecimalField(max_digits=12, decimal_places=2, **options)

    def key(**options: Any) -> models.IntegerField:
        return models.IntegerField(**options)

    return {
        "type": model(
            "AccountType",
            "oscar_accounts_accounttype",
            path=models.CharField(max_length=255),
            depth=models.PositiveIntegerField(),
            code=models.CharField(max_length=128, null=True),
            name=models.CharField(max_length=128),
        ),
        "account": model(
            "Account",
            "oscar_accounts_account",
            name=models.CharField(max_length=128, null=True),
            description=models.TextField(null=True),
            code=models.CharField(max_length=128, null=True),
            account_type_id=key(null=True),
            primary_user_id=key(null=True),
            status=models.CharField(max_length=32),
            credit_limit=money(null=True),
            balance=money(null=True),
            start_date=models.DateTimeField(null=True),
            end_date=models.DateTimeField(null=True),
            product_range_id=key(null=True),
            can_be_used_for_non_products=models.BooleanField(),
            date_created=models.DateTimeField(),
        ),
        "secondary": model(
            "SecondaryUser",
            "oscar_accounts_account_secondary_users",
            account_id=key(),
            user_id=key(),
        ),
        "transfer": model(
            "Transfer",
            "oscar_accounts_transfer",
            reference=models.CharField(max_length=64, null=True),
            source_id=key(),
            destination_id=key(),
            amount=money(),
            parent_id=key(null=True),
            merchant_reference=models.CharField(max_length=128, null=True),
            description=models.CharField(max_length=256, null=True),
            user_id=key(null=True),
            username=models.CharField(max_length=150),
            date_created=models.DateTimeField(),
        ),
        "leg": model(
            "Transaction",
            "oscar_accounts_transaction",
            transfer_id=key(),
            account_id=key(),
            amount=money(),
            date_created=models.DateTimeField(),
        ),
        "ip": model(
            "IPAddressRecord",
            "oscar_accounts_ipaddressrecord",
            ip_address=models.CharField(max_length=39),
        ),
    }


def _users(source: str, target: str, ids: set[int]) -> dict[int, int]:
    """Oscar's user ids -> this app's, matched by username."""
    if not ids:
        return {}
    user_model = get_user_model()
    username = user_model.USERNAME_FIELD
    field = user_model._meta.get_field(username)
    assert isinstance(field, models.Field)
    column: str = field.column
    table = connections[source].ops.quote_name(user_model._meta.db_table)
    found: dict[str, int] = {}
    with connections[source].cursor() as cursor:
        for chunk in _chunks(sorted(ids), CHUNK):
            cursor.execute(
                "SELECT id, %s FROM %s WHERE id IN (%s)"
                % (
                    connections[source].ops.quote_name(column),
                    table,
                    ", ".join(["%s"] * len(chunk)),
                ),
                chunk,
            )
            found.update({name: pk for pk, name in cursor.fetchall()})
    ours = dict(
        user_model._default_manager.db_manager(target)
        .filter(**{"%s__in" % username: list(found)})
        .values_list(username, "pk")
    )
    return {pk: ours[name] for name, pk in found.items() if name in ours}


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# The import -------------------------------------------------------------------------------


@dataclass
class _Original:
    """A written transfer that others name as their parent."""

    pk: int
    source: int
    destination: int
    amount: Decimal
    reversed: Decimal
    is_reversal: bool


class _Import:
    def __init__(
        self, source: str, target: str, currency: str, names: OscarNames, dry_run: bool
    ) -> None:
        self.source, self.target, self.currency, self.names = source, target, currency, names
        self.places = amounts.currency_places(currency)
        self.oscar = oscar_models()
        self.problems: list[str] = []
        self.problem_count = 0
        self.report = ImportReport(dry_run=dry_run, currency=currency)
        #: oscar account id -> ours
        self.accounts: dict[int, int] = {}
        #: oscar's core accounts' ids -> ours
        self.core: dict[int, int] = {}
        #: oscar's user ids -> ours
        self.users: dict[int, int] = {}
        #: our account id -> (label, oscar's balance)
        self.expected: dict[int, tuple[str, Decimal]] = {}
        self.balances: dict[int, Decimal] = {}

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < SHOWN:
            self.problems.append(text)

    def note(self, text: str) -> None:
        self.report.notes.append(text)

    def refuse_if_any(self) -> None:
        if self.problem_count:
            raise ImportRefused(self.problems, self.problem_count)

    # Checks --------------------------------------------------------------------------------

    def text(self, value: Any, what: str, max_length: int | None = None) -> str | None:
        if value is None:
            return None
        try:
            storable(value, what)
        except InvalidArgument as exc:
            self.problem(str(exc))
        if max_length is not None and len(value) > max_length:
            self.problem(
                "%s is %d characters long; the most is %d." % (what, len(value), max_length)
            )
        return value

    def amount(self, value: Decimal | None, what: str, *, positive: bool = False) -> bool:
        if value is None:
            return True
        if not value.is_finite() or value != value.quantize(Decimal(1).scaleb(-self.places)):
            self.problem(
                "%s %s has more decimal places than %s allows." % (what, value, self.currency)
            )
            return False
        if abs(value) >= amounts.LIMIT or (positive and value <= 0):
            self.problem("%s %s is out of range for the ledger." % (what, value))
            return False
        return True

    def check_tables(self) -> None:
        present = set(connections[self.source].introspection.table_names())
        missing = [table for table in TABLES if table not in present]
        if missing:
            raise ImportRefused(
                [
                    "database %r has no table %s: is django-oscar-accounts migrated there?"
                    % (self.source, ", ".join(missing))
                ]
            )

    def check_empty(self) -> None:
        transfers = Transfer.objects.using(self.target).count()
        holds = Hold.objects.using(self.target).count()
        accounts = Account.objects.using(self.target).filter(role__isnull=True).count()
        if transfers or holds or accounts:
            raise ImportRefused(
                [
                    "this ledger already has %d transfer(s), %d hold(s) and %d account(s) "
                    "besides the core accounts: the import runs once, into a new ledger "
                    "(a second run over the same data is refused, never merged)"
                    % (transfers, holds, accounts)
                ]
            )

    # Account types ------------------------------------------------------------------------

    def account_types(self) -> dict[int, AccountType]:
        rows = list(self.oscar["type"].objects.using(self.source).order_by("depth", "path"))
        by_path = {row.path: row for row in rows}
        taken = set(AccountType.objects.using(self.target).values_list("code", flat=True))
        made: dict[int, AccountType] = {}
        for row in rows:
            parent = by_path.get(row.path[:-STEP]) if row.depth > 1 else None
            if row.depth > 1 and parent is None:
                self.problem("account type %r (path %s) has no parent row" % (row.name, row.path))
                continue
            self.text(row.name, "The name of account type %r" % row.name)
            code = (
                row.code if row.code and re.fullmatch(r"[-a-zA-Z0-9_]{1,64}", row.code) else None
            )
            if code is None or code in taken:
                base = (slugify(row.code or row.name) or "type")[:56]
                code, n = base, 1
                while code in taken:
                    n += 1
                    code = "%s-%d" % (base, n)
                self.note(
                    "account type %r: code %s (oscar's: %s)"
                    % (row.name, code, "none" if row.code is None else repr(row.code))
                )
            taken.add(code)
            made[row.pk] = AccountType(
                name=row.name,
                code=code,
                parent=made.get(parent.pk) if parent is not None else None,
                description="",
            )
        return made

    # Accounts -------------------------------------------------------------------------------

    def plan_accounts(
        self, types: dict[int, AccountType]
    ) -> tuple[list[tuple[Any, Account]], dict[int, int]]:
        """(oscar row, unsaved account) of each ordinary account; oscar id -> core account id."""
        core_roles = self.names.roles()
        rows = list(self.oscar["account"].objects.using(self.source).order_by("pk"))
        secondary = self.oscar["secondary"].objects.using(self.source)
        users = self.users = _users(
            self.source,
            self.target,
            {row.primary_user_id for row in rows if row.primary_user_id is not None}
            | set(secondary.values_list("user_id", flat=True)),
        )
        codes: dict[str, str] = {}
        taken_names = set(
            Account.objects.using(self.target).exclude(name=None).values_list("name", flat=True)
        )
        planned, core = [], {}
        found_roles = set()
        for row in rows:
            label = "account %s (#%s)" % (row.code or row.name or "", row.pk)
            if row.name in core_roles:
                role = core_roles[row.name]
                account = Account.objects.db_manager(self.target).core(role, self.currency)
                core[row.pk] = account.pk
                found_roles.add(role)
                self.report.core.append((row.name, str(account)))
                self.expected[account.pk] = (label, row.balance or Decimal(0))
                self.amount(row.balance, "The balance of %s" % label)
                continue
            status = STATUSES.get(row.status)
            if status is None:
                self.problem(
                    "%s has status %r, which is none of %s"
                    % (label, row.status, ", ".join(STATUSES))
                )
            if row.credit_limit is not None and row.credit_limit < 0:
                self.problem("%s has a negative credit limit %s" % (label, row.credit_limit))
            self.amount(row.credit_limit, "The credit limit of %s" % label)
            self.amount(row.balance, "The balance of %s" % label)
            name = self.text(row.name or None, "The name of %s" % label)
            description = self.text(row.description or "", "The description of %s" % label)
            code = None
            if row.code:
                self.text(row.code, "The code of %s" % label)
                code = normalize_code(row.code) or None
                if code is None:
                    self.problem(
                        "%s has code %r, which is empty once normalized" % (label, row.code)
                    )
                elif code in codes:
                    self.problem(
                        "%s: codes %r and %r are the same code here (%s): codes are compared "
                        "without case, spaces or dashes" % (label, codes[code], row.code, code)
                    )
                else:
                    codes[code] = row.code
                    if code != row.code:
                        self.note("%s: code %r stored as %s" % (label, row.code, code))
            if name is not None and name in taken_names:
                self.problem(
                    "%s: the name %r is already used here (by a core account)" % (label, name)
                )
            if row.primary_user_id is not None and row.primary_user_id not in users:
                self.note(
                    "%s: primary user #%s has no user of the same username here: left empty"
                    % (label, row.primary_user_id)
                )
            if row.product_range_id is not None or not row.can_be_used_for_non_products:
                self.note(
                    "%s: restricted to a product range or to products only in oscar; this app "
                    "has no such restriction (apply it in your checkout)" % label
                )
            account = Account(
                name=name,
                code=code,
                description=description or "",
                account_type=types.get(row.account_type_id) if row.account_type_id else None,
                primary_user_id=users.get(row.primary_user_id) if row.primary_user_id else None,
                status=status or Account.Status.OPEN,
                currency=self.currency,
                credit_limit=row.credit_limit,
                start_date=row.start_date,
                end_date=row.end_date,
                created=row.date_created,
            )
            planned.append((row, account))
        for oscar_name, role in core_roles.items():
            if role not in found_roles:
                self.note(
                    "no oscar account is named %r: nothing was mapped to the %s core account"
                    % (oscar_name, role)
                )
        return planned, core

    def write_accounts(
        self, types: dict[int, AccountType], planned: list[tuple[Any, Account]]
    ) -> None:
        for account_type in types.values():
            if account_type.parent is not None:
                account_type.parent_id = account_type.parent.pk
            account_type.save(using=self.target)
        self.report.account_types = len(types)
        for row, account in planned:
            if account.account_type is not None:
                account.account_type_id = account.account_type.pk
            account.save(using=self.target)
            self.accounts[row.pk] = account.pk
            self.expected[account.pk] = (
                "account %s (#%s)" % (row.code or row.name or "", row.pk),
                row.balance or Decimal(0),
            )
        self.report.accounts = len(planned)
        through = Account.secondary_users.through
        links = [
            through(account_id=self.accounts[account_id], user_id=self.users[user_id])
            for account_id, user_id in self.oscar["secondary"]
            .objects.using(self.source)
            .order_by("pk")
            .values_list("account_id", "user_id")
            if account_id in self.accounts and user_id in self.users
        ]
        through.objects.using(self.target).bulk_create(links)

    def set_core_types(self, types: dict[int, AccountType], core: dict[int, int]) -> None:
        """Oscar filed its core accounts under types (Assets / Sales, ...): keep that."""
        for oscar_pk, type_pk in (
            self.oscar["account"]
            .objects.using(self.source)
            .filter(pk__in=list(core), account_type_id__isnull=False)
            .values_list("pk", "account_type_id")
        ):
            if type_pk in types:
                Account.objects.using(self.target).filter(pk=core[oscar_pk]).update(
                    account_type=types[type_pk].pk
                )

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
        for chunk in _chunks(rows, CHUNK):
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
