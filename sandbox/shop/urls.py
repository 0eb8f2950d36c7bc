from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

app_name = "shop"

urlpatterns = [
    path("", views.shop, name="shop"),
    path("basket/", views.update_basket, name="update_basket"),
    path("checkout/", views.checkout, name="checkout"),
    path("orders/", views.order_list, name="orders"),
    path("orders/<str:number>/", views.order_detail, name="order"),
    path("orders/<str:number>/refund/<int:payment_id>/", views.refund, name="refund"),
    path("my-accounts/", views.my_accounts, name="my_accounts"),
    path("my-accounts/<int:pk>/statement/", views.statement, name="statement"),
    path("staff/notifications/", views.send_notifications, name="notifications"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="shop/login.html",
            next_page="shop:my_accounts",
            redirect_authenticated_user=True,
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page="shop:shop"), name="logout"),
]
