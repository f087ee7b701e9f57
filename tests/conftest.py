import pytest
from django.contrib.auth.models import Group

from tests.factories.customers import CustomerFactory, StoreFactory


@pytest.fixture
def store(db):
    return StoreFactory(code="sklep", name="Sklep Główny")


@pytest.fixture
def customer(db):
    return CustomerFactory()


@pytest.fixture
def make_staff(db, django_user_model):
    """Create a staff user in the given role groups (names as the roles migration)."""

    def make(*roles: str, username: str | None = None):
        user = django_user_model.objects.create_user(
            username=username or f"user-{'-'.join(roles) or 'none'}",
            password="test-pass-123",
            is_staff=True,
        )
        for role in roles:
            user.groups.add(Group.objects.get(name=role))
        return user

    return make
