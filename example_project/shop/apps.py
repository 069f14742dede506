from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "example_project.shop"
    label = "shop"
    verbose_name = "Shop (example)"

    def ready(self) -> None:
        from example_project.shop import receivers

        receivers.connect()
