from django.urls import path

from consents.api.views import CustomerConsentsView, NewsletterSignUpView

urlpatterns = [
    path(
        "customers/<str:external_id>/consents/",
        CustomerConsentsView.as_view(),
        name="customer-consents",
    ),
    path("newsletter/", NewsletterSignUpView.as_view(), name="newsletter-sign-up"),
]
