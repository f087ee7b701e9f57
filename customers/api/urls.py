from django.urls import path
from rest_framework.routers import SimpleRouter

from customers.api.views import CustomerViewSet, EventBatchView, InteractionViewSet

router = SimpleRouter()
router.register("customers", CustomerViewSet, basename="customer")
router.register("interactions", InteractionViewSet, basename="interaction")
urlpatterns = router.urls
urlpatterns += [path("events/", EventBatchView.as_view(), name="event-batch")]
