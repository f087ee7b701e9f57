"""The user admin with each account's second factor, and a reset for a lost phone."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import Exists, OuterRef
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.accounts import devices

User = get_user_model()


class SecondFactorFilter(admin.SimpleListFilter):
    title = _("two-step sign-in")
    parameter_name = "two_factor"

    def lookups(self, request, model_admin):
        return [("yes", _("Set up")), ("no", _("Not set up"))]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(has_app=self.value() == "yes")
        return queryset


admin.site.unregister(User)


@admin.register(User)
class StaffUserAdmin(UserAdmin):
    list_display = (*UserAdmin.list_display, "second_factor")
    list_filter = (*UserAdmin.list_filter, SecondFactorFilter)
    actions = ["reset_second_factor"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                has_app=Exists(
                    TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)
                )
            )
        )

    @admin.display(boolean=True, description=_("two-step sign-in"))
    def second_factor(self, user) -> bool:
        return user.has_app

    @admin.action(
        description=_("Remove the authenticator app and recovery codes (lost phone)"),
        permissions=["change"],
    )
    def reset_second_factor(self, request, queryset):
        for user in queryset:
            devices.reset(user)
        count = len(queryset)
        self.message_user(
            request,
            ngettext(
                "%(count)d user sets up a new authenticator app at the next sign-in.",
                "%(count)d users set up a new authenticator app at the next sign-in.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )
