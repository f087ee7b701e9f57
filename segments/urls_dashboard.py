"""The dashboard, under /dashboard/ in the "dashboard" namespace (config/urls.py)."""

from django.urls import path

from segments import views_dashboard

app_name = "dashboard"

urlpatterns = [
    path("", views_dashboard.DashboardView.as_view(), name="index"),
    path(
        "export/<slug:key>.csv",
        views_dashboard.DashboardExportView.as_view(),
        name="export",
    ),
]
