import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create an admin user with a generated password if no superuser exists yet, and print "
        "the password once. Does nothing on later runs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username="admin", **options):
        users = get_user_model().objects
        if users.filter(is_superuser=True).exists():
            self.stdout.write("An admin user exists already; nothing to do.")
            return
        password = secrets.token_urlsafe(16)
        users.create_superuser(username=username, email="", password=password)
        self.stdout.write(
            f"Created admin user '{username}' with password: {password}\n"
            "This password is shown only once; change it in the admin after logging in."
        )
