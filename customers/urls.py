from django.urls import path

from customers import search_views, views

app_name = "customers"
urlpatterns = [
    path("", views.CustomerListView.as_view(), name="list"),
    path("search/", search_views.CustomerSearchView.as_view(), name="search"),
    path(
        "export/<str:file_format>/", views.CustomerExportView.as_view(), name="export"
    ),
    path("<int:pk>/", views.CustomerDetailView.as_view(), name="detail"),
]
