"""The support desk's staff pages, under /support/ in the "support" namespace."""

from django.urls import path

from customers import support_views as views

app_name = "support"

urlpatterns = [
    path("", views.QueueView.as_view(), name="queue"),
    path("export.csv", views.QueueExportView.as_view(), name="queue_export"),
    path("customers/<int:pk>/log/", views.QuickLogView.as_view(), name="quick_log"),
    path("interactions/<int:pk>/", views.InteractionView.as_view(), name="interaction"),
    path(
        "attachments/<int:pk>/",
        views.AttachmentDownloadView.as_view(),
        name="attachment",
    ),
]
