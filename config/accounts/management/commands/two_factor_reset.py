from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from config.accounts import devices


class Command(BaseCommand):
    help = (
        "Remove a staff member's authenticator app and recovery codes (a lost "
        "phone): they set up a new app at their next sign-in, after the password."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username: str, **options):
        User = get_user_model()
        try:
            user = User.objects.get_by_natural_key(username)
        except User.DoesNotExist:
            raise CommandError(f"No user {username!r}.") from None
        removed = devices.reset(user)
        self.stdout.write(
            f"Removed {removed} second-factor device(s) of {username}: "
            "a new authenticator app is set up at the next sign-in."
        )
