from rest_framework.routers import SimpleRouter

from orders.api.views import CartViewSet, CategoryViewSet, OrderViewSet, ProductViewSet

router = SimpleRouter()
router.register("orders", OrderViewSet, basename="order")
router.register("carts", CartViewSet, basename="cart")
router.register("products", ProductViewSet, basename="product")
router.register("categories", CategoryViewSet, basename="category")
urlpatterns = router.urls
