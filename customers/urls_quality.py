"""Staff pages under /quality/ (see config/urls.py and customers.quality_views)."""

from django.urls import path

from customers import quality_views

app_name = "quality"

urlpatterns = [
    path("", quality_views.QualityIndexView.as_view(), name="index"),
    path("scan/", quality_views.QualityScanView.as_view(), name="scan"),
    path("<slug:code>/", quality_views.QualityListView.as_view(), name="list"),
    path("<slug:code>/csv/", quality_views.QualityExportView.as_view(), name="export"),
]
