"""Public endpoints under /t/ (no login): tracking and the mail provider's webhook."""

urlpatterns: list = []
