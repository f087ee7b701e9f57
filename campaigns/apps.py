from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = _("Campaigns")

    def ready(self) -> None:
        # Orders sit left of campaigns: they send, the coupons are redeemed here.
        from campaigns.coupons import coupons_redeem_receiver
        from customers.signals import customer_activity_changed

        customer_activity_changed.connect(
            coupons_redeem_receiver, dispatch_uid="campaigns.coupons_redeem"
        )
