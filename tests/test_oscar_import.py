"""``manage.py import_oscar_accounts`` against django-oscar-accounts 3.0.x's real schema.

The tables are created here with the DDL Django generates for oscar-accounts'
migrations 0001 to 0004 on each backend, written out by hand (the foreign key
to Oscar's ``offer_range`` is a plain column: Oscar itself is not installed),
and filled the way oscar-accounts' own code fills them: a bank, redemptions
and lapsed account made by ``oscar_accounts_init``, top-ups, redemptions,
refunds that name the redemption as their parent, a reversal made by
oscar's ``facade.reverse`` (which sets no parent), an expired card swept to
the lapsed account and closed, a frozen card, an account in debt with
secondary users, HMAC references.
"""

import functools
import hashlib
import hmac
import io
from contextlib import contextmanager
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.db.models import F

from accounts import reports
from accounts.integrity import check_ledger
from accounts.models import Account, AccountType, Transaction, Transfer
from accounts.oscar_import import ImportRefused, import_oscar_accounts

from .factories import UserFactory
from .utils import at

pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal

# The schema --------------------------------------------------------------------------------

POSTGRESQL = [
    'CREATE TABLE "oscar_accounts_accounttype" ("id" serial NOT NULL PRIMARY KEY, '
    '"path" varchar(255) NOT NULL UNIQUE, "depth" integer NOT NULL CHECK ("depth" >= 0), '
    '"numchild" integer NOT NULL CHECK ("numchild" >= 0), "code" varchar(128) NULL UNIQUE, '
    '"name" varchar(128) NOT NULL)',
    'CREATE TABLE "oscar_accounts_account" ("id" serial NOT NULL PRIMARY KEY, '
    '"name" varchar(128) NULL UNIQUE, "description" text NULL, "code" varchar(128) NULL UNIQUE, '
    '"status" varchar(32) NOT NULL, "credit_limit" numeric(12, 2) NULL, '
    '"balance" numeric(12, 2) NULL, "start_date" timestamp with time zone NULL, '
    '"end_date" timestamp with time zone NULL, "can_be_used_for_non_products" boolean NOT NULL, '
    '"date_created" timestamp with time zone NOT NULL, "account_type_id" integer NULL '
    'REFERENCES "oscar_accounts_accounttype" ("id") DEFERRABLE INITIALLY DEFERRED, '
    '"primary_user_id" integer NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED, '
    '"product_range_id" integer NULL)',
    'CREATE TABLE "oscar_accounts_account_secondary_users" ("id" serial NOT NULL PRIMARY KEY, '
    '"account_id" integer NOT NULL REFERENCES "oscar_accounts_account" ("id") '
    'DEFERRABLE INITIALLY DEFERRED, "user_id" integer NOT NULL REFERENCES "auth_user" ("id") '
    'DEFERRABLE INITIALLY DEFERRED, UNIQUE ("account_id", "user_id"))',
    'CREATE TABLE "oscar_accounts_transfer" ("id" serial NOT NULL PRIMARY KEY, '
    '"reference" varchar(64) NULL UNIQUE, "amount" numeric(12, 2) NOT NULL, '
    '"merchant_reference" varchar(128) NULL, "description" varchar(256) NULL, '
    '"username" varchar(150) NOT NULL, "date_created" timestamp with time zone NOT NULL, '
    '"destination_id" integer NOT NULL REFERENCES "oscar_accounts_account" ("id") '
    'DEFERRABLE INITIALLY DEFERRED, "parent_id" integer NULL REFERENCES '
    '"oscar_accounts_transfer" ("id") DEFERRABLE INITIALLY DEFERRED, "source_id" integer NOT NULL '
    'REFERENCES "oscar_accounts_account" ("id") DEFERRABLE INITIALLY DEFERRED, '
    '"user_id" integer NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED)',
    'CREATE TABLE "oscar_accounts_transaction" ("id" serial NOT NULL PRIMARY KEY, '
    '"amount" numeric(12, 2) NOT NULL, "date_created" timestamp with time zone NOT NULL, '
    '"account_id" integer NOT NULL REFERENCES "oscar_accounts_account" ("id") '
    'DEFERRABLE INITIALLY DEFERRED, "transfer_id" integer NOT NULL REFERENCES '
    '"oscar_accounts_transfer" ("id") DEFERRABLE INITIALLY DEFERRED, '
    'UNIQUE ("transfer_id", "account_id"))',
    'CREATE TABLE "oscar_accounts_ipaddressrecord" ("id" serial NOT NULL PRIMARY KEY, '
    '"ip_address" inet NOT NULL UNIQUE, "total_failures" integer NOT NULL '
    'CHECK ("total_failures" >= 0), "consecutive_failures" integer NOT NULL '
    'CHECK ("consecutive_failures" >= 0), "date_created" timestamp with time zone NOT NULL, '
    '"date_last_failure" timestamp with time zone NULL)',
    'CREATE INDEX "oscar_accounts_account_account_type_id" '
    'ON "oscar_accounts_account" ("account_type_id")',
    'CREATE INDEX "oscar_accounts_account_primary_user_id" '
    'ON "oscar_accounts_account" ("primary_user_id")',
    'CREATE INDEX "oscar_accounts_transfer_destination_id" '
    'ON "oscar_accounts_transfer" ("destination_id")',
    'CREATE INDEX "oscar_accounts_transfer_parent_id" ON "oscar_accounts_transfer" ("parent_id")',
    'CREATE INDEX "oscar_accounts_transfer_source_id" ON "oscar_accounts_transfer" ("source_id")',
    'CREATE INDEX "oscar_accounts_transaction_account_id" '
    'ON "oscar_accounts_transaction" ("account_id")',
    'CREATE INDEX "oscar_accounts_transaction_transfer_id" '
    'ON "oscar_accounts_transaction" ("transfer_id")',
]

SQLITE = [
    'CREATE TABLE "oscar_accounts_accounttype" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, '
    '"path" varchar(255) NOT NULL UNIQUE, "depth" integer unsigned NOT NULL CHECK ("depth" >= 0), '
    '"numchild" integer unsigned NOT NULL CHECK ("numchild" >= 0), '
    '"code" varchar(128) NULL UNIQUE, "name" varchar(128) NOT NULL)',
    'CREATE TABLE "oscar_accounts_account" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, '
    '"name" varchar(128) NULL UNIQUE, "description" text NULL, "code" varchar(128) NULL UNIQUE, '
    '"status" varchar(32) NOT NULL, "credit_limit" decimal NULL, "balance" decimal NULL, '
    '"start_date" datetime NULL, "end_date" datetime NULL, '
    '"can_be_used_for_non_products" bool NOT NULL, "date_created" datetime NOT NULL, '
    '"account_type_id" integer NULL REFERENCES "oscar_accounts_accounttype" ("id") '
    'DEFERRABLE INITIALLY DEFERRED, "primary_user_id" integer NULL REFERENCES "auth_user" ("id") '
    'DEFERRABLE INITIALLY DEFERRED, "product_range_id" integer NULL)',
    'CREATE TABLE "oscar_accounts_account_secondary_users" ('
    '"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "account_id" integer NOT NULL '
    'REFERENCES "oscar_accounts_account" ("id") DEFERRABLE INITIALLY DEFERRED, '
    '"user_id" integer NOT NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED)',
    'CREATE UNIQUE INDEX "oscar_accounts_account_secondary_users_account_id_user_id_uniq" '
    'ON "oscar_accounts_account_secondary_users" ("account_id", "user_id")',
    'CREATE TABLE "oscar_accounts_transfer" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, '
    '"reference" varchar(64) NULL UNIQUE, "amount" decimal NOT NULL, '
    '"merchant_reference" varchar(128) NULL, "description" varchar(256) NULL, '
    '"username" varchar(150) NOT NULL, "date_created" datetime NOT NULL, '
    '"destination_id" integer NOT NULL REFERENCES "oscar_accounts_account" ("id") '
    'DEFERRABLE INITIALLY DEFERRED, "parent_id" integer NULL REFERENCES '
    '"oscar_accounts_transfer" ("id") DEFERRABLE INITIALLY DEFERRED, '
    '"source_id" integer NOT NULL REFERENCES "oscar_accounts_account" ("id") '
    'DEFERRABLE INITIALLY DEFERRED, "user_id" integer NULL REFERENCES "auth_user" ("id") '
    "DEFERRABLE INITIALLY DEFERRED)",
    'CREATE TABLE "oscar_accounts_transaction" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, '
    '"amount" decimal NOT NULL, "date_created" datetime NOT NULL, "account_id" integer NOT NULL '
    'REFERENCES "oscar_accounts_account" ("id") DEFERRABLE INITIALLY DEFERRED, '
    '"transfer_id" integer NOT NULL REFERENCES "oscar_accounts_transfer" ("id") '
    "DEFERRABLE INITIALLY DEFERRED)",
    'CREATE UNIQUE INDEX "oscar_accounts_transaction_transfer_id_account_id_uniq" '
    'ON "oscar_accounts_transaction" ("transfer_id", "account_id")',
    'CREATE TABLE "oscar_accounts_ipaddressrecord" ('
    '"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "ip_address" char(39) NOT NULL UNIQUE, '
    '"total_failures" integer unsigned NOT NULL CHECK ("total_failures" >= 0), '
    '"consecutive_failures" integer unsigned NOT NULL CHECK ("consecutive_failures" >= 0), '
    '"date_created" datetime NOT NULL, "date_last_failure" datetime NULL)',
    'CREATE INDEX "oscar_accounts_transfer_parent_id" ON "oscar_accounts_transfer" ("parent_id")',
    'CREATE INDEX "oscar_accounts_transaction_account_id" '
    'ON "oscar_accounts_transaction" ("account_id")',
]

MYSQL = [
    "CREATE TABLE `oscar_accounts_accounttype` (`id` integer AUTO_INCREMENT NOT NULL PRIMARY KEY, "
    "`path` varchar(255) NOT NULL UNIQUE, `depth` integer UNSIGNED NOT NULL CHECK (`depth` >= 0), "
    "`numchild` integer UNSIGNED NOT NULL CHECK (`numchild` >= 0), "
    "`code` varchar(128) NULL UNIQUE, `name` varchar(128) NOT NULL)",
    "CREATE TABLE `oscar_accounts_account` (`id` integer AUTO_INCREMENT NOT NULL PRIMARY KEY, "
    "`name` varchar(128) NULL UNIQUE, `description` longtext NULL, "
    "`code` varchar(128) NULL UNIQUE, `status` varchar(32) NOT NULL, "
    "`credit_limit` numeric(12, 2) NULL, `balance` numeric(12, 2) NULL, "
    "`start_date` datetime(6) NULL, `end_date` datetime(6) NULL, "
    "`can_be_used_for_non_products` bool NOT NULL, `date_created` datetime(6) NOT NULL, "
    "`account_type_id` integer NULL, `primary_user_id` integer NULL, "
    "`product_range_id` integer NULL)",
    "CREATE TABLE `oscar_accounts_account_secondary_users` ("
    "`id` integer AUTO_INCREMENT NOT NULL PRIMARY KEY, `account_id` integer NOT NULL, "
    "`user_id` integer NOT NULL)",
    "CREATE TABLE `oscar_accounts_transfer` (`id` integer AUTO_INCREMENT NOT NULL PRIMARY KEY, "
    "`reference` varchar(64) NULL UNIQUE, `amount` numeric(12, 2) NOT NULL, "
    "`merchant_reference` varchar(128) NULL, `description` varchar(256) NULL, "
    "`username` varchar(150) NOT NULL, `date_created` datetime(6) NOT NULL, "
    "`destination_id` integer NOT NULL, `parent_id` integer NULL, `source_id` integer NOT NULL, "
    "`user_id` integer NULL)",
    "CREATE TABLE `oscar_accounts_transaction` (`id` integer AUTO_INCREMENT NOT NULL PRIMARY KEY, "
    "`amount` numeric(12, 2) NOT NULL, `date_created` datetime(6) NOT NULL, "
    "`account_id` integer NOT NULL, `transfer_id` integer NOT NULL)",
    "CREATE TABLE `oscar_accounts_ipaddressrecord` ("
    "`id` integer AUTO_INCREMENT NOT NULL PRIMARY KEY, `ip_address` char(39) NOT NULL UNIQUE, "
    "`total_failures` integer UNSIGNED NOT NULL CHECK (`total_failures` >= 0), "
    "`consecutive_failures` integer UNSIGNED NOT NULL CHECK (`consecutive_failures` >= 0), "
    "`date_created` datetime(6) NOT NULL, `date_last_failure` datetime(6) NULL)",
    "ALTER TABLE `oscar_accounts_account_secondary_users` ADD CONSTRAINT "
    "`oscar_accounts_account_secondary_users_account_id_user_id_uniq` "
    "UNIQUE (`account_id`, `user_id`)",
    "ALTER TABLE `oscar_accounts_transaction` ADD CONSTRAINT "
    "`oscar_accounts_transaction_transfer_id_account_id_uniq` "
    "UNIQUE (`transfer_id`, `account_id`)",
    "ALTER TABLE `oscar_accounts_account` ADD CONSTRAINT `oscar_accounts_account_type_fk` "
    "FOREIGN KEY (`account_type_id`) REFERENCES `oscar_accounts_accounttype` (`id`)",
    "ALTER TABLE `oscar_accounts_account` ADD CONSTRAINT `oscar_accounts_account_user_fk` "
    "FOREIGN KEY (`primary_user_id`) REFERENCES `auth_user` (`id`)",
    "ALTER TABLE `oscar_accounts_account_secondary_users` ADD CONSTRAINT "
    "`oscar_accounts_secondary_account_fk` FOREIGN KEY (`account_id`) "
    "REFERENCES `oscar_accounts_account` (`id`)",
    "ALTER TABLE `oscar_accounts_account_secondary_users` ADD CONSTRAINT "
    "`oscar_accounts_secondary_user_fk` FOREIGN KEY (`user_id`) REFERENCES `auth_user` (`id`)",
    "ALTER TABLE `oscar_accounts_transfer` ADD CONSTRAINT `oscar_accounts_transfer_dest_fk` "
    "FOREIGN KEY (`destination_id`) REFERENCES `oscar_accounts_account` (`id`)",
    "ALTER TABLE `oscar_accounts_transfer` ADD CONSTRAINT `oscar_accounts_transfer_parent_fk` "
    "FOREIGN KEY (`parent_id`) REFERENCES `oscar_accounts_transfer` (`id`)",
    "ALTER TABLE `oscar_accounts_transfer` ADD CONSTRAINT `oscar_accounts_transfer_source_fk` "
    "FOREIGN KEY (`source_id`) REFERENCES `oscar_accounts_account` (`id`)",
    "ALTER TABLE `oscar_accounts_transfer` ADD CONSTRAINT `oscar_accounts_transfer_user_fk` "
    "FOREIGN KEY (`user_id`) REFERENCES `auth_user` (`id`)",
    "ALTER TABLE `oscar_accounts_transaction` ADD CONSTRAINT `oscar_accounts_transaction_acct_fk` "
    "FOREIGN KEY (`account_id`) REFERENCES `oscar_accounts_account` (`id`)",
    "ALTER TABLE `oscar_accounts_transaction` ADD CONSTRAINT "
    "`oscar_accounts_transaction_transfer_fk` FOREIGN KEY (`transfer_id`) "
    "REFERENCES `oscar_accounts_transfer` (`id`)",
]

DDL = {"postgresql": POSTGRESQL, "sqlite": SQLITE, "mysql": MYSQL}
#: Dropped children first.
TABLES = [
    "oscar_accounts_transaction",
    "oscar_accounts_account_secondary_users",
    "oscar_accounts_transfer",
    "oscar_accounts_account",
    "oscar_accounts_accounttype",
    "oscar_accounts_ipaddressrecord",
]


@contextmanager
def oscar_tables(using="default"):
    database = connections[using]
    with database.cursor() as cursor:
        for statement in DDL[database.vendor]:
            cursor.execute(statement)
    try:
        yield
    finally:
        with database.cursor() as cursor:
            for table in TABLES:
                cursor.execute("DROP TABLE %s" % database.ops.quote_name(table))


# A ledger, as oscar-accounts writes it ------------------------------------------------------


def oscar_reference(pk):
    """Oscar's Transfer._generate_reference: an HMAC-MD5 of the id, in upper case hex."""
    return (
        hmac.new(settings.SECRET_KEY.encode(), str(pk).encode(), hashlib.md5).hexdigest().upper()
    )


def insert_row(table, using="default", **columns):
    database = connections[using]
    names = list(columns)
    values = [
        database.ops.adapt_datetimefield_value(value) if hasattr(value, "tzinfo") else value
        for value in columns.values()
    ]
    with database.cursor() as cursor:
        cursor.execute(
            "INSERT INTO %s (%s) VALUES (%s)"
            % (
                database.ops.quote_name(table),
                ", ".join(database.ops.quote_name(name) for name in names),
                ", ".join(["%s"] * len(names)),
            ),
            values,
        )


def execute(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))


#: (id, path, depth, numchild, code, name): what oscar_accounts_init makes, and a type of ours.
TYPES = [
    (1, "0001", 1, 3, None, "Assets"),
    (2, "00010001", 2, 0, None, "Sales"),
    (3, "00010002", 2, 0, None, "Cash"),
    (4, "00010003", 2, 0, None, "Unpaid accounts"),
    (5, "0002", 1, 1, None, "Liabilities"),
    (6, "00020001", 2, 2, None, "Deferred income"),
    (7, "000200010001", 3, 0, None, "Dashboard created accounts"),
    (8, "000200010002", 3, 0, "GIFTCARDS", "Gift cards"),
]

#: (id, source, destination, amount, parent, merchant reference, description, user, day)
TRANSFERS = [
    (1, 3, 5, "100.00", None, None, "Dashboard: new account", "staff", "01-05"),
    (2, 3, 6, "50.00", None, None, "Create new account", None, "01-06"),
    (3, 3, 7, "20.00", None, None, "Create new account", None, "01-07"),
    (4, 5, 1, "30.00", None, "ORDER-1", "Redeemed to pay for order ORDER-1", "barry", "01-10"),
    (5, 1, 5, "10.00", 4, "ORDER-1", "Refund", None, "01-11"),
    (6, 1, 5, "5.00", 4, "ORDER-1", "Refund", None, "01-12"),
    (7, 5, 1, "20.00", None, "ORDER-2", "Redeemed to pay for order ORDER-2", "barry", "01-15"),
    (8, 1, 5, "20.00", None, None, "Reverse", "staff", "01-16"),  # facade.reverse: no parent
    (9, 6, 2, "50.00", None, None, "Closing account", None, "02-01"),
    (10, 8, 1, "30.00", None, "ORDER-3", "Redeemed to pay for order ORDER-3", "alice", "02-03"),
    (11, 3, 9, "15.00", None, None, "Create new account", None, "02-05"),
    (12, 3, 5, "5.00", 1, None, "Goodwill", "staff", "02-10"),  # a parent, but not a reversal
    (13, 4, 5, "12.34", None, None, "Unpaid top-up", None, "02-12"),
    (14, 1, 5, "2.00", 5, "ORDER-1", "Refund of a refund?", None, "02-14"),  # parent reversal
]
LEGACY_REFERENCE = "LEGACY-REFERENCE-FROM-ANOTHER-SYSTEM-13"

#: Oscar's stored balances once the transfers above are posted.
BALANCES = {
    1: "43.00",
    2: "50.00",
    3: "-190.00",
    4: "-12.34",
    5: "104.34",
    6: "0.00",
    7: "20.00",
    8: "-30.00",
    9: "15.00",
}


def fill_oscar_ledger(using="default"):
    """Oscar's ledger in database ``using``, with its users; returns them by username."""
    users = {
        name: get_user_model().objects.db_manager(using).create_user(name)
        for name in ("barry", "alice", "staff")
    }
    insert = functools.partial(insert_row, using=using)
    for pk, path, depth, numchild, code, name in TYPES:
        insert(
            "oscar_accounts_accounttype",
            id=pk, path=path, depth=depth, numchild=numchild, code=code, name=name,
        )  # fmt: skip
    accounts = [
        dict(id=1, name="Redemptions", account_type_id=2),
        dict(id=2, name="Lapsed accounts", account_type_id=2),
        dict(id=3, name="Bank", account_type_id=3, credit_limit=None),
        dict(id=4, name="Unpaid source", account_type_id=4, credit_limit=None),
        dict(id=5, name="Barry's account", account_type_id=7, primary_user_id=users["barry"].pk),
        dict(
            id=6, code="ABCD-1234-EFGH", account_type_id=8, status="Closed",
            end_date=at("01-31", 23, 59),
        ),
        dict(id=7, code="FROZEN-CARD", account_type_id=8, status="Frozen"),
        dict(id=8, name="Team budget", account_type_id=7, credit_limit=D("100.00")),
        dict(
            id=9, code="LATE-1", account_type_id=8, end_date=at("02-15"), product_range_id=7,
            can_be_used_for_non_products=False, description="This text is shown at checkout",
        ),
    ]  # fmt: skip
    for account in accounts:
        insert(
            "oscar_accounts_account",
            **{
                "name": None,
                "description": None,
                "code": None,
                "status": "Open",
                "credit_limit": D("0.00"),
                "balance": D(BALANCES[account["id"]]),
                "start_date": None,
                "end_date": None,
                "can_be_used_for_non_products": True,
                "date_created": at("01-02", 9),
                "primary_user_id": None,
                "product_range_id": None,
                **account,
            },
        )
    insert("oscar_accounts_account_secondary_users", account_id=8, user_id=users["barry"].pk)
    insert("oscar_accounts_account_secondary_users", account_id=8, user_id=users["alice"].pk)
    for pk, source, destination, amount, parent, merchant, description, user, day in TRANSFERS:
        created = at(day, 14, 30)
        insert(
            "oscar_accounts_transfer",
            id=pk,
            reference=LEGACY_REFERENCE if pk == 13 else oscar_reference(pk),
            source_id=source,
            destination_id=destination,
            amount=D(amount),
            parent_id=parent,
            merchant_reference=merchant,
            description=description,
            user_id=users[user].pk if user else None,
            username=user or "",
            date_created=created,
        )
        insert(
            "oscar_accounts_transaction",
            transfer_id=pk, account_id=source, amount=-D(amount), date_created=created,
        )  # fmt: skip
        insert(
            "oscar_accounts_transaction",
            transfer_id=pk, account_id=destination, amount=D(amount), date_created=created,
        )  # fmt: skip
    insert(
        "oscar_accounts_ipaddressrecord",
        ip_address="192.0.2.7", total_failures=4, consecutive_failures=4,
        date_created=at("02-01"), date_last_failure=at("02-01"),
    )  # fmt: skip
    return users


@pytest.fixture
def oscar_ledger(transactional_db):
    with oscar_tables():
        yield fill_oscar_ledger()


def run(*args):
    out = io.StringIO()
    call_command("import_oscar_accounts", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def core(role):
    return Account.objects.core(role, "GBP")


# The import -----------------------------------------------------------------------------------


def test_the_import_writes_the_same_ledger(oscar_ledger):
    users = oscar_ledger

    output = run()

    assert output.startswith(
        "Imported 8 account type(s), 6 account(s) and 14 transfer(s) (2 reversal(s) linked "
        "to their originals), in GBP.\n"
        "  oscar's 'Redemptions' is now Sales (GBP)\n"
        "  oscar's 'Lapsed accounts' is now Expired accounts (GBP)\n"
        "  oscar's 'Bank' is now Bank (GBP)\n"
        "Checked: 9 balances equal oscar's; check_ledger found nothing.\n"
    )
    assert check_ledger().ok
    assert Transfer.objects.count() == 14
    assert Transaction.objects.count() == 28
    # Balances: oscar's, account by account.
    barry_account = Account.objects.get(name="Barry's account")
    assert barry_account.balance.amount == D("104.34")
    assert core("source").balance.amount == D("-190.00")
    assert core("sales").balance.amount == D("43.00")
    assert core("expired").balance.amount == D("50.00")
    assert Account.objects.get(name="Unpaid source").balance.amount == D("-12.34")
    assert Account.objects.get(name="Unpaid source").credit_limit is None
    # Accounts: codes normalized, statuses, users, limits, dates.
    swept = Account.objects.get(code="ABCD1234EFGH")
    assert (swept.status, swept.balance.amount, swept.end_date) == (
        Account.Status.CLOSED,
        D("0.00"),
        at("01-31", 23, 59),
    )
    assert Account.objects.get(code="FROZENCARD").status == Account.Status.FROZEN
    late = Account.objects.get(code="LATE1")
    assert (late.status, late.description) == (
        Account.Status.OPEN,
        "This text is shown at checkout",
    )
    assert barry_account.primary_user == users["barry"]
    assert barry_account.created == at("01-02", 9)
    team = Account.objects.get(name="Team budget")
    assert team.credit_limit.amount == D("100.00")
    assert team.balance.amount == D("-30.00")
    assert set(team.secondary_users.all()) == {users["barry"], users["alice"]}
    assert team.credit_limit_changed_at is not None
    assert {a.currency for a in Account.objects.all() if not a.is_core} == {"GBP"}


def test_account_types_become_a_tree_of_parent_links(oscar_ledger):
    run()

    gift = AccountType.objects.get(name="Gift cards")
    assert gift.code == "GIFTCARDS"
    assert [t.name for t in gift.ancestors()] == ["Deferred income", "Liabilities"]
    assert AccountType.objects.get(name="Dashboard created accounts").code == (
        "dashboard-created-accounts"
    )
    assert AccountType.objects.get(name="Sales").parent.name == "Assets"
    assert set(Account.objects.of_type(gift)) == set(
        Account.objects.filter(code__in=["ABCD1234EFGH", "FROZENCARD", "LATE1"])
    )
    # Oscar filed its core accounts under Assets: so are they here.
    assert core("source").account_type.name == "Cash"
    assert core("sales").account_type.name == "Sales"


def test_transfers_keep_their_references_times_users_and_reversals(oscar_ledger):
    users = oscar_ledger

    output = run()

    by_reference = {t.reference: t for t in Transfer.objects.all()}
    redemption = by_reference[oscar_reference(4)]
    assert (redemption.merchant_reference, redemption.username, redemption.user) == (
        "ORDER-1",
        "barry",
        users["barry"],
    )
    assert redemption.created == at("01-10", 14, 30)
    # Oscar has no effective dates: every transfer took effect when posted.
    assert not Transfer.objects.exclude(effective_at=F("created")).exists()
    assert {leg.created for leg in redemption.transactions.all()} == {at("01-10", 14, 30)}
    refunds = by_reference[oscar_reference(5)], by_reference[oscar_reference(6)]
    assert [r.parent for r in refunds] == [redemption, redemption]
    assert redemption.reversible_amount().amount == D("15.00")
    assert by_reference[oscar_reference(8)].parent is None  # oscar's reverse set none
    assert by_reference[oscar_reference(12)].parent is None
    assert by_reference[oscar_reference(14)].parent is None
    assert LEGACY_REFERENCE not in by_reference
    (renamed,) = set(by_reference) - {oscar_reference(pk) for pk in range(1, 15)}
    # What could not be mapped is reported.
    assert (
        "transfer %s (#13): reference %r does not fit here; its reference is now %s"
        % (LEGACY_REFERENCE, LEGACY_REFERENCE, renamed)
    ) in output
    assert "(#12): imported without its link to the transfer it names as parent: it does" in output
    assert (
        "(#14): imported without its link to the transfer it names as parent: its parent #5 "
        "is itself a reversal" in output
    )
    assert "account type 'Assets': code assets (oscar's: none)" in output
    assert "account ABCD-1234-EFGH (#6): code 'ABCD-1234-EFGH' stored as ABCD1234EFGH" in output
    assert "account LATE-1 (#9): restricted to a product range" in output
    assert "1 IP address record(s) of failed code lookups were not imported" in output
    assert "1 account(s) are past their end date and not closed" in output


def test_transfers_are_read_in_chunks_while_they_are_written(oscar_ledger, monkeypatch):
    """Reading oscar's transfers (a server-side cursor on PostgreSQL) goes on while
    the ledger is written on the same connection."""
    from accounts import oscar_import_transfers

    monkeypatch.setattr(oscar_import_transfers, "CHUNK", 3)
    progress = []

    report = import_oscar_accounts(progress=progress.append)

    assert progress == [3, 6, 9, 12, 14]
    assert report.transfers == Transfer.objects.count() == 14
    assert check_ledger().ok


def test_the_imported_ledger_reports_like_one_posted_here(oscar_ledger):
    run()

    report = reports.movements(at("01-01"), at("02-28"))
    (total,) = [row.cells for row in report.rows if row.is_total]
    assert total["top_ups"] == D("190.00")  # from the bank
    assert total["spending"] == D("-80.00")
    # Two linked refunds, oscar's unlinked reverse (back from sales), and the
    # unlinked "refund of a refund".
    assert total["refunds_and_reversals"] == D("37.00")
    assert total["expiries"] == D("-50.00")
    # The unpaid source is an ordinary account here: its top-up of Barry's
    # account moves money between two of them.
    assert total["between_accounts"] == 0
    assert total["closing"] == D("97.00")
    assert total["unexplained"] == 0
    by_type = {row.cells["account_type"]: row.cells for row in report.rows}
    assert by_type["Assets / Unpaid accounts"]["between_accounts"] == D("-12.34")


def test_running_it_twice_is_refused_and_changes_nothing(oscar_ledger):
    run()
    before = list(Transaction.objects.order_by("pk").values_list("pk", "balance_after"))

    with pytest.raises(CommandError, match="already has 14 transfer.*runs once") as raised:
        run()

    assert raised.value.returncode == 1
    assert list(Transaction.objects.order_by("pk").values_list("pk", "balance_after")) == before


def test_a_dry_run_checks_everything_and_writes_nothing(oscar_ledger):
    output = run("--dry-run")

    assert output.startswith("Would import 8 account type(s), 6 account(s) and 14 transfer(s)")
    assert output.endswith("Dry run: nothing was written.\n")
    assert Transfer.objects.count() == 0
    assert Account.objects.filter(role__isnull=True).count() == 0
    assert AccountType.objects.count() == 0
    assert core("source").balance.amount == 0


def test_a_balance_oscar_got_wrong_refuses_the_import(oscar_ledger):
    execute("UPDATE oscar_accounts_account SET balance = 99.99 WHERE id = 7")

    with pytest.raises(
        ImportRefused,
        match=r"account FROZEN-CARD \(#7\): oscar's balance is 99.99 but its transactions give 20",
    ):
        import_oscar_accounts()

    assert Transfer.objects.count() == 0
    assert Account.objects.filter(role__isnull=True).count() == 0


def test_what_cannot_be_imported_as_it_is_is_listed_and_nothing_is_written(oscar_ledger):
    execute("UPDATE oscar_accounts_account SET status = 'Suspended' WHERE id = 5")
    execute("UPDATE oscar_accounts_account SET code = 'FROZEN CARD' WHERE id = 9")

    with pytest.raises(
        CommandError, match="The import was refused; nothing was written:"
    ) as raised:
        run()

    message = str(raised.value)
    assert "account Barry's account (#5) has status 'Suspended', which is none of Open" in message
    assert "codes 'FROZEN-CARD' and 'FROZEN CARD' are the same code here (FROZENCARD)" in message
    assert raised.value.returncode == 1
    assert Transfer.objects.count() == 0


def test_legs_that_are_not_the_transfers_amount_refuse_the_import(oscar_ledger):
    execute(
        "UPDATE oscar_accounts_transaction SET amount = -29 WHERE transfer_id = 4 AND amount < 0"
    )

    with pytest.raises(
        ImportRefused, match=r"transfer .* \(#4\): its legs .* are not minus 30.00"
    ):
        import_oscar_accounts()

    assert Account.objects.filter(role__isnull=True).count() == 0


def test_an_amount_the_currency_cannot_hold_refuses_the_import(oscar_ledger):
    with pytest.raises(ImportRefused, match="12.34 has more decimal places than JPY allows"):
        import_oscar_accounts(currency="JPY")


def test_an_unknown_currency_is_a_usage_error(oscar_ledger):
    with pytest.raises(CommandError, match="XYZ") as raised:
        run("--currency", "XYZ")

    assert raised.value.returncode == 2


@pytest.mark.django_db(transaction=True, databases=["default", "oscar"])
def test_the_ledger_can_come_from_another_database(oscar_ledger_elsewhere):
    # Users are matched by username: their ids differ between the databases.
    here = {u.username: u for u in get_user_model().objects.all()}
    assert here["barry"].pk != oscar_ledger_elsewhere["barry"].pk

    output = run("--database", "oscar")

    assert "Imported 8 account type(s), 6 account(s) and 14 transfer(s)" in output
    team = Account.objects.get(name="Team budget")
    assert set(team.secondary_users.all()) == {here["barry"], here["alice"]}
    assert Account.objects.get(name="Barry's account").primary_user == here["barry"]
    assert Transfer.objects.get(reference=oscar_reference(4)).user == here["barry"]
    assert check_ledger().ok
    assert Account.objects.using("oscar").filter(role__isnull=True).count() == 0


@pytest.fixture
def oscar_ledger_elsewhere(transactional_db):
    # Users of this database, created in another order.
    for name in ("someone", "staff", "alice", "barry"):
        UserFactory(username=name)
    with oscar_tables("oscar"):
        yield fill_oscar_ledger("oscar")


def test_an_unknown_database_alias_is_a_usage_error(transactional_db):
    with pytest.raises(CommandError, match="Unknown database alias 'elsewhere'") as raised:
        run("--database", "elsewhere")

    assert raised.value.returncode == 2


def test_without_oscar_tables_the_import_says_so(transactional_db):
    with pytest.raises(ImportRefused, match="database 'default' has no table oscar_accounts_"):
        import_oscar_accounts()
