"""The Django site of bench/django: one view writing one row of a captured
table; the package's middleware and app on or off (BENCH_WITH)."""

import os

from django.http import HttpResponse
from django.urls import path

SECRET_KEY = "bench-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "bench_site"
WITH = os.environ.get("BENCH_WITH") == "1"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "bench_app",
] + (["trailmark.django"] if WITH else [])
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
] + (["trailmark.django.middleware.TrailmarkMiddleware"] if WITH else [])
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["BENCH_DB"],
        "HOST": "127.0.0.1",
        "USER": "postgres",
        "CONN_MAX_AGE": 600,
    }
}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
TRAILMARK_URL = os.environ["TRAILMARK_URL"]
TRAILMARK_KEY = os.environ["TRAILMARK_KEY"]
TRAILMARK_SPOOL_PATH = os.environ["TRAILMARK_SPOOL_PATH"]
TRAILMARK_TRUSTED_PROXIES = ["10.0.0.0/8"]
TRAILMARK_TENANT = "bench"


def write(request):
    from bench_app.models import Order

    # Like any view of a signed-in user, it looks at who that is (so both
    # sides load the session and the user; the package's middleware would
    # otherwise be charged for loading them).
    Order.objects.create(number=int(request.POST["n"]), note=f"by {request.user.pk}")
    return HttpResponse("ok")


urlpatterns = [path("write", write)]
