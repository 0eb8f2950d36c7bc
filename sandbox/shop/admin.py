from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from .models import Order, OrderLine


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    fields = ("name", "quantity", "price")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("number", "created", "user", "total", "card_amount", "ledger")
    list_select_related = ("user",)
    search_fields = ("^number", "user__username")
    list_filter = ("created",)
    fields = ("number", "created", "user", "total", "card_amount", "ledger")
    readonly_fields = fields
    inlines = [OrderLineInline]

    @admin.display(description="payments and refunds")
    def ledger(self, order):
        # The ledger is the record of the money: its transfers carry the order number.
        url = reverse("admin:accounts_transfer_changelist")
        return format_html('<a href="{}?q={}">transfers</a>', url, order.number)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
