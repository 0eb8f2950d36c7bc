"""
The REST API's URLs: ``path("api/accounts/", include("accounts.api.urls"))``.

URL names are in the ``accounts_api`` namespace.
"""

from django.urls import path

from . import views

app_name = "accounts_api"

urlpatterns = [
    path("accounts/", views.AccountListView.as_view(), name="account-list"),
    path("accounts/<int:pk>/", views.AccountDetailView.as_view(), name="account-detail"),
    path(
        "accounts/<int:pk>/statement/",
        views.StatementView.as_view(),
        name="account-statement",
    ),
    path(
        "accounts/<int:pk>/declines/",
        views.DeclineListView.as_view(),
        name="account-declines",
    ),
    path("transfers/", views.TransferCreateView.as_view(), name="transfer-list"),
    path(
        "transfers/<str:reference>/",
        views.TransferDetailView.as_view(),
        name="transfer-detail",
    ),
    path(
        "transfers/<str:reference>/reverse/",
        views.TransferReverseView.as_view(),
        name="transfer-reverse",
    ),
    path("holds/", views.HoldCreateView.as_view(), name="hold-list"),
    path("holds/<str:reference>/", views.HoldDetailView.as_view(), name="hold-detail"),
    path(
        "holds/<str:reference>/capture/",
        views.HoldCaptureView.as_view(),
        name="hold-capture",
    ),
    path(
        "holds/<str:reference>/release/",
        views.HoldReleaseView.as_view(),
        name="hold-release",
    ),
    path("batches/", views.BatchCreateView.as_view(), name="batch-list"),
    path("batches/<str:reference>/", views.BatchDetailView.as_view(), name="batch-detail"),
    path("repayments/", views.RepaymentCreateView.as_view(), name="repayment-list"),
    path("balance-check/", views.BalanceCheckView.as_view(), name="balance-check"),
]
