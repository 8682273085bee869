from django.core.management.base import BaseCommand, CommandError

from quotas.models import APIKey

NAME_MAX = APIKey._meta.get_field("name").max_length


class Command(BaseCommand):
    help = (
        "Create an API key and print it once, as the last line of the output. Only its hash is "
        "stored: a lost key cannot be shown again, only revoked and replaced."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "name", help=f"Who or what uses the key (at most {NAME_MAX} characters)."
        )
        parser.add_argument(
            "--role",
            choices=APIKey.Role.values,
            default=APIKey.Role.DISPATCHER,
            help="dispatcher (default): check, dispatch, report usage; admin: also change limits.",
        )

    def handle(self, *args, name, role, **options):
        name = name.strip()
        if not name or len(name) > NAME_MAX:
            raise CommandError(f"The name must be 1 to {NAME_MAX} characters.")
        api_key, key = APIKey.objects.create_key(name=name, role=role)
        self.stdout.write(
            f"Created {role} key '{name}' (prefix {api_key.prefix}). Store it now; it is not "
            "shown again:"
        )
        self.stdout.write(key)
