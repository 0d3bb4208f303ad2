"""A small Django site with the package installed, for the tests."""

import os

SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "django_site.urls"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "trailmark.django",
    "django_site.notes",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "trailmark.django.middleware.TrailmarkMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["SITE_DB"],
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
        "USER": os.environ.get("PGUSER", "postgres"),
        "CONN_MAX_AGE": 600,
    }
}
USE_TZ = True
# A fast hasher: the tests sign in hundreds of times.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

TRAILMARK_URL = os.environ["TRAILMARK_URL"]
TRAILMARK_KEY = os.environ["TRAILMARK_KEY"]
TRAILMARK_SPOOL_PATH = os.environ["TRAILMARK_SPOOL_PATH"]
TRAILMARK_TRUSTED_PROXIES = ["10.0.0.0/8"]
TRAILMARK_TENANT = "site"
TRAILMARK_READ_KEY = os.environ.get("TRAILMARK_READ_KEY")
TRAILMARK_BIN = os.environ.get("TRAILMARK_BIN_PATH")
