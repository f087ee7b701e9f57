"""The merge pages under /merges/ (see customers.merge_views)."""

from django.urls import path

from customers import merge_views

app_name = "merges"

urlpatterns = [
    path("", merge_views.MergeListView.as_view(), name="list"),
    path("start/", merge_views.MergeStartView.as_view(), name="start"),
    path(
        "compare/<int:survivor>/<int:merged>/",
        merge_views.MergeCompareView.as_view(),
        name="compare",
    ),
    path("batch/", merge_views.MergeBatchView.as_view(), name="batch"),
    path("<int:pk>/", merge_views.MergeDetailView.as_view(), name="detail"),
    path("<int:pk>/undo/", merge_views.MergeUndoView.as_view(), name="undo"),
]
