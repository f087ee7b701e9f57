"""Public endpoints under /t/ (no login): tracking and the mail provider's webhook."""

from django.urls import path

from campaigns import public_views

urlpatterns = [
    path("o/<str:token>.gif", public_views.open_pixel, name="open"),
    path("c/<str:token>/", public_views.click, name="click"),
    path(
        "webhooks/email-events/",
        public_views.email_events,
        name="email_events",
    ),
]
