"""Staff pages under /dashboard/ (see config/urls.py)."""

app_name = "dashboard"

urlpatterns: list = []
