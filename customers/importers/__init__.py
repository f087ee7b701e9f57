"""Customer imports from shop and newsletter exports (Shopify, WooCommerce, ...)."""
