"""The customer's basket, kept in the session (no login needed to fill it)."""

from dataclasses import dataclass
from typing import Any

from djmoney.money import Money

from .catalogue import CURRENCY, PRODUCTS, Product

SESSION_KEY = "shop_basket"


@dataclass(frozen=True)
class Line:
    product: Product
    quantity: int

    @property
    def subtotal(self) -> Money:
        return self.product.price * self.quantity


class Basket:
    """Product slugs and quantities; ``session`` is any dict-like (the demo data passes a dict)."""

    currency = CURRENCY

    def __init__(self, session: Any) -> None:
        self.session = session
        self.quantities: dict[str, int] = {
            slug: quantity
            for slug, quantity in session.get(SESSION_KEY, {}).items()
            if slug in PRODUCTS and quantity > 0
        }

    def __bool__(self) -> bool:
        return bool(self.quantities)

    def add(self, slug: str, quantity: int = 1) -> None:
        self.quantities[slug] = self.quantities.get(slug, 0) + quantity
        self._save()

    def remove(self, slug: str) -> None:
        self.quantities.pop(slug, None)
        self._save()

    def clear(self) -> None:
        self.quantities = {}
        self._save()

    @property
    def lines(self) -> list[Line]:
        return [Line(PRODUCTS[slug], quantity) for slug, quantity in self.quantities.items()]

    @property
    def total(self) -> Money:
        return sum((line.subtotal for line in self.lines), Money(0, self.currency))

    def order_lines(self, order: Any) -> list[Any]:
        """The lines as ``order`` keeps them: what was bought, at what price."""
        from .models import OrderLine

        return [
            OrderLine(
                order=order,
                name=line.product.name,
                quantity=line.quantity,
                price=line.product.price.amount,
            )
            for line in self.lines
        ]

    def _save(self) -> None:
        # A new dict, so that the session knows it changed.
        self.session[SESSION_KEY] = dict(self.quantities)
