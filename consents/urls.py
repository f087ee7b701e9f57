"""The consents app's pages: public ones (no login) and the DPO's staff pages."""

from django.urls import include, path

app_name = "consents"

urlpatterns = [
    # Public, reached by signed links in emails: preferences, unsubscribe, confirm.
    path("c/", include("consents.urls_public")),
    path("c/", include("consents.urls_double_opt_in")),
    # Staff (DPO): data-subject requests, access log, register of processing.
    path("rodo/", include("consents.urls_requests")),
    path("rodo/", include("consents.urls_dpo")),
]
