from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config.accounts import views as account_views
from config.observability import views as observability_views
from customers import views as customer_views

admin.site.site_header = "Kartoteka"
admin.site.site_title = "Kartoteka"

urlpatterns = [
    path("", customer_views.HomeView.as_view(), name="home"),
    # Probes for load balancers and orchestrators: no login, nothing personal.
    path("health/", observability_views.health, name="health"),
    path("ready/", observability_views.ready, name="ready"),
    path("status/", observability_views.SystemStatusView.as_view(), name="status"),
    path("login/", account_views.LoginView.as_view(), name="login"),
    path("logout/", account_views.LogoutView.as_view(), name="logout"),
    path("account/", include("config.accounts.urls")),
    path("customers/", include("customers.urls")),
    path("orders/", include("orders.urls")),
    path("imports/", include("customers.urls_imports")),
    path("support/", include("customers.urls_support")),
    path("segments/", include("segments.urls")),
    path("dashboard/", include("segments.urls_dashboard")),
    path("quality/", include("customers.urls_quality")),
    path("merges/", include("customers.urls_merges")),
    path("", include("consents.urls")),
    path("", include("campaigns.urls")),
    path("api/v1/", include("customers.api.urls")),
    path("api/v1/", include("orders.api.urls")),
    path("api/v1/", include("consents.api.urls")),
    path("api/v1/", include("segments.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "api/docs/",
        # The split view: Swagger UI's set-up is a static file, not an inline
        # script the CSP would refuse.
        SpectacularSwaggerSplitView.as_view(
            url_name="api-schema", template_name="api/swagger_ui.html"
        ),
        name="api-docs",
    ),
    # One sign-in, with the second factor, for the staff pages and the admin.
    path(
        "admin/login/",
        RedirectView.as_view(pattern_name="login", query_string=True),
        name="admin-login",
    ),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
]

if settings.DEBUG:
    from django.contrib.staticfiles.urls import staticfiles_urlpatterns

    urlpatterns += staticfiles_urlpatterns()
