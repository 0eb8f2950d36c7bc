"""
The demo shop's customer pages.

``checkout`` and ``refund`` are the examples of moving money from a view:
validate a form, call the ledger (``payments.place_order``, which calls
``accounts.facade.transfer``; ``accounts.facade.reverse``), and show the
customer the ledger's reason when it refuses: ``exc.user_message``, the
short message meant for customers (``str(exc)`` is for logs and staff).
Every page that shows or moves money checks that the customer may use the
account or owns the order.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts import charts, facade, reports
from accounts.exceptions import AccountException
from accounts.forms import StatementFilterForm
from accounts.models import Account, Decline, Transfer
from accounts.pagination import UncountedPage

from . import notifications
from .basket import Basket
from .catalogue import PRODUCTS
from .forms import PaymentForm, RefundForm
from .models import Order
from .payments import place_order

#: Statement rows per page.
STATEMENT_PAGE_SIZE = 20


def shop(request: HttpRequest, form: PaymentForm | None = None) -> HttpResponse:
    """The products, the basket and, for a logged-in customer, the payment form."""
    basket = Basket(request.session)
    if form is None and request.user.is_authenticated:
        form = PaymentForm(request=request, basket=basket)
    context = {"products": PRODUCTS.values(), "basket": basket, "form": form}
    return render(request, "shop/shop.html", context)


@require_POST
def update_basket(request: HttpRequest) -> HttpResponse:
    basket = Basket(request.session)
    slug = request.POST.get("product", "")
    if slug not in PRODUCTS:
        raise Http404(_("There is no such product."))
    if request.POST.get("action") == "remove":
        basket.remove(slug)
    else:
        basket.add(slug)
    return redirect("shop:shop")


@login_required
@require_POST
def checkout(request: HttpRequest) -> HttpResponse:
    """Pay for the basket with gift cards and/or the customer's account; the rest by card."""
    basket = Basket(request.session)
    form = PaymentForm(request.POST, request=request, basket=basket)
    if form.is_valid():
        try:
            order = place_order(
                request.user,
                basket,
                key=form.cleaned_data["token"],
                cards=form.cleaned_data["cards"],
                account=form.cleaned_data["account"],
            )
        except AccountException as exc:
            # Nothing was charged and no order exists: tell the customer why.
            form.add_error(None, exc.user_message)
        else:
            basket.clear()
            messages.success(
                request, _("Thank you: order %(number)s is paid.") % {"number": order}
            )
            return redirect(order)
    return shop(request, form)


@login_required
def order_detail(request: HttpRequest, number: str) -> HttpResponse:
    order = get_object_or_404(Order, number=number, user=request.user)
    # Two forms per payment, each with its own token: an amount, or all that is left.
    payments = [
        (payment, payment.reversible_amount(), *refund_forms(payment))
        for payment in order.payments()
    ]
    context = {
        "order": order,
        "lines": order.lines.select_related("order"),
        "payments": payments,
        "refunds": order.refunds(),
    }
    return render(request, "shop/order.html", context)


def refund_forms(payment: Transfer) -> tuple[RefundForm, RefundForm]:
    """The form for an amount, and the "Refund all" button's form."""
    return RefundForm(payment=payment, auto_id=False), RefundForm(payment=payment, auto_id=False)


@login_required
@require_POST
def refund(request: HttpRequest, number: str, payment_id: int) -> HttpResponse:
    """Give back (part of) one payment of the customer's own order, to where it came from."""
    order = get_object_or_404(Order, number=number, user=request.user)
    payment = get_object_or_404(order.payments(), pk=payment_id)
    form = RefundForm(request.POST, payment=payment)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors.get("amount", [_("Try again.")])))
        return redirect(order)
    try:
        refunded = facade.reverse(
            payment,
            # Always an amount: "Refund all" posts the amount it showed, so a
            # refund never moves more than the customer saw.
            amount=form.cleaned_data["amount"],
            user=request.user,
            description=_("Refund for order %(number)s") % {"number": order},
            idempotency_key="refund:%s" % form.cleaned_data["token"],
        )
    except AccountException as exc:
        messages.error(request, exc.user_message)
    else:
        messages.success(request, _("Refunded %(amount)s.") % {"amount": refunded.amount})
    return redirect(order)


@login_required
def order_list(request: HttpRequest) -> HttpResponse:
    orders = Order.objects.filter(user=request.user)
    return render(request, "shop/order_list.html", {"orders": orders})


@login_required
def my_accounts(request: HttpRequest) -> HttpResponse:
    """The accounts the customer may use, as primary or secondary user."""
    accounts = (
        Account.objects.for_user(request.user)
        .select_related("account_type")
        .order_by("currency", "pk")
    )
    return render(request, "shop/my_accounts.html", {"accounts": accounts})


@login_required
def statement(request: HttpRequest, pk: int) -> HttpResponse:
    """One of the customer's accounts, newest first, with the balance after each line."""
    account = get_object_or_404(Account.objects.for_user(request.user), pk=pk)
    dates = StatementFilterForm(request.GET)
    start = end = None
    date_field = "created"
    if dates.is_valid():
        start, end = dates.cleaned_data["start"], dates.cleaned_data["end"]
        date_field = dates.cleaned_data["date_field"]
    statement = account.statement(start, end, date_field=date_field)
    # Read a page and one row more; a long history is never counted.
    page = UncountedPage(
        statement.transactions.reverse(), request.GET.get("page"), STATEMENT_PAGE_SIZE
    )
    # The balance over the same dates, drawn on the server (one query).
    chart = charts.balance_chart(reports.balance_history(account, start, end))
    # Payments refused in the period, newest first (recorded: ACCOUNTS_RECORD_DECLINES).
    declines = Decline.objects.for_account(account).filter(created__lte=statement.end)
    if statement.start is not None:
        declines = declines.filter(created__gte=statement.start)
    context = {
        "account": account,
        "statement": statement,
        "dates": dates,
        "page": page,
        "chart": chart,
        "spending": account.spending(),
        "declines": declines.order_by("-created", "-pk")[:STATEMENT_PAGE_SIZE],
    }
    return render(request, "shop/statement.html", context)


@login_required
@permission_required("accounts.mark_notified", raise_exception=True)
def send_notifications(request: HttpRequest) -> HttpResponse:
    """Staff: the transactions whose notification is not sent yet, and a button to send them.

    Needs ``accounts.mark_notified`` (the cashier has it). Each press sends
    the oldest ones, a batch of transfers and one of holds, each claimed
    with ``mark_notified()`` first (see ``notifications``).
    """
    if request.method == "POST":
        sent = notifications.send()
        for row in sent:
            messages.info(request, notifications.describe(row))
        messages.success(request, _("Sent %(count)s notification(s).") % {"count": len(sent)})
        return redirect("shop:notifications")
    waiting = notifications.waiting()
    batch = notifications.BATCH
    context = {
        "transfers": waiting["transfers"][:batch],
        "holds": waiting["holds"][:batch],
        "more": any(len(rows) > batch for rows in waiting.values()),
        "batch": batch,
    }
    return render(request, "shop/notifications.html", context)
