"""The import wizard's staff pages, under /imports/ in the "imports" namespace."""

from django.urls import path

from customers import import_views as views

app_name = "imports"

urlpatterns = [
    path("", views.ImportListView.as_view(), name="list"),
    path("new/", views.ImportUploadView.as_view(), name="upload"),
    path("<int:pk>/", views.ImportDetailView.as_view(), name="detail"),
    path("<int:pk>/status/", views.ImportStatusView.as_view(), name="status"),
    path("<int:pk>/recheck/", views.ImportRecheckView.as_view(), name="recheck"),
    path("<int:pk>/confirm/", views.ImportConfirmView.as_view(), name="confirm"),
    path("<int:pk>/cancel/", views.ImportCancelView.as_view(), name="cancel"),
    path(
        "<int:pk>/errors.csv",
        views.ImportErrorReportView.as_view(),
        name="error_report",
    ),
    path("<int:pk>/file/", views.ImportFileView.as_view(), name="file"),
]
