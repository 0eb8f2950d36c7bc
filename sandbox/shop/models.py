"""
The demo shop's orders.

Payments are not stored here: they are the ledger's transfers whose
merchant reference is the order number (see ``payments.place_order``), and
refunds are their reversals. The ledger stays the one record of money.
"""

from decimal import Decimal
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import get_random_string
from djmoney.models.fields import MoneyField
from djmoney.money import Money

from accounts.codes import ALPHABET
from accounts.models import Account, Transfer

from .catalogue import CURRENCY

#: The choices of the money fields' currency columns (django-money's default,
#: every currency Babel knows, would put a version-dependent list in the migration).
CURRENCY_CHOICES = [(CURRENCY, CURRENCY)]


def new_order_number() -> str:
    return "SO-" + get_random_string(8, ALPHABET)


class Order(models.Model):
    number = models.CharField(max_length=16, unique=True, default=new_order_number, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders"
    )
    total = MoneyField(
        max_digits=12,
        decimal_places=2,
        default_currency=CURRENCY,
        currency_choices=CURRENCY_CHOICES,
    )
    #: What gift cards and the customer's account did not cover: paid by card
    #: (simulated in the sandbox).
    card_amount = MoneyField(
        max_digits=12,
        decimal_places=2,
        default=Decimal("0"),
        default_currency=CURRENCY,
        currency_choices=CURRENCY_CHOICES,
    )
    #: The checkout form's one-time token: posting that form again finds this
    #: order instead of paying a second one.
    idempotency_key = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(default=timezone.now)

    # django-money swaps the default manager for a class it builds at run
    # time, which type checkers cannot see: declare what it behaves as.
    objects: ClassVar[models.Manager["Order"]] = models.Manager()

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        return self.number

    def get_absolute_url(self) -> str:
        return reverse("shop:order", args=[self.number])

    @property
    def currency(self) -> str:
        return self.total.currency.code

    def payments(self) -> models.QuerySet:
        """The ledger transfers that paid this order, oldest first."""
        return (
            Transfer.objects.filter(
                merchant_reference=self.number,
                parent=None,
                destination__role=Account.Role.SALES,
            )
            .select_related("source")
            .order_by("pk")
        )

    def refunds(self) -> models.QuerySet:
        """The reversals of its payments, oldest first."""
        return (
            Transfer.objects.filter(parent__in=self.payments())
            .select_related("destination")
            .order_by("pk")
        )


class OrderLine(models.Model):
    """What was bought, as the basket had it when the order was placed."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    name = models.CharField(max_length=128)
    quantity = models.PositiveIntegerField()
    #: The unit price, in the order's currency.
    price = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return "%s × %s" % (self.quantity, self.name)

    @property
    def unit_price(self) -> Money:
        return Money(self.price, self.order.currency)

    @property
    def subtotal(self) -> Money:
        return self.unit_price * self.quantity
