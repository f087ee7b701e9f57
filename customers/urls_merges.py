"""Staff pages under /merges/ (see config/urls.py)."""

app_name = "merges"

urlpatterns: list = []
