from django.urls import path

from segments.api.views import CustomerMetricsView, CustomerSegmentsView

urlpatterns = [
    path(
        "customers/<str:external_id>/metrics/",
        CustomerMetricsView.as_view(),
        name="customer-metrics",
    ),
    path(
        "customers/<str:external_id>/segments/",
        CustomerSegmentsView.as_view(),
        name="customer-segments",
    ),
]
