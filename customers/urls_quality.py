"""Staff pages under /quality/ (see config/urls.py)."""

app_name = "quality"

urlpatterns: list = []
