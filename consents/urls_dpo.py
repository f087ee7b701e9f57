"""The DPO's staff pages, under ``rodo/`` in the ``consents`` namespace."""

from django.urls import path

from consents import dpo_views

urlpatterns = [
    path(
        "access-log/customer/<int:pk>/",
        dpo_views.AccessLogCustomerView.as_view(),
        name="access_log_customer",
    ),
    path(
        "access-log/user/<int:pk>/",
        dpo_views.AccessLogUserView.as_view(),
        name="access_log_user",
    ),
    path("register/", dpo_views.ProcessingRegisterView.as_view(), name="register"),
]
