from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = _("Campaigns")

    def ready(self) -> None:
        # Orders sit left of campaigns: they send, the coupons are redeemed here.
        from campaigns.coupons import coupons_redeem_receiver
        from campaigns.timeline import messages_source
        from customers.selectors import timeline_source_register
        from customers.signals import customer_activity_changed

        customer_activity_changed.connect(
            coupons_redeem_receiver, dispatch_uid="campaigns.coupons_redeem"
        )
        # Customers sits left of campaigns too: the messages join its timeline here.
        timeline_source_register(messages_source)
        # Segments too: the campaigns' results join its dashboard here.
        from campaigns.dashboard import register as dashboard_panel_register

        dashboard_panel_register()
