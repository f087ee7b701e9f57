"""Staff pages for data-subject requests, under /rodo/ in the "consents" namespace."""

from django.urls import path

from consents import request_views as views

urlpatterns = [
    path("requests/", views.RequestListView.as_view(), name="request_list"),
    path("requests/new/", views.RequestCreateView.as_view(), name="request_create"),
    path(
        "requests/<int:pk>/", views.RequestDetailView.as_view(), name="request_detail"
    ),
    path(
        "requests/<int:pk>/status/",
        views.RequestStatusView.as_view(),
        name="request_status",
    ),
    path(
        "requests/<int:pk>/extend/",
        views.RequestExtendView.as_view(),
        name="request_extend",
    ),
    path(
        "requests/<int:pk>/export/",
        views.RequestExportView.as_view(),
        name="request_export",
    ),
    path(
        "requests/<int:pk>/erase/",
        views.RequestEraseView.as_view(),
        name="request_erase",
    ),
    path(
        "requests/<int:pk>/action/",
        views.RequestActionView.as_view(),
        name="request_action",
    ),
]
