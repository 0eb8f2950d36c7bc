"""
Demo data for the sandbox: a small shop's staff, customers, gift cards and
six months of history.

Money only moves through ``accounts.facade`` (and the shop's
``place_order``), as it would in production. To spread the history over past
months honestly, each past operation runs with the clocks patched to its
moment, in chronological order: the application's (``timezone.now``) and
the one the ledger reads from the database under its locks
(``accounts.clock.travelled``), so the facade stamps its rows with that
time, exactly as it would have then. Ledger rows are never written or edited
any other way. (A demo's trick only: in production the ledger's time is the
database's, and nothing moves it.)
"""

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from unittest import mock

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import transaction
from django.utils import timezone

from accounts import collections, facade
from accounts.codes import format_code, generate_code
from accounts.exceptions import CollectionRunNotDue, SpendingLimitExceeded
from accounts.forms import new_token
from accounts.models import (
    Account,
    AccountType,
    CollectionRun,
    Debt,
    Hold,
    SpendingLimit,
    Transfer,
)

from .basket import Basket
from .models import Order
from .payments import place_order

#: (username, password, who they are): printed by rebuild_sandbox.
LOGINS = [
    ("admin", "admin", "superuser"),
    ("cashier", "cashier", "staff who may move money and send notifications"),
    ("clerk", "clerk", "staff who edit accounts but may not move money"),
    ("barry", "barry", "customer: store credit and the household wallet"),
    ("alice", "alice", "customer: a euro wallet, a card wallet on credit; shares barry's"),
    ("acme", "acme", "B2B customer: a £500 credit line with some debt"),
]

CLERK_PERMISSIONS = [
    ("accounts", "view_account"),
    ("accounts", "add_account"),
    ("accounts", "change_account"),
    ("accounts", "view_accounttype"),
    ("accounts", "view_transfer"),
    ("accounts", "view_transaction"),
    ("accounts", "view_hold"),
    ("accounts", "view_collectionrun"),
    ("accounts", "view_debt"),
    # Spending limits may be lowered by clerks; raising, adding and removing
    # one also needs move_money (cashiers).
    ("accounts", "view_spendinglimit"),
    ("accounts", "add_spendinglimit"),
    ("accounts", "change_spendinglimit"),
    ("accounts", "delete_spendinglimit"),
    ("accounts", "view_decline"),
    ("accounts", "view_repayment"),
    ("shop", "view_order"),
]
#: Cashiers move money, and send the customers' notifications (shop:notifications).
CASHIER_PERMISSIONS = [
    *CLERK_PERMISSIONS,
    ("accounts", "move_money"),
    ("accounts", "mark_notified"),
]

#: The card wallet's merchants: (merchant category code, city).
MERCHANTS = {
    "Teapot & Grinder": ("5814", "Leeds"),
    "Leeds Station Café": ("5812", "Leeds"),
    "Kirkgate Market": ("5411", "Leeds"),
    "Northern Rail": ("4112", "York"),
    "Kirkgate Electronics": ("5732", "Leeds"),
}


@contextmanager
def back_in_time(moment: datetime) -> Iterator[None]:
    """Run code as if it were ``moment``, for the shop and for the ledger."""
    with (
        mock.patch("django.utils.timezone.now", return_value=moment),
        mock.patch("accounts.clock.travelled", return_value=moment),
    ):
        yield


@transaction.atomic
def load() -> list[tuple[str, str]]:
    """Create the demo data; return the gift cards as (code, what it shows) to print."""
    Demo().run()
    return gift_card_summary()


class Demo:
    def __init__(self) -> None:
        self.now = timezone.now()
        self.random = random.Random(2026)  # the same history on every rebuild
        self.events: list[tuple[datetime, Callable[[], Any]]] = []
        self.cards: dict[str, Account] = {}

    def at(self, days_ago: float, action: Callable[[], Any], hour: int = 11) -> None:
        """Schedule ``action`` for ``days_ago`` days before now, at about ``hour`` o'clock."""
        moment = self.now - timedelta(days=days_ago)
        moment = timezone.localtime(moment).replace(hour=hour, minute=self.random.randrange(60))
        self.events.append((min(moment, self.now - timedelta(minutes=1)), action))

    def on(self, day: date, action: Callable[[], Any], hour: int = 11) -> None:
        """Schedule ``action`` on a calendar day (in the current time zone), at about ``hour``."""
        self.at((timezone.localdate(self.now) - day).days, action, hour=hour)

    def run(self) -> None:
        self.users()
        self.accounts()
        self.history()
        self.collections()
        # Oldest first, so that every account's rows follow posting order.
        for moment, action in sorted(self.events, key=lambda event: event[0]):
            with back_in_time(moment):
                action()
        # The history's notifications went out long ago; today's are waiting
        # for the cashier's "Send notifications" page.
        Transfer.objects.all().mark_notified()
        Hold.objects.all().mark_notified()
        self.today()

    # People ---------------------------------------------------------------------

    def users(self) -> None:
        User = get_user_model()
        User.objects.create_superuser("admin", "admin@example.com", "admin")
        self.cashier = self.staff("cashier", CASHIER_PERMISSIONS)
        self.clerk = self.staff("clerk", CLERK_PERMISSIONS)
        self.barry = User.objects.create_user("barry", "barry@example.com", "barry")
        self.alice = User.objects.create_user("alice", "alice@example.com", "alice")
        self.acme = User.objects.create_user(
            "acme", "accounts@acme.example.com", "acme", first_name="Acme Trading Ltd"
        )

    def staff(self, username: str, permissions: list[tuple[str, str]]) -> Any:
        user = get_user_model().objects.create_user(
            username, "%s@example.com" % username, username, is_staff=True
        )
        for app_label, codename in permissions:
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        return user

    # Accounts ---------------------------------------------------------------------

    def accounts(self) -> None:
        customer = AccountType.objects.create(name="Customer money", code="customer")
        self.credit_type = AccountType.objects.create(
            name="Store credit", code="store-credit", parent=customer
        )
        self.wallet_type = AccountType.objects.create(
            name="Wallets", code="wallets", parent=customer
        )
        self.gift_cards = AccountType.objects.create(name="Gift cards", code="gift-cards")
        self.b2b_type = AccountType.objects.create(name="Business credit", code="b2b-credit")

    def open_account(self, **fields: Any) -> Account:
        secondary = fields.pop("secondary_users", [])
        account = Account.objects.create(created=timezone.now(), **fields)
        account.secondary_users.set(secondary)
        return account

    def sell_card(
        self, key: str, amount: str, currency: str = "GBP", **fields: Any
    ) -> Callable[[], None]:
        def sell() -> None:
            fields.setdefault("end_date", timezone.now() + timedelta(days=365))
            card = self.open_account(
                code=generate_code(), account_type=self.gift_cards, currency=currency, **fields
            )
            self.cards[key] = card
            self.top_up(card, amount, "Gift card sold at the till")

        return sell

    # Money ------------------------------------------------------------------------

    def top_up(self, account: Account, amount: str, description: str) -> Any:
        bank = Account.objects.source_account(account.currency)
        return facade.transfer(
            bank, account, Decimal(amount), user=self.cashier, description=description
        )

    def buy(self, user: Any, items: list[tuple[str, int]], **payment: Any) -> Order:
        """An order in the shop, paid exactly as the checkout page pays it."""
        basket = Basket({})
        for slug, quantity in items:
            basket.add(slug, quantity)
        order = place_order(user, basket, key=new_token(), **payment)
        # The order's own row (not the ledger's) gets its moment too.
        Order.objects.filter(pk=order.pk).update(created=timezone.now())
        return order

    def pay_in_store(self, account: Account, amount: str, reference: str) -> Any:
        """A purchase at the till, in the account's currency, without a shop order."""
        sales = Account.objects.sales_account(account.currency)
        return facade.transfer(
            account,
            sales,
            Decimal(amount),
            allow_partial=True,
            user=self.cashier,
            merchant_reference=reference,
            description="In-store purchase",
        )

    def refund(self, order_box: list[Order], amount: str | None, why: str) -> Callable[[], Any]:
        def refund() -> None:
            payment = order_box[0].payments().first()
            facade.reverse(
                payment,
                amount=None if amount is None else Decimal(amount),
                user=self.cashier,
                description=why,
            )

        return refund

    # The story ----------------------------------------------------------------------

    def history(self) -> None:
        at, barry, alice, acme = self.at, self.barry, self.alice, self.acme
        accounts: dict[str, Account] = {}

        def open_customer_accounts() -> None:
            accounts["credit"] = self.open_account(
                name="Barry's store credit", primary_user=barry, account_type=self.credit_type
            )
            accounts["household"] = self.open_account(
                name="Household wallet",
                primary_user=barry,
                secondary_users=[alice],
                account_type=self.wallet_type,
            )
            accounts["euro"] = self.open_account(
                name="Alice's euro wallet",
                primary_user=alice,
                currency="EUR",
                account_type=self.wallet_type,
            )
            accounts["acme"] = self.open_account(
                name="Acme Trading Ltd",
                primary_user=acme,
                credit_limit=Decimal("500.00"),
                account_type=self.b2b_type,
                description="Invoiced monthly; 30 days to pay.",
            )
            self.top_up(accounts["credit"], "50.00", "Welcome credit")
            self.top_up(accounts["household"], "200.00", "Bank transfer from B. Smith")
            self.top_up(accounts["euro"], "150.00", "Bank transfer (SEPA)")

        at(182, open_customer_accounts, hour=9)
        # Sold with six months' validity: it lapses with money left on it.
        at(178, self.sell_card("expired", "20.00", end_date=self.now - timedelta(days=12)))
        at(172, self.sell_card("fifty", "50.00"))
        at(141, self.sell_card("ten", "10.00"))
        at(101, self.sell_card("lost", "40.00"))
        at(70, self.sell_card("euro", "30.00", currency="EUR"))
        at(16, self.sell_card("unused", "25.00"))

        # The household shops every nine days or so; barry and alice take turns.
        products = ["coffee", "tea", "mugs", "teapot"]
        for number, days_ago in enumerate(range(176, 4, -9)):
            shopper = (barry, alice)[number % 2]
            items = [(self.random.choice(products), self.random.randint(1, 2))]
            at(
                days_ago,
                lambda shopper=shopper, items=items: self.buy(
                    shopper, items, account=accounts["household"]
                ),
                hour=self.random.randint(9, 19),
            )
        for days_ago in (152, 122, 92, 62, 32):
            at(
                days_ago,
                lambda: self.top_up(
                    accounts["household"], "150.00", "Bank transfer from B. Smith"
                ),
                hour=8,
            )

        first: list[Order] = []
        at(
            160,
            lambda: first.append(
                self.buy(
                    barry,
                    [("grinder", 1), ("coffee", 1)],
                    cards=[self.cards["fifty"]],
                    account=accounts["credit"],
                )
            ),
        )
        at(
            155,
            self.refund(first, "18.50", "Refund: coffee arrived damaged"),
        )
        at(150, lambda: self.buy(acme, [("grinder", 4), ("teapot", 2)], account=accounts["acme"]))
        at(
            135,
            lambda: self.buy(alice, [("mugs", 1)], cards=[self.cards["ten"]]),
        )
        at(118, lambda: self.pay_in_store(accounts["euro"], "45.50", "TILL-EU-1042"))
        at(110, lambda: self.buy(acme, [("coffee", 10)], account=accounts["acme"]))
        at(
            95,
            lambda: self.top_up(accounts["acme"], "300.00", "Payment received: invoice INV-2041"),
        )
        at(
            80,
            lambda: self.buy(barry, [("teapot", 1)], account=accounts["credit"]),
        )
        at(64, lambda: self.pay_in_store(self.cards["euro"], "12.00", "TILL-EU-1077"))

        def duplicate_top_up() -> None:
            mistake = self.top_up(accounts["credit"], "25.00", "Goodwill credit")
            facade.reverse(mistake, user=self.cashier, description="Entered twice by mistake")
            self.top_up(accounts["credit"], "25.00", "Goodwill credit")

        at(58, duplicate_top_up)
        at(44, lambda: self.buy(alice, [("tea", 2)], cards=[self.cards["expired"]]))
        at(40, lambda: self.buy(acme, [("mugs", 6)], account=accounts["acme"]))

        cancelled: list[Order] = []
        at(
            30,
            lambda: cancelled.append(self.buy(barry, [("tea", 1)], account=accounts["credit"])),
        )
        at(29, self.refund(cancelled, None, "Order cancelled"))
        at(9, lambda: self.pay_in_store(self.cards["lost"], "6.00", "TILL-GB-2210"))
        self.household = accounts

    # Collecting debts ----------------------------------------------------------------

    def collections(self) -> None:
        """Alice's card wallet and Acme's credit line, collected once a month.

        The month before last was collected: the card wallet's direct debit
        came back (settled), Acme's was returned (failed, so Acme owes it
        again). Last month's run is frozen today and not run yet (pending).
        """
        this_month = timezone.localdate(self.now).replace(day=1)
        last_month = (this_month - timedelta(days=1)).replace(day=1)
        month_before = (last_month - timedelta(days=1)).replace(day=1)
        accounts: dict[str, Account] = {}

        def open_card_wallet() -> None:
            accounts["card"] = self.open_account(
                name="Alice's card wallet",
                primary_user=self.alice,
                account_type=self.wallet_type,
                credit_limit=Decimal("1000.00"),
                description="Pays by card on credit; collected by direct debit every month.",
            )
            # A card spends at most 400.00 a day and 600.00 a month.
            for period, amount in (("day", "400.00"), ("month", "600.00")):
                SpendingLimit.objects.create(
                    account=accounts["card"], period=period, amount=Decimal(amount)
                )

        self.on(month_before + timedelta(days=1), open_card_wallet, hour=9)
        # (posted on, amount, merchant, hours between the payment and its posting)
        for day, amount, merchant, late in (
            (month_before + timedelta(days=2), "42.50", "Teapot & Grinder", 0),
            (month_before + timedelta(days=11), "18.90", "Leeds Station Café", 26),
            (month_before + timedelta(days=20), "27.35", "Kirkgate Market", 0),
            (last_month + timedelta(days=3), "12.40", "Teapot & Grinder", 20),
            (last_month + timedelta(days=14), "31.00", "Northern Rail", 49),
        ):
            self.on(
                day,
                lambda a=amount, m=merchant, h=late: self.card_payment(
                    accounts["card"], a, m, late=h
                ),
            )

        def collect_month_before() -> None:
            run = self.monthly_run(accounts["card"], month_before, last_month)
            collections.run_collection(run)  # freeze it, and tell each debtor

        def money_came_back() -> None:
            # The only run so far: the month before last's.
            card = Debt.objects.get(account=accounts["card"])
            acme = Debt.objects.get(account=self.household["acme"])
            collections.settle(
                card,
                card.amount,
                reference="DD-%s-ALICE" % month_before.strftime("%Y%m"),
                user=self.cashier,
            )
            collections.fail(
                acme, "Direct debit returned: refer to payer (ARUDD 0)", user=self.cashier
            )

        self.on(last_month + timedelta(days=1), collect_month_before, hour=2)
        self.on(last_month + timedelta(days=5), money_came_back, hour=10)
        self.card_wallet = accounts

    def card_payment(self, account: Account, amount: str, merchant: str, late: int = 0) -> Any:
        """A card payment, posted ``late`` hours after it was made (its transaction date).

        It carries the merchant's category code, name and city as metadata,
        as a card scheme reports them.
        """
        mcc, city = MERCHANTS[merchant]
        return facade.transfer(
            account,
            Account.objects.sales_account(account.currency),
            Decimal(amount),
            merchant_reference="CARD-%s" % self.random.randrange(10**6, 10**7),
            description="Card payment: %s" % merchant,
            metadata={"mcc": mcc, "merchant": merchant, "city": city},
            # timezone.now() is the moment being replayed (back_in_time): the
            # database's clock under the lock is the same, or later.
            effective_at=timezone.now() - timedelta(hours=late) if late else None,
        )

    def monthly_run(self, card: Account, first: date, next_first: date) -> CollectionRun:
        """The collection run of a month: Acme's credit line and the card wallet."""
        return collections.create_run(
            accounts=Account.objects.filter(pk__in=[card.pk, self.household["acme"].pk]),
            name="Credit accounts",
            period_start=first,
            period_end=next_first - timedelta(days=1),
            collect_on=next_first + timedelta(days=4),
        )

    def today(self) -> None:
        """What happens now, not in the past: a card reported stolen, a reservation,
        last month's collection run frozen."""
        self.cards["lost"].freeze()
        facade.hold(
            self.household["household"],
            Account.objects.sales_account("GBP"),
            Decimal("34.00"),
            expires_at=self.now + timedelta(days=3),
            merchant_reference="CLICK-AND-COLLECT-318",
            description="Click & collect reservation",
            user=self.alice,
        )
        card = self.card_wallet["card"]
        self.card_payment(card, "320.00", "Kirkgate Electronics", late=22)
        try:
            # 320.00 spent today: the daily limit of 400.00 declines this one (kept as
            # a Decline, shown on Alice's statement and the card's admin page).
            self.card_payment(card, "95.00", "Leeds Station Café")
        except SpendingLimitExceeded:
            pass
        # What the shop owes its customers back (returned tickets, goodwill) is
        # paid out by facade.repay: into their debt first, never more than it.
        reimbursements = Account.objects.create(name="Reimbursements", credit_limit=None)
        facade.repay(
            reimbursements,
            card,
            Decimal("25.00"),
            idempotency_key="reimbursement-8841",
            description="Reimbursement: a returned train ticket",
            user=self.cashier,
        )
        this_month = timezone.localdate(self.now).replace(day=1)
        last_month = (this_month - timedelta(days=1)).replace(day=1)
        run = self.monthly_run(card, last_month, this_month)
        try:
            collections.freeze(run)  # pending debts: `manage.py run_collections` initiates them
        except CollectionRunNotDue:
            pass  # the first moments of a month: last month is not over by the database's clock


def gift_card_summary() -> list[tuple[str, str]]:
    """Each gift card's code and what trying it shows, for the printed instructions."""
    summary = []
    now = timezone.now()
    cards = Account.objects.of_type("gift-cards").order_by("-currency", "-balance")
    for card in cards:
        if card.is_frozen():
            state = "frozen (reported stolen): %s on it" % card.balance
        elif card.is_expired(now):
            state = "expired with %s left: `manage.py close_expired_accounts` sweeps it" % (
                card.balance
            )
        elif card.balance.amount:
            state = "%s to spend" % card.balance
        else:
            state = "spent"
        summary.append((format_code(card.code), state))
    return summary
