"""The segments and RFM staff pages, under /segments/ in the "segments" namespace."""

from django.urls import path

from segments import views

app_name = "segments"

urlpatterns = [
    path("", views.SegmentListView.as_view(), name="list"),
    path("new/", views.SegmentCreateView.as_view(), name="create"),
    path("preview/", views.SegmentPreviewView.as_view(), name="preview"),
    path("rfm/", views.RfmView.as_view(), name="rfm"),
    path("rfm/customers/", views.RfmCustomersView.as_view(), name="rfm_customers"),
    path("<int:pk>/", views.SegmentDetailView.as_view(), name="detail"),
    path("<int:pk>/edit/", views.SegmentEditView.as_view(), name="edit"),
    path("<int:pk>/rebuild/", views.SegmentRebuildView.as_view(), name="rebuild"),
    path("<int:pk>/export.csv", views.SegmentExportView.as_view(), name="export"),
    path(
        "<int:pk>/members/paste/",
        views.SegmentMembersPasteView.as_view(),
        name="members_paste",
    ),
    path(
        "<int:pk>/members/<int:customer_id>/remove/",
        views.SegmentMemberRemoveView.as_view(),
        name="member_remove",
    ),
]
