"""Settings for the Deal Canvas service, read from the environment (see README "Configuration")."""

from __future__ import annotations

import warnings
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from canvas_project.env import env_bool, env_int, env_list, env_required, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DJANGO_ENV = env_str("DJANGO_ENV", "development")
PRODUCTION = DJANGO_ENV == "production"

# Django's signing key (sessions, CSRF); required in production.
SECRET_KEY = env_required("DJANGO_SECRET_KEY", when=PRODUCTION, fallback="dev-insecure-secret-key-change-me")
DEBUG = env_bool("DJANGO_DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["*"] if not PRODUCTION else [])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
# A separate frontend calls the API from its own origin with bearer tokens (no cookies): list it here.
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", [])
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_CREDENTIALS = False
# ETag is read and If-None-Match / If-Match sent by a frontend's conditional requests (docs/api-guide.md)
CORS_EXPOSE_HEADERS = ["Retry-After", "X-Request-ID", "Content-Disposition", "ETag"]
CORS_ALLOW_HEADERS = [
    "authorization",
    "content-type",
    "last-event-id",
    "x-request-id",
    "idempotency-key",
    "accept",
    "if-none-match",
    "if-match",
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "deals",
    "canvas",
    "superadmin",
    "internal_api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's, Swagger UI's) served by the app itself, under WSGI and ASGI alike.
    "canvas_project.staticfiles.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "canvas_project.observability.RequestContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "canvas_project.urls"
WSGI_APPLICATION = "canvas_project.wsgi.application"
ASGI_APPLICATION = "canvas_project.asgi.application"
# Paths of the contract carry no trailing slash; never redirect POSTs to a slashed URL.
APPEND_SLASH = False

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
            ],
        },
    },
]

# --- PostgreSQL -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/deal_canvas")
# Connections come from a per-process psycopg pool (Django 5.1+). Persistent per-thread connections
# (CONN_MAX_AGE > 0) leak under ASGI, where every sync request runs on a fresh thread: measured by
# bench/canvas_get, they exhausted PostgreSQL's max_connections within seconds.
DB_POOL = env_bool("DB_POOL", True)
# While PostgreSQL is down each pool retries connecting with a doubling delay (1 s, 2 s, 4 s, ...) for
# this many seconds, then leaves the next request to start again. With psycopg_pool's default of 5
# minutes the delay keeps growing: after a 40 s outage its next try came 30 s after PostgreSQL was back,
# and requests meanwhile got 503 (measured). With 5 s the longest delay is 4 s, within DB_POOL_TIMEOUT:
# the first request after PostgreSQL returns is served. Both pools (Django's, the Store's) use it.
DB_POOL_RECONNECT_TIMEOUT = float(env_str("DB_POOL_RECONNECT_TIMEOUT", "5"))
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=0 if DB_POOL else env_int("DB_CONN_MAX_AGE", 0))
}
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int("DB_CONNECT_TIMEOUT", 5)
if DB_POOL:
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": env_int("DB_POOL_MIN_SIZE", 1),
        "max_size": env_int("DB_POOL_MAX_SIZE", 10),
        "timeout": float(env_str("DB_POOL_TIMEOUT", "5")),
        "reconnect_timeout": DB_POOL_RECONNECT_TIMEOUT,
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Behind PgBouncer in transaction pooling a server-side cursor (QuerySet.iterator()) cannot outlive its
# transaction's server connection: set true there. Django's psycopg binding sends no prepared statements.
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env_bool("DB_DISABLE_SERVER_SIDE_CURSORS", False)
# Read replicas (streaming standbys of the primary), comma-separated URLs; each becomes the alias replica_<n>.
# Only read-only selectors that ask for one read there (canvas_project.replicas); empty: no router, one database.
DATABASE_REPLICA_URLS = env_list("DATABASE_REPLICA_URLS", [])
# A caller who wrote within this many seconds reads from the primary (read-your-writes); keep it above the
# replicas' usual lag.
REPLICA_PIN_SECONDS = env_int("REPLICA_PIN_SECONDS", 10)
# A replica further behind than this (or down) gets no reads until it catches up; GET /api/health shows its lag.
REPLICA_MAX_LAG_SECONDS = float(env_str("REPLICA_MAX_LAG_SECONDS", "5"))
# Each process probes each replica's lag at most this often (the probe result is reused meanwhile).
REPLICA_PROBE_SECONDS = float(env_str("REPLICA_PROBE_SECONDS", "1"))
# Seconds to connect to a replica (the probe) or to wait for one of its pooled connections: a dead replica
# costs at most this once, then reads go to the primary.
REPLICA_CONNECT_TIMEOUT = env_int("REPLICA_CONNECT_TIMEOUT", 2)
for _n, _url in enumerate(DATABASE_REPLICA_URLS, start=1):
    _replica = dj_database_url.parse(_url, conn_max_age=DATABASES["default"]["CONN_MAX_AGE"])
    _replica.setdefault("OPTIONS", {})["connect_timeout"] = REPLICA_CONNECT_TIMEOUT
    if DB_POOL:
        _replica["OPTIONS"]["pool"] = {
            **DATABASES["default"]["OPTIONS"]["pool"],
            "timeout": float(REPLICA_CONNECT_TIMEOUT),
        }
    # test each connection at checkout (with a pool, psycopg_pool's check): a dead one is replaced, not used
    _replica["CONN_HEALTH_CHECKS"] = True
    # a test run with replicas configured uses the test database through the replica aliases too
    _replica["TEST"] = {"MIRROR": "default"}
    DATABASES[f"replica_{_n}"] = _replica
DATABASE_ROUTERS = ["canvas_project.replicas.ReplicaRouter"] if DATABASE_REPLICA_URLS else []
if DATABASE_REPLICA_URLS:  # the request's caller, known after authentication, decides read-your-writes
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
        "canvas_project.replicas.ReplicaPinMiddleware",
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "deals.User"
# New passwords are hashed with Argon2id (argon2-cffi; m=19 MiB, t=2, p=1: canvas_project/hashers.py). The
# others only verify hashes stored before: Django rehashes such a password (or an Argon2 hash with other
# parameters) when its owner next logs in (the same password, so the user's other sessions stay:
# deals.models.User.save).
PASSWORD_HASHERS = [
    "canvas_project.hashers.Argon2idHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Redis ------------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
# Seconds a Redis connect or reply may take before the client gives up (ConnectionError / TimeoutError).
REDIS_SOCKET_TIMEOUT = float(env_str("REDIS_SOCKET_TIMEOUT", "2"))
# REDIS_URL names any node of a Redis Cluster: every Redis use goes through a cluster client that routes
# each command to the node owning its slot (canvas_project.redis_client; docs/architecture.md "Redis Cluster").
REDIS_CLUSTER = env_bool("REDIS_CLUSTER", False)
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "PARSER_CLASS": "redis.connection._HiredisParser",
            "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            # Raise on Redis errors: each caller decides on purpose whether to degrade or answer 503.
            "IGNORE_EXCEPTIONS": False,
        },
        "KEY_PREFIX": "dc",
    }
}
if REDIS_CLUSTER:
    # The cache shares get_redis()'s cluster client; django-redis has no cluster client of its own.
    CACHES["default"]["OPTIONS"]["CLIENT_CLASS"] = "canvas_project.redis_client.ClusterCacheClient"


def _celery_broker_url(redis_url: str) -> str:
    # kombu spells a Unix-socket Redis as redis+socket://, and takes its database number from
    # `virtual_host` (it ignores `db` there); redis-py spells it unix://...?db=N.
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        query = [
            q.replace("db=", "virtual_host=", 1) if q.startswith("db=") else q for q in parts.query.split("&") if q
        ]
        return f"redis+socket://{parts.path}" + (f"?{'&'.join(query)}" if query else "")
    return redis_url


# --- Celery -----------------------------------------------------------------------------------
def _broker_for_cluster(broker_url: str | None, redis_url: str) -> str:
    """The broker beside a Redis Cluster: Celery cannot use a cluster as its broker (kombu's Redis
    transport neither follows MOVED nor keeps a queue's keys in one slot), so one must be named, and a
    Redis one may not be a node REDIS_URL names. canvas_project.celery also asks a Redis broker at worker
    start whether it is a cluster node (REDIS_URL may name another node of the same cluster)."""
    if not broker_url:
        raise ImproperlyConfigured(
            "REDIS_CLUSTER=true: set CELERY_BROKER_URL to a broker that is not the cluster (e.g. "
            "amqp://guest:guest@127.0.0.1:5672//, or a separate non-cluster Redis); Celery cannot use a Redis Cluster."
        )
    broker, cluster = urlsplit(broker_url), urlsplit(redis_url)
    if broker.scheme.startswith("redis") and (broker.hostname, broker.port or 6379) == (
        cluster.hostname,
        cluster.port or 6379,
    ):
        raise ImproperlyConfigured(
            f"CELERY_BROKER_URL points at the Redis Cluster node {cluster.hostname}:{cluster.port or 6379} "
            "(REDIS_URL): Celery cannot use a Redis Cluster as its broker; use RabbitMQ or a separate Redis."
        )
    return broker_url


# redis://... (default: the service's Redis) or amqp://user:password@host:5672/vhost (RabbitMQ; needed when
# Redis is a cluster, which Celery's Redis transport cannot use). docs/operations.md "Celery broker".
CELERY_BROKER_URL = (
    _broker_for_cluster(env_str("CELERY_BROKER_URL"), REDIS_URL)
    if REDIS_CLUSTER
    else env_str("CELERY_BROKER_URL", _celery_broker_url(REDIS_URL))
)
# No result backend: no code waits on a task's return value. Runs and ingestion record their outcome in
# PostgreSQL (run and document rows) and stream progress through Redis; a backend would only add a write
# per task (and reply queues with rpc://) that nobody reads. docs/operations.md says more.
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# The queue every task goes to and every worker consumes (its exchange and routing key take the same name).
# Deployments sharing one broker vhost give each its own; the test suite gives each test process its own.
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "celery")
# Publisher confirms (RabbitMQ): a task is handed over only once the broker has it queued, so a `send_task`
# that returned cannot be lost in a socket buffer, and a health probe on another connection counts it. One
# round trip per publish (~0.2 ms on loopback). Redis's transport ignores the option.
CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A worker that loses the broker connection lets its running tasks finish (Celery 5's default, which Celery 6
# turns around: pinned here). A drafting run needs the broker only to reach a worker, so a broker restart must
# not cancel the runs in flight; their unacknowledged messages come back and are skipped, the runs no longer
# being queued (tests/faults/test_rabbitmq_restart.py).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Periodic sweepers (run `celery -A canvas_project beat` beside the workers in production).
CELERY_BEAT_SCHEDULE = {
    "sweep-stuck-ingestions": {"task": "deals.sweep_stuck_ingestions", "schedule": 300.0},
    "canvas-sweep-dead-runs": {"task": "canvas.sweep_dead_runs", "schedule": 60.0},
    "internal-api-sweep-idempotency-records": {"task": "internal_api.sweep_idempotency_records", "schedule": 3600.0},
    "canvas-sweep-run-checkpoints": {"task": "canvas.sweep_run_checkpoints", "schedule": 3600.0},
    "internal-api-sweep-chat-threads": {"task": "internal_api.sweep_chat_threads", "schedule": 3600.0},
}
# Bounded LangGraph data. A finished run's checkpoints shrink to its latest one at the next hourly sweep and
# go entirely RUN_CHECKPOINT_RETENTION_DAYS after it finished; a chat thread idle CHAT_RETENTION_DAYS goes
# with its checkpoints (canvas.runs.services.run_checkpoints_sweep, internal_api.services.chat_threads_sweep).
RUN_CHECKPOINT_RETENTION_DAYS = env_int("RUN_CHECKPOINT_RETENTION_DAYS", 14)
CHAT_RETENTION_DAYS = env_int("CHAT_RETENTION_DAYS", 90)
CHECKPOINT_SWEEP_BATCH = env_int("CHECKPOINT_SWEEP_BATCH", 500)
# Engine mutations' idempotency records are replayable this long, then swept (internal_api.idempotency).
IDEMPOTENCY_RECORD_RETENTION_HOURS = env_int("IDEMPOTENCY_RECORD_RETENTION_HOURS", 24)
# Every worker records a heartbeat this often; GET /api/health counts the workers heard from within
# WORKER_HEARTBEAT_MAX_AGE (canvas_project.worker_heartbeat). Not CELERY_*: Celery would read those.
WORKER_HEARTBEAT_SECONDS = float(env_str("WORKER_HEARTBEAT_SECONDS", "10"))
WORKER_HEARTBEAT_MAX_AGE = float(env_str("WORKER_HEARTBEAT_MAX_AGE", "30"))

# --- API --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["deals.authentication.BearerJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["canvas_project.api.parsers.StrictJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "canvas_project.api.openapi.ProjectAutoSchema",
    "EXCEPTION_HANDLER": "canvas_project.api.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # `?format=` belongs to the export endpoint (md|docx), not to renderer negotiation.
    "URL_FORMAT_OVERRIDE": None,
}
# Every list is cursor-paginated (canvas_project.api.pagination): `?page_size=` defaults to PAGE_SIZE_DEFAULT
# and is refused (422) above PAGE_SIZE_MAX.
PAGE_SIZE_DEFAULT = env_int("PAGE_SIZE_DEFAULT", 50)
PAGE_SIZE_MAX = env_int("PAGE_SIZE_MAX", 200)
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

# HS256 key of the API's access and refresh tokens; required in production.
JWT_SIGNING_KEY = env_required(
    "JWT_SIGNING_KEY", when=PRODUCTION, fallback="dev-insecure-jwt-signing-key-0123456789abcdef"
)
SIMPLE_JWT = {
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 30)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "LEEWAY": env_int("JWT_LEEWAY_SECONDS", 10),
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    # simplejwt's access token plus a user_id claim that must be a UUID (a signed token without one is 401)
    "AUTH_TOKEN_CLASSES": ("deals.tokens.UserAccessToken",),
    "UPDATE_LAST_LOGIN": False,
}

# API keys (Authorization: Bearer dck_...): how stale a key's `last_used` may get. A request records its
# use only when the stored time is older than this, so a busy key costs one UPDATE a minute, not one per call.
API_KEY_LAST_USED_SECONDS = env_int("API_KEY_LAST_USED_SECONDS", 60)

# Bearer tokens of AI engines for the internal contract and for minting deal-scoped tokens. Several
# may be set (comma-separated) so a token can be rotated without downtime.
INTERNAL_ENGINE_TOKENS = env_list("INTERNAL_ENGINE_TOKENS", env_list("INTERNAL_ENGINE_TOKEN", []))
# An external AI engine for chat; without it the embedded offline engine answers.
ENGINE_URL = env_str("ENGINE_URL", "")
ENGINE_TIMEOUT_SECONDS = float(env_str("ENGINE_TIMEOUT_SECONDS", "60"))
# The most an engine's answer may weigh (its whole HTTP body); a larger one is 503, never read whole.
# 1 MiB is far more than a chat reply needs.
ENGINE_MAX_RESPONSE_BYTES = env_int("ENGINE_MAX_RESPONSE_BYTES", 1024 * 1024)
# Completion webhooks of runs (POST /generate {"webhook": url}; canvas_project/webhooks.py). The hosts a webhook
# may name (comma-separated): `hooks.example.com`, `.example.com` (and every name under it), `*` (any name), or
# addresses and networks (`198.51.100.7`, `10.20.0.0/16`), which are also the only private, loopback or
# link-local addresses a webhook may reach. Empty: no webhook is accepted (422).
WEBHOOK_ALLOWED_HOSTS = env_list("WEBHOOK_ALLOWED_HOSTS", [])
# Each delivery attempt's connect, send and read phases are each cut off after this many seconds.
WEBHOOK_TIMEOUT_SECONDS = float(env_str("WEBHOOK_TIMEOUT_SECONDS", "10"))
# Attempts per run, the first included; the n-th retry waits WEBHOOK_BACKOFF_SECONDS * 2^(n-1) (at most 30 minutes).
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 6)
WEBHOOK_BACKOFF_SECONDS = float(env_str("WEBHOOK_BACKOFF_SECONDS", "30"))
# The key secrets the service must read back (the orgs' webhook signing secrets) are encrypted with
# (canvas_project/secretbox.py). Changing it makes those secrets unreadable: orgs must rotate theirs.
SECRETS_ENCRYPTION_KEY = env_str("SECRETS_ENCRYPTION_KEY", "") or SECRET_KEY

SPECTACULAR_SETTINGS = {
    "TITLE": "Deal Canvas API",
    "DESCRIPTION": (
        "Collaborative, AI-drafted investment-memo canvas for commercial real-estate deal teams. "
        "Authenticate with `POST /api/auth/token` and send `Authorization: Bearer <access>`, or, for "
        "integrations, with an API key (`POST /api/auth/api-keys`): `Authorization: Bearer dck_...`. "
        "Validation errors are HTTP 422 `{detail: [{loc, msg, type, input, ctx}]}`; every other "
        "error is `{detail: <sentence>}`."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc from the installed sidecar package, not a CDN: /api/docs works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # PATCH bodies are validated whole (parse_body, never partial): their fields are as required as on POST.
    "COMPONENT_SPLIT_PATCH": False,
    "SCHEMA_PATH_PREFIX": r"/api",
    "ENUM_NAME_OVERRIDES": {
        "DealRoleEnum": "deals.models.DealRole",
        "OrgRoleEnum": "deals.models.OrgRole",
        "VisibilityEnum": "deals.models.Visibility",
        "DocumentStateEnum": "deals.models.DocumentState",
        "SectionStateEnum": "canvas.memo.serializers.SECTION_STATES",
        "ApiKeyScopeEnum": "deals.models.ApiKeyScope",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "canvas_project.api.openapi.add_sse_endpoints",
        "canvas_project.api.openapi.document_request_body_rules",
        "deals.authentication.document_read_key_refusals",
    ],
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "internalEngineToken": {"type": "http", "scheme": "bearer", "description": "INTERNAL_ENGINE_TOKEN"}
        }
    },
}

# --- Product settings -------------------------------------------------------------------------
CANVAS_SESSION_TTL_SECONDS = env_int("CANVAS_SESSION_TTL_SECONDS", 48 * 3600)
CANVAS_REDIRECT_TEMPLATE = env_str("CANVAS_REDIRECT_TEMPLATE", "/canvas/{deal_id}")
CANVAS_MAX_CONTENT_CHARS = env_int("CANVAS_MAX_CONTENT_CHARS", 500_000)
CANVAS_VERSION_RETENTION = env_int("CANVAS_VERSION_RETENTION", 100)
CANVAS_READINESS_GATE = env_int("CANVAS_READINESS_GATE", 70)
CANVAS_EVENTS_MAXLEN = env_int("CANVAS_EVENTS_MAXLEN", 10_000)
COLLAB_STEPS_WINDOW = env_int("COLLAB_STEPS_WINDOW", 1000)
# Seconds of quiet after which an SSE stream sends a `: ping` comment.
SSE_HEARTBEAT_SECONDS = float(env_str("SSE_HEARTBEAT_SECONDS", "15"))
# Events arriving within this many ms of the previous fan-out of their stream leave together with it
# (one socket write per subscriber instead of one per event); a lone event leaves at once. 0: never wait.
SSE_COALESCE_MS = float(env_str("SSE_COALESCE_MS", "20"))
# ... and the longest that window grows to when a stream's subscribers are many: the window is at least twice
# what the stream's last fan-out took to reach every subscriber's socket (canvas_project.sse.hub).
SSE_COALESCE_MAX_MS = float(env_str("SSE_COALESCE_MAX_MS", "40"))
# Web processes freeze what they loaded at start-up out of the garbage collector's reach (canvas_project.heap):
# full collections then skip ~220,000 long-lived objects instead of stopping the loop for 170-310 ms.
GC_FREEZE_AFTER_LOAD = env_bool("GC_FREEZE_AFTER_LOAD", True)
# ... and collect the young generation after this many allocations instead of Python's 700 (full collections,
# which stop the loop ~100 ms with 1,000 open streams, come that much less often).
GC_GEN0_THRESHOLD = env_int("GC_GEN0_THRESHOLD", 50_000)
# Event streams one user may hold open at once in each ASGI worker process (429 past it); 0: no limit.
SSE_MAX_STREAMS_PER_USER = env_int("SSE_MAX_STREAMS_PER_USER", 32)
# Streams of one deal each ASGI worker process holds open at once (429 past it); 0: no limit.
SSE_MAX_STREAMS_PER_DEAL = env_int("SSE_MAX_STREAMS_PER_DEAL", 2000)
# Seconds within which an open stream whose access was revoked (grant removed or lowered, org membership
# removed, user deactivated, password changed, API key revoked) ends with `event: revoked`: each worker
# re-checks all its open streams in one query this often.
SSE_REAUTH_SECONDS = float(env_str("SSE_REAUTH_SECONDS", "5"))
# Seconds an event stream may stay open; then it ends and the client reconnects and resumes (0: no bound).
SSE_MAX_STREAM_SECONDS = float(env_str("SSE_MAX_STREAM_SECONDS", "3600"))
# Milliseconds an EventSource waits before reconnecting a dropped stream (the `retry:` line each stream opens with).
SSE_RETRY_MS = env_int("SSE_RETRY_MS", 3000)
# Seconds a stream ticket (POST /api/auth/stream-ticket, `?ticket=` on the SSE paths) opens streams of its deal.
STREAM_TICKET_SECONDS = env_int("STREAM_TICKET_SECONDS", 300)
# Synthesis runs (canvas/runs): dead-run sweeps, the time budget, fan-out, cancel wait, retrieval, drafter.
SYNTHESIS_DEAD_RUN_SECONDS = env_int("SYNTHESIS_DEAD_RUN_SECONDS", 120)
SYNTHESIS_MAX_RUN_SECONDS = env_int("SYNTHESIS_MAX_RUN_SECONDS", 4 * 3600)
SYNTHESIS_TIME_BUDGET_SECONDS = env_int("SYNTHESIS_TIME_BUDGET_SECONDS", 600)
SYNTHESIS_MAX_CONCURRENCY = env_int("SYNTHESIS_MAX_CONCURRENCY", 4)
SYNTHESIS_HEARTBEAT_SECONDS = env_int("SYNTHESIS_HEARTBEAT_SECONDS", 2)
SYNTHESIS_CANCEL_WAIT_SECONDS = env_int("SYNTHESIS_CANCEL_WAIT_SECONDS", 10)
# POST /runs/{id}/cancel with wait=true blocks at most this long for the worker to end the run (else 202).
SYNTHESIS_CANCEL_WAIT_MAX_SECONDS = env_int("SYNTHESIS_CANCEL_WAIT_MAX_SECONDS", 30)
# A run that paused for human input (status waiting_input) is cancelled after this many seconds without an answer
# (by the beat sweeper `canvas.sweep_dead_runs`); what it drafted stays.
RUN_INPUT_TIMEOUT_SECONDS = env_int("RUN_INPUT_TIMEOUT_SECONDS", 24 * 3600)
SYNTHESIS_TOP_K = env_int("SYNTHESIS_TOP_K", 6)
# A running run whose worker died (no heartbeat for SYNTHESIS_DEAD_RUN_SECONDS) is resumed from its last
# LangGraph checkpoint by another worker at most this many times, then failed; 0: fail it at once.
RUN_MAX_RESUMES = env_int("RUN_MAX_RESUMES", 2)
# POST /debug drafts one section inside the request, for at most this many seconds.
SYNTHESIS_DEBUG_SECONDS = env_int("SYNTHESIS_DEBUG_SECONDS", 5)
SYNTHESIS_DRAFTER = env_str("SYNTHESIS_DRAFTER", "canvas.runs.synthesis.drafters.DefaultDrafter")
# An LLM drafter only when configured, e.g. "openai:gpt-4o-mini" (install that provider's langchain package).
CANVAS_LLM_MODEL = env_str("CANVAS_LLM_MODEL", "")
PRESENCE_WINDOW_SECONDS = float(env_str("PRESENCE_WINDOW_SECONDS", "30"))
GENERATE_RATE_PER_MINUTE = env_int("GENERATE_RATE_PER_MINUTE", 10)
GENERATE_RATE_BURST = env_int("GENERATE_RATE_BURST", 10)
# Login attempts (POST /api/auth/token), right or wrong, checked before the password: per username a
# burst of 5, then one a minute (a right password clears the username's bucket); per client address a
# burst of 20, then 20 a minute (an office behind one NAT logs in together; never cleared).
LOGIN_USERNAME_RATE_PER_MINUTE = env_int("LOGIN_USERNAME_RATE_PER_MINUTE", 1)
LOGIN_USERNAME_BURST = env_int("LOGIN_USERNAME_BURST", 5)
LOGIN_ADDRESS_RATE_PER_MINUTE = env_int("LOGIN_ADDRESS_RATE_PER_MINUTE", 20)
LOGIN_ADDRESS_BURST = env_int("LOGIN_ADDRESS_BURST", 20)
# Invitations to an org (POST /api/orgs/{org_id}/invitations): an invitation and the one-time token its email
# carries stay valid this long (7 days); then they are dead and the address may be invited again.
INVITATION_TTL_SECONDS = env_int("INVITATION_TTL_SECONDS", 7 * 24 * 3600)
# The frontend page that accepts an invitation, `{token}` replaced by the token, linked from the email (e.g.
# https://app.example.com/invitations/accept?token={token}); empty: the email gives the token and the API call.
INVITATION_ACCEPT_URL = env_str("INVITATION_ACCEPT_URL", "")
# Outgoing email (invitations): Django's email backend. Development prints each message on the console; production
# sends through SMTP (EMAIL_HOST...). The tests use Django's in-memory backend (django.core.mail.outbox).
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if PRODUCTION else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# Seconds an SMTP call may take; an invitation whose email cannot be sent is not kept (503).
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Deal Canvas <noreply@localhost>")
# How many proxies in front append to X-Forwarded-For: the client address is the entry that many from
# the right. 0 (no proxy) uses the connection's address; behind one nginx, 1. Never more than there are:
# entries further left are whatever the client wrote.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
# The Store may live in another PostgreSQL than Django's tables; by default it shares Django's.
LANGGRAPH_DATABASE_URL = env_str("LANGGRAPH_DATABASE_URL", "")
LANGGRAPH_POOL_MAX_SIZE = env_int("LANGGRAPH_POOL_MAX_SIZE", 10)
# How long a request waits for a Store connection before answering 503.
LANGGRAPH_POOL_TIMEOUT = float(env_str("LANGGRAPH_POOL_TIMEOUT", "3"))
# A 500,000-character memo in multi-byte UTF-8 plus JSON escaping fits under 5 MB.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024)
# Uploads: larger files answer 413. A proxy in front needs client_max_body_size >= this + 64 KB.
DOCUMENT_MAX_BYTES = env_int("DOCUMENT_MAX_BYTES", 50 * 1024 * 1024)
DASHBOARD_PAGE_SIZE = env_int("DASHBOARD_PAGE_SIZE", 20)
DASHBOARD_MAX_PAGE_SIZE = 100

# --- i18n, static -----------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Without `collectstatic` (development, tests) WhiteNoise finds files in the apps directly (and would
# warn at every start that STATIC_ROOT does not exist yet).
warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", not PRODUCTION)
STORAGES = {
    # Documents on local disk (MEDIA_ROOT) unless DOCUMENT_STORAGE_BUCKET names an S3-compatible bucket
    # (then install django-storages[s3]).
    "default": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("DOCUMENT_STORAGE_BUCKET", ""),
            "endpoint_url": env_str("S3_ENDPOINT_URL", "") or None,
            "file_overwrite": False,
        },
    }
    if env_str("DOCUMENT_STORAGE_BUCKET", "")
    else {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))

# --- Production hardening ---------------------------------------------------------------------
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True

# Bearer token that may scrape GET /metrics (a superadmin session may too); empty: superadmins only.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
LOG_FORMAT = env_str("LOG_FORMAT", "json" if PRODUCTION else "plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "canvas_project.observability.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "canvas_project.observability.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        # uvicorn's request lines hold the query string, hence stream tickets: through the masking filter
        "uvicorn.access": {"handlers": ["console"], "propagate": False},
    },
}
