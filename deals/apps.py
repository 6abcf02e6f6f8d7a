from django.apps import AppConfig


class DealsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "deals"
    verbose_name = "Deals and access"

    def ready(self) -> None:
        # lazy: like every AppConfig.ready() import (apps are loaded by now); registers the OpenAPI security scheme
        from deals import authentication  # noqa: F401
