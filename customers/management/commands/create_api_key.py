from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from customers.models import Store
from customers.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a store and print it once (only its hash is kept)."

    def add_arguments(self, parser):
        parser.add_argument("--store", required=True, help="The store's code.")
        parser.add_argument("--name", default="", help="What the key is for.")
        parser.add_argument(
            "--scopes",
            default="read,write",
            help="Comma-separated: read, write (default both).",
        )

    def handle(self, *args, store, name, scopes, **options):
        try:
            store_obj = Store.objects.get(code=store)
        except Store.DoesNotExist:
            codes = ", ".join(Store.objects.values_list("code", flat=True)) or "none"
            raise CommandError(
                f"No store with code {store!r} (stores: {codes})."
            ) from None
        try:
            api_key, raw_key = api_key_create(
                store=store_obj,
                name=name or f"{store_obj.code} API key",
                scopes=[s.strip() for s in scopes.split(",") if s.strip()],
            )
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        self.stdout.write(raw_key)
        self.stderr.write(
            f"Key {api_key.prefix}… for store {store_obj.code}, scopes "
            f"{', '.join(api_key.scopes)}. It is shown only now: store it safely. "
            f"Send it as 'Authorization: Api-Key <key>'."
        )
