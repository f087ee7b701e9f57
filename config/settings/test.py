"""Test settings: the base settings with fast hashing and no HTTPS redirect."""

import os

os.environ.setdefault("SECRET_KEY", "kartoteka-tests-only-not-a-secret")
os.environ.setdefault("DEBUG", "false")

from config.settings.base import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Each test process its own cache: parallel runs must not share one Redis database.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SECURE_SSL_REDIRECT = False
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# A real SMTP server for the worker of an integration test (tests/smtp.py); never
# EMAIL_URL, which a developer's .env may point at a real mail server.
if os.environ.get("KARTOTEKA_TEST_EMAIL_URL"):
    vars().update(env.email_url("KARTOTEKA_TEST_EMAIL_URL"))  # noqa: F405
STORAGES["staticfiles"]["BACKEND"] = (  # noqa: F405
    "django.contrib.staticfiles.storage.StaticFilesStorage"
)
LANGUAGE_CODE = "pl"

# Parallel checkouts (or developers) sharing one server can keep their test databases
# apart by name.
DATABASES["default"]["TEST"] = {  # noqa: F405
    "NAME": env("TEST_DATABASE_NAME", default="test_kartoteka")  # noqa: F405
}

# Serve static files from the finders (no collectstatic before tests).
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True

# Uploads (import files, error reports) go to a directory of this test run's own.
import tempfile  # noqa: E402

MEDIA_ROOT = tempfile.mkdtemp(prefix="kartoteka-test-media-")

# The webhook tests' receivers listen on 127.0.0.1; the refusal has tests of its own.
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
