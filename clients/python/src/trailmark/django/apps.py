from django.apps import AppConfig


class TrailmarkConfig(AppConfig):
    name = "trailmark.django"
    label = "trailmark"
    verbose_name = "Trailmark"

    def ready(self) -> None:
        from . import receivers

        receivers.connect()
