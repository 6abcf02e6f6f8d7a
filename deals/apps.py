from django.apps import AppConfig


class DealsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "deals"
    verbose_name = "Deals and access"

    def ready(self) -> None:
        from deals import authentication  # noqa: F401 - registers the OpenAPI security scheme
