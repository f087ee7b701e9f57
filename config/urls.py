from django.conf import settings
from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Kartoteka"
admin.site.site_title = "Kartoteka"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("customers.urls")),
    path("orders/", include("orders.urls")),
]

if settings.DEBUG:
    from django.contrib.staticfiles.urls import staticfiles_urlpatterns

    urlpatterns += staticfiles_urlpatterns()
