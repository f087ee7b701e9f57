from django.urls import path

from orders import views

app_name = "orders"
urlpatterns = [
    path("", views.OrderListView.as_view(), name="list"),
    path("export/<str:file_format>/", views.OrderExportView.as_view(), name="export"),
    path("<int:pk>/", views.OrderDetailView.as_view(), name="detail"),
]
