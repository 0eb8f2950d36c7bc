"""What the demo shop sells: a fixed list, in pounds."""

from dataclasses import dataclass
from decimal import Decimal

from djmoney.money import Money

CURRENCY = "GBP"


@dataclass(frozen=True)
class Product:
    slug: str
    name: str
    price: Money


PRODUCTS = {
    product.slug: product
    for product in [
        Product("coffee", "Coffee beans, 1 kg", Money(Decimal("18.50"), CURRENCY)),
        Product("tea", "Loose-leaf tea, 250 g", Money(Decimal("7.25"), CURRENCY)),
        Product("mugs", "Set of four mugs", Money(Decimal("22.00"), CURRENCY)),
        Product("teapot", "Cast-iron teapot", Money(Decimal("34.00"), CURRENCY)),
        Product("grinder", "Hand coffee grinder", Money(Decimal("45.00"), CURRENCY)),
    ]
}
