"""Settings for every environment, read from the environment through django-environ.

Unset ``DATABASE_URL`` means the embedded PostgreSQL under ``.data/`` (see
config/embedded.py). DEBUG is off unless set; with DEBUG off, cookies are secure,
HTTPS is enforced and HSTS is on.
"""

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.utils.translation import gettext_lazy as _

from config import embedded
from config.celery import QUEUES

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A .env file (make run writes one for local use) fills in what the environment lacks.
env.read_env(os.environ.get("ENV_FILE", BASE_DIR / ".env"), overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env(
    "SECRET_KEY",
    default="django-insecure-kartoteka-development-only"
    if DEBUG
    else environ.Env.NOTSET,
)
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django.contrib.humanize",
    "django_countries",
    "django_filters",
    "import_export",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI's files from our own static files (no CDN; the CSP allows 'self').
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "pgtrigger",
    # django-csp: its system checks flag policy settings in the pre-4.0 format.
    "csp",
    # Staff sign-in: TOTP and recovery codes (django-otp), lock-out (django-axes).
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "config.accounts",
    "customers",
    "orders",
    "consents",
    "segments",
    "campaigns",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Early, so every log line of the request (and its response) carries the id.
    "config.observability.logs.RequestIdMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After WhiteNoise: static files need no policy, every page gets one.
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "config.middleware.StaffLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): signed in with the second factor too.
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Signs out a session idle too long, then sends a signed-in user without the
    # second factor to set it up or give it, wherever they were going.
    "config.accounts.middleware.IdleSessionMiddleware",
    "config.accounts.middleware.SecondFactorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: answers a locked-out sign-in with the lock page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# Database: PostgreSQL only. No DATABASE_URL means the embedded cluster under .data/.
if "DATABASE_URL" in env:
    DATABASES = {"default": env.db("DATABASE_URL")}
else:
    DATABASES = {"default": embedded.database_settings()}
DATABASES["default"]["ATOMIC_REQUESTS"] = True
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# psycopg prepares a statement once it has run a few times on a connection, so the
# server stops parsing and planning it (about 40% of the database's CPU on an order
# upsert). Only config.rawsql's server-binding cursor prepares (the API's and the
# imports' hot statements); the ORM binds on the client and never does. Django turns
# preparing off by default for PgBouncer in transaction mode before 1.21: behind
# such a pooler set DATABASE_PREPARED_STATEMENTS=false.
if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Staff accounts (config.accounts). Passwords: Argon2 for new and changed ones (the
# older hashes still verify and are rehashed at the next sign-in), at least
# PASSWORD_MIN_LENGTH characters, not like the user's name or email, not a common
# or all-digit password.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
PASSWORD_MIN_LENGTH = env.int("PASSWORD_MIN_LENGTH", default=12)
_VALIDATORS = "django.contrib.auth.password_validation"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"{_VALIDATORS}.UserAttributeSimilarityValidator"},
    {
        "NAME": f"{_VALIDATORS}.MinimumLengthValidator",
        "OPTIONS": {"min_length": PASSWORD_MIN_LENGTH},
    },
    {"NAME": f"{_VALIDATORS}.CommonPasswordValidator"},
    {"NAME": f"{_VALIDATORS}.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out sign-in before a password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# Sessions: signed out after SESSION_IDLE_MINUTES without a request (idle sessions
# left open on a shared shop computer), and after SESSION_MAX_HOURS in any case.
SESSION_IDLE_MINUTES = env.int("SESSION_IDLE_MINUTES", default=30)
SESSION_MAX_HOURS = env.int("SESSION_MAX_HOURS", default=12)
SESSION_COOKIE_AGE = SESSION_MAX_HOURS * 3600
# Brute force (django-axes): LOGIN_FAILURE_LIMIT failed sign-ins lock the username,
# and as many from one address lock that address (password spraying over many
# names), for LOGIN_COOLOFF_MINUTES after the last failure. The address is
# config.clients.client_ip's, which trusts TRUSTED_PROXY_COUNT proxies' headers.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "config.clients.client_ip"
AXES_LOCKOUT_CALLABLE = "config.accounts.views.locked_out"
# Sign-ins and failures (django-axes' logs: who, when, from where) are kept this
# many days for security reviews, then deleted every night.
SIGN_IN_LOG_DAYS = env.int("SIGN_IN_LOG_DAYS", default=90)
# The name authenticator apps show beside the username (an installation per shop:
# "Kartoteka Sklep Example" tells two apart on one phone).
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", default="Kartoteka")
# Reverse proxies in front of the web processes that append the address they saw
# to X-Forwarded-For (nginx with $proxy_add_x_forwarded_for: 1; a load balancer in
# front of nginx: 2). 0 (no proxy): the header is the client's word and is ignored.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# Language and locale: Polish by default, complete English alongside.
LANGUAGE_CODE = "pl"
LANGUAGES = [("pl", _("Polish")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
FORMAT_MODULE_PATH = ["config.formats"]
TIME_ZONE = "Europe/Warsaw"
USE_I18N = True
USE_TZ = True
DEFAULT_CURRENCY = "PLN"

# RODO. The suppression list keeps keyed hashes of erased people's contacts: set
# SUPPRESSION_KEY once and never change it, or erased people's consent could come
# back through an import (it defaults to SECRET_KEY, which may be rotated).
SUPPRESSION_KEY = env("SUPPRESSION_KEY", default=SECRET_KEY)
# Double opt-in: how long a confirmation link works, and when an unconfirmed
# sign-up is purged.
DOUBLE_OPT_IN_LINK_DAYS = env.int("DOUBLE_OPT_IN_LINK_DAYS", default=7)
# Retention periods, applied by the nightly retention task: keep them no longer
# than the register of processing says.
RETENTION = {
    "lead_months": env.int("RETENTION_LEAD_MONTHS", default=24),
    "unconfirmed_signup_days": env.int("RETENTION_UNCONFIRMED_SIGNUP_DAYS", default=30),
    "event_months": env.int("RETENTION_EVENT_MONTHS", default=13),
    "access_log_months": env.int("RETENTION_ACCESS_LOG_MONTHS", default=60),
}
# Orders and invoices are kept for the tax authority: 5 years from the end of the
# year they were issued in (Ordynacja podatkowa, art. 86 and 70).
ACCOUNTING_HOLD_YEARS = 5
# The public address of Kartoteka, for links in emails (confirmation,
# preferences, unsubscribe).
PUBLIC_URL = env("PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")
PHONENUMBER_DEFAULT_REGION = "PL"

# RFM scores are quintiles over buyers unless fixed thresholds are set here, per
# dimension: four ascending numbers. Recency in days since the last order (e.g.
# 30,90,180,365: within 30 days is R 5, over 365 is R 1), frequency in orders
# (e.g. 2,3,5,8: 8 or more is F 5), monetary in the default currency (e.g.
# 200,500,1000,3000).
RFM_RECENCY_DAYS = env.list("RFM_RECENCY_DAYS", cast=int, default=[])
RFM_FREQUENCY_ORDERS = env.list("RFM_FREQUENCY_ORDERS", cast=int, default=[])
RFM_MONETARY = env.list("RFM_MONETARY", cast=float, default=[])
# Memory for the nightly recompute's hashing and sorting (per operation; a
# million buyers need about 512MB to stay off the disk).
METRICS_WORK_MEM = env("METRICS_WORK_MEM", default="512MB")
# Customers whose orders changed are recomputed together, this many seconds after
# the first change (every change in between joins the same run).
METRICS_QUEUE_DELAY_SECONDS = env.int("METRICS_QUEUE_DELAY_SECONDS", default=30)

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".data" / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Uploaded files (import files and their error reports) hold personal data: they are
# never served as static media; views that offer them check permissions.
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / ".data" / "media")
# Files attached to support interactions (photos of damage, invoices), in bytes.
INTERACTION_ATTACHMENT_MAX_BYTES = env.int(
    "INTERACTION_ATTACHMENT_MAX_BYTES", default=10_000_000
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="kartoteka@localhost")

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

# Outgoing webhooks go only to public addresses (no requests into the server's own
# network on a store's behalf); allow private ones for a receiver on this network.
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env.bool(
    "WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=False
)

# How long an Idempotency-Key is honoured (its stored response kept) at least, and
# how long finished webhook deliveries stay in the delivery log; pruned nightly.
IDEMPOTENCY_KEY_HOURS = env.int("IDEMPOTENCY_KEY_HOURS", default=24)
WEBHOOK_DELIVERY_RETENTION_DAYS = env.int("WEBHOOK_DELIVERY_RETENTION_DAYS", default=30)

# REST API: a store's API key in the Authorization header, JSON only.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "customers.api.authentication.ApiKeyAuthentication"
    ],
    "DEFAULT_PERMISSION_CLASSES": ["customers.api.authentication.HasApiKeyScope"],
    "DEFAULT_THROTTLE_CLASSES": ["customers.api.authentication.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": env("API_RATE_LIMIT", default="6000/min")},
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Kartoteka API",
    "DESCRIPTION": (
        "The shop's platform keeps Kartoteka current: customers, orders, products, "
        "carts and behaviour events. Authenticate with `Authorization: Api-Key <key>`"
        " (create one with `python manage.py create_api_key --store CODE`). Writes "
        "are idempotent: PUT by the store's external id, and POST honours an "
        "`Idempotency-Key` header."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.api.add_error_responses",
    ],
}

# Celery. No CELERY_BROKER_URL means the embedded Redis started by `make run`.
CELERY_BROKER_URL = env(
    "CELERY_BROKER_URL",
    default=embedded.running_redis_url() or "redis://127.0.0.1:6379/0",
)
# The worker heartbeat and task failures (config.observability), and the metrics
# queue's coalescing, must be seen by every process: without CACHE_URL, a database
# of the broker's Redis (embedded or real). With RabbitMQ, set CACHE_URL. Only a
# broker that was given or started: the 127.0.0.1 guess keeps the local cache, so a
# command on a machine without Redis still runs.
_SHARED_CACHE = "CACHE_URL" not in env and (
    "CELERY_BROKER_URL" in env or embedded.running_redis_url() is not None
)
if _SHARED_CACHE and CELERY_BROKER_URL.startswith("redis+socket://"):
    CACHES = {
        "default": env.cache_url_config(
            "rediscache://" + CELERY_BROKER_URL.removeprefix("redis+socket://")
        )
    }
elif _SHARED_CACHE and CELERY_BROKER_URL.startswith("redis://"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CELERY_BROKER_URL.rsplit("/", 1)[0] + "/1",
        }
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# Worker logs go through LOGGING (JSON lines with request ids), not Celery's own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# The observability tasks and signal handlers, registered in every worker.
CELERY_IMPORTS = ["config.observability"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True
# A task whose worker died (killed, out of memory) goes back to the queue rather
# than being acknowledged as done: campaign batches rely on it.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Queues, so each kind of work can have workers (and hosts) of its own: imports,
# segments (metrics, segment rebuilds, the dashboard's rollups), campaigns (sending
# and flows) and default (the rest: webhooks, retention, scans, the heartbeat). A
# worker serves the queues its -Q names; `make run` starts one that serves them all
# (config.celery.QUEUES). docs/deploy.md shows a larger layout.
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "customers.tasks.import_job_*": {"queue": "imports"},
    "segments.tasks.*": {"queue": "segments"},
    "campaigns.tasks.*": {"queue": "campaigns"},
}
# Defaults synced into django-celery-beat's tables; staff may retime them in the admin.
CELERY_BEAT_SCHEDULE = {
    "customer-statuses-refresh": {
        "task": "orders.tasks.customer_statuses_refresh_task",
        "schedule": crontab(hour=3, minute=15),
    },
    "webhooks-retry-due": {
        "task": "customers.tasks.webhook_retry_due_task",
        "schedule": 60.0,
    },
    # RODO storage limitation: the RETENTION policies above, every night.
    "retention-apply": {
        "task": "consents.tasks.retention_apply_task",
        "schedule": crontab(hour=3, minute=30),
    },
    # Segments: every buyer's metrics and RFM at night (then the daily segments),
    # customers whose orders changed within minutes, hourly segments on time.
    "metrics-recompute": {
        "task": "segments.tasks.metrics_recompute_task",
        "schedule": crontab(hour=2, minute=30),
    },
    "metrics-recompute-queued": {
        "task": "segments.tasks.metrics_recompute_queued_task",
        "schedule": 300.0,
    },
    "segments-rebuild-due": {
        "task": "segments.tasks.segments_rebuild_due_task",
        "schedule": 600.0,
    },
    # Campaigns: scheduled ones start on time; a campaign whose worker vanished
    # is picked up again.
    "campaigns-start-due": {
        "task": "campaigns.tasks.campaigns_start_due_task",
        "schedule": 60.0,
    },
    "campaigns-watch": {
        "task": "campaigns.tasks.campaigns_watch_task",
        "schedule": 60.0,
    },
    # Flows: every few minutes, each flow that is on sends to whoever a trigger
    # (an abandoned cart, a product running out, ...) fired for.
    "flows-run": {
        "task": "campaigns.tasks.flows_run_task",
        "schedule": 300.0,
    },
    "api-records-prune": {
        "task": "customers.tasks.api_records_prune_task",
        "schedule": crontab(hour=3, minute=45),
    },
    # The dashboard (segments.rollups): today's and yesterday's figures every ten
    # minutes, the last five weeks and the snapshot after the nightly metrics,
    # every day again once a week.
    "dashboard-refresh": {
        "task": "segments.tasks.dashboard_refresh_task",
        "schedule": 600.0,
    },
    "dashboard-nightly": {
        "task": "segments.tasks.dashboard_nightly_task",
        "schedule": crontab(hour=3, minute=0),
    },
    # Data quality: likely duplicates and every quality check (after retention).
    "duplicates-scan": {
        "task": "customers.tasks.duplicates_scan_task",
        "schedule": crontab(hour=4, minute=30),
    },
    # Observability: proves a worker takes tasks from each queue (/status/); the
    # default queue's is also the readiness check's (/ready/).
    "worker-heartbeat": {
        "task": "config.observability.worker_heartbeat_task",
        "schedule": 60.0,
    },
    **{
        f"worker-heartbeat-{queue}": {
            "task": "config.observability.worker_heartbeat_task",
            "schedule": 60.0,
            "options": {"queue": queue},
        }
        for queue in QUEUES
        if queue != CELERY_TASK_DEFAULT_QUEUE
    },
    "sign-in-log-prune": {
        "task": "config.accounts.tasks.sign_in_log_prune_task",
        "schedule": crontab(hour=3, minute=50),
    },
    "dashboard-rebuild": {
        "task": "segments.tasks.dashboard_rebuild_task",
        "schedule": crontab(hour=4, minute=0, day_of_week=0),
    },
}

# Campaigns and flows (campaigns app).
# The shop's name as messages sign it ({{ shop_name }}).
SHOP_NAME = env("SHOP_NAME", default="Kartoteka")
# At most this many marketing messages (campaigns and flows, email and SMS) reach one
# customer within CAMPAIGN_FREQUENCY_DAYS; the rest are skipped as "frequency cap".
CAMPAIGN_FREQUENCY_CAP = env.int("CAMPAIGN_FREQUENCY_CAP", default=3)
CAMPAIGN_FREQUENCY_DAYS = env.int("CAMPAIGN_FREQUENCY_DAYS", default=7)
# Messages per second per campaign or flow (0: as fast as the workers go), and how
# many a sending task sends before it queues the next batch.
CAMPAIGN_SEND_RATE = env.float("CAMPAIGN_SEND_RATE", default=0)
CAMPAIGN_BATCH_SIZE = env.int("CAMPAIGN_BATCH_SIZE", default=1000)
# A campaign "sending" with no progress for this long has lost its worker: the
# watchdog (campaigns_watch_task, every minute) queues another batch.
CAMPAIGN_STALLED_SECONDS = env.int("CAMPAIGN_STALLED_SECONDS", default=120)
# SMS only between these local hours (from, to): messages wait for the next morning.
SMS_SEND_HOURS = tuple(env.list("SMS_SEND_HOURS", cast=int, default=[9, 20]))
# An order within this many days after a message was opened or clicked counts as
# its conversion (see campaigns.selectors).
CAMPAIGN_ATTRIBUTION_DAYS = env.int("CAMPAIGN_ATTRIBUTION_DAYS", default=5)
# The mail provider's bounce and complaint webhook (/t/webhooks/email-events/) signs
# its body with this secret; unset, the webhook is off.
EMAIL_WEBHOOK_SECRET = env("EMAIL_WEBHOOK_SECRET", default="")
# SMS (campaigns.sms): the console backend prints messages; production uses the
# SMSAPI.pl-compatible HTTP gateway.
SMS_BACKEND = env("SMS_BACKEND", default="campaigns.sms.ConsoleBackend")
SMS_GATEWAY_URL = env("SMS_GATEWAY_URL", default="https://api.smsapi.pl/sms.do")
SMS_GATEWAY_TOKEN = env("SMS_GATEWAY_TOKEN", default="")
SMS_SENDER_NAME = env("SMS_SENDER_NAME", default="")
# Each SMS carries a reference the gateway refuses to see twice; this installation's
# prefix (by default from SECRET_KEY) keeps ours apart from others on one account.
SMS_REFERENCE_PREFIX = env(
    "SMS_REFERENCE_PREFIX",
    default=hashlib.sha256(SECRET_KEY.encode()).hexdigest()[:8] + "-",
)
SMS_FILE_PATH = env("SMS_FILE_PATH", default=str(BASE_DIR / ".data" / "sms.jsonl"))

# Security: secure unless DEBUG. Behind a TLS-terminating proxy set
# SECURE_PROXY_SSL_HEADER through USE_X_FORWARDED_PROTO=1.
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Probes come over plain HTTP from inside (a load balancer, an orchestrator): answer
# them rather than redirect them to HTTPS.
SECURE_REDIRECT_EXEMPT = [r"^health/$", r"^ready/$"]
X_FRAME_OPTIONS = "DENY"
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Content Security Policy (django-csp) on every page, DEBUG or not, so a page that
# breaks it breaks in development too: scripts and styles only from our own static
# files (no inline <script>, event handler or style attribute: pages pass data in
# data attributes and json_script), images also as data: URIs (CSS icons), fetches
# to ourselves only, frames only our own (the sandboxed campaign preview, which
# sends a stricter policy of its own) and nobody may frame us. Responses that set
# their own policy (the preview, support attachments) keep it.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Logs: one JSON object per line for a log collector (the default without DEBUG),
# readable text with DEBUG; every line carries the request id (config.observability).
LOG_FORMAT = env.str("LOG_FORMAT", default="text" if DEBUG else "json")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "config.observability.logs.RequestIdFilter"},
        # /health/ and /ready/ are probed every few seconds: not in the access log.
        "skip_probes": {"()": "config.observability.logs.SkipProbesFilter"},
    },
    "formatters": {
        "json": {"()": "config.observability.logs.JsonFormatter"},
        "text": {
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "text",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Without Django's own handlers (plain text to stderr, mail to ADMINS):
        # its records go up to the root's console handler like everyone else's.
        "django": {"handlers": [], "level": LOG_LEVEL},
        "django.server": {
            "handlers": ["console"],
            "filters": ["skip_probes"],
            "level": "INFO",
            "propagate": False,
        },
        "django.db.backends": {"level": "WARNING"},
        # Not its banner at every start (manage.py check stays silent); its
        # lock-outs are warnings and still show.
        "axes.apps": {"level": "WARNING"},
    },
}

# Errors to Sentry, only when SENTRY_DSN is set. send_default_pii=False: Kartoteka
# holds customers' personal data (RODO), so no user details, cookies, request
# bodies or client addresses leave for a third party; events are tagged with the
# request id to find the matching log lines.
SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    from config.observability.logs import sentry_before_send

    sentry_sdk.init(
        dsn=SENTRY_DSN,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        send_default_pii=False,
        environment=env.str("SENTRY_ENVIRONMENT", default="production"),
        traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
        before_send=sentry_before_send,
    )
