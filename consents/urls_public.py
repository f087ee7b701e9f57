"""Public pages under /c/, reached by signed links in emails (no login)."""

from django.urls import path

from consents import public_views

urlpatterns = [
    path(
        "preferences/<str:token>/",
        public_views.preferences,
        name="preferences",
    ),
    path(
        "unsubscribe/<str:token>/",
        public_views.unsubscribe,
        name="unsubscribe",
    ),
]
