from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from accounts.admin_pages import money_cell
from accounts.admin_readonly import ADMIN_CSS

from .models import Order, OrderLine


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    fields = ("name", "quantity", "price")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("number_column", "total_money", "card_amount_money", "created", "user",
                    "ledger")  # fmt: skip
    list_select_related = ("user",)
    search_fields = ("^number", "user__username")
    list_filter = ("created",)
    fields = ("number", "created", "user", "total", "card_amount", "ledger")
    readonly_fields = fields
    inlines = [OrderLineInline]

    class Media:
        css = {"all": (ADMIN_CSS,)}

    @admin.display(description="number", ordering="number")
    def number_column(self, order):
        # SO-ABCD2345 on one line: never broken after its dash.
        return format_html('<span class="accounts-code">{}</span>', order.number)

    @admin.display(description="total", ordering="total")
    def total_money(self, order):
        return money_cell(order.total)

    @admin.display(description="paid by card", ordering="card_amount")
    def card_amount_money(self, order):
        return money_cell(order.card_amount)

    @admin.display(description="payments and refunds")
    def ledger(self, order):
        # The ledger is the record of the money: its transfers carry the order number.
        url = reverse("admin:accounts_transfer_changelist")
        return format_html('<a href="{}?q={}">transfers</a>', url, order.number)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
