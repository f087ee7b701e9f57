from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SegmentsConfig(AppConfig):
    name = "segments"
    verbose_name = _("Segments and analytics")

    def ready(self) -> None:
        # Orders and consents sit left of segments: they send, the queue is here.
        from customers.signals import customer_activity_changed
        from segments.metrics import metrics_queue_receiver

        customer_activity_changed.connect(
            metrics_queue_receiver, dispatch_uid="segments.metrics_queue"
        )
        # The dashboard's own panels; apps to the right add theirs the same way.
        from segments.dashboard_panels import register_builtin_panels

        register_builtin_panels()
