"""Logins, logouts, failed logins and the admin's log, as events."""

from __future__ import annotations

from django.contrib.auth import signals
from django.db.models.signals import post_save

from . import conf

_ADMIN_ACTIONS = {1: "admin.create", 2: "admin.update", 3: "admin.delete"}


def _user_actor(user):
    return {"id": str(user.pk), "type": "user", "name": user.get_username()}


def logged_in(sender, request, user, **kwargs):
    client = conf.client()
    if client is not None:
        client.login(user.pk, user.get_username())


def logged_out(sender, request, user, **kwargs):
    client = conf.client()
    if client is not None and user is not None:
        client.logout(user.pk, user.get_username())


def login_failed(sender, credentials, request=None, **kwargs):
    client = conf.client()
    if client is not None:
        # Django cleanses the password out of `credentials`.
        client.login_failed(credentials.get("username"))


def admin_logged(sender, instance, created, **kwargs):
    """The admin's own history (``LogEntry``) as ``admin.create|update|delete``."""
    client = conf.client()
    action = _ADMIN_ACTIONS.get(instance.action_flag)
    if client is None or not created or action is None:
        return
    model = instance.content_type.model_class() if instance.content_type_id else None
    kind = model._meta.label if model is not None else "unknown"
    client.record(
        action,
        actor=_user_actor(instance.user),
        resource={"type": kind, "id": str(instance.object_id or ""), "name": instance.object_repr[:200]},
        metadata={"change_message": instance.get_change_message()[:1000]},
    )


def connect() -> None:
    signals.user_logged_in.connect(logged_in, dispatch_uid="trailmark.logged_in")
    signals.user_logged_out.connect(logged_out, dispatch_uid="trailmark.logged_out")
    signals.user_login_failed.connect(login_failed, dispatch_uid="trailmark.login_failed")
    try:
        from django.contrib.admin.models import LogEntry
    except (ImportError, RuntimeError):
        return
    from django.apps import apps

    if apps.is_installed("django.contrib.admin"):
        post_save.connect(admin_logged, sender=LogEntry, dispatch_uid="trailmark.admin")
