from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("sandbox.shop.urls")),
    # The package's public gift card balance check (accounts.urls is optional).
    path("gift-cards/", include("accounts.urls")),
    path("admin/", admin.site.urls),
]

if settings.API_INSTALLED:
    from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
    from rest_framework.authtoken.views import obtain_auth_token

    urlpatterns += [
        # The package's REST API (accounts.api.urls is optional, like accounts.urls).
        path("api/accounts/", include("accounts.api.urls")),
        # A token for a username and password, for curl and apps.
        path("api/token/", obtain_auth_token, name="api_token"),
        path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
        path("api/docs/", SpectacularSwaggerView.as_view(url_name="api_schema"), name="api_docs"),
    ]
