"""Public double opt-in pages, under /c/ in the ``consents`` namespace."""

from django.urls import path

from consents.double_opt_in_views import DoubleOptInConfirmView

urlpatterns = [
    path(
        "confirm/<str:token>/",
        DoubleOptInConfirmView.as_view(),
        name="double-opt-in-confirm",
    ),
]
