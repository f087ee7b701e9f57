"""The campaigns app's pages: public tracking and webhooks, and the staff pages."""

from django.urls import include, path

app_name = "campaigns"

urlpatterns = [
    # Public, reached from sent messages and the mail provider: opens, clicks, bounces.
    path("t/", include("campaigns.urls_public")),
    # Staff: campaigns, message templates, reports.
    path("campaigns/", include("campaigns.urls_staff")),
]
