"""Trailmark for Django: add ``"trailmark.django"`` to ``INSTALLED_APPS`` and
``"trailmark.django.middleware.TrailmarkMiddleware"`` to ``MIDDLEWARE`` after
the authentication middleware. Settings (docs/integrations.md):

``TRAILMARK_URL``, ``TRAILMARK_KEY``
    the server and a key with the ingest scope (events: logins, admin
    actions, failed writes).
``TRAILMARK_ENABLED`` (default ``True``)
    ``False``: nothing is sent and no capture context is set.
``TRAILMARK_TRUSTED_PROXIES`` (default ``[]``)
    addresses or networks whose ``X-Forwarded-For`` / ``Forwarded`` is
    believed; from anyone else the headers are ignored.
``TRAILMARK_SPOOL_PATH`` (default ``trailmark-spool.sqlite3``)
    the disk spool events wait in while the server is away.
``TRAILMARK_TENANT``
    the tenant of every event and captured change (else the key's).
"""
