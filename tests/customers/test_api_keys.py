import pytest
from django.core.management import call_command

from customers.models import ApiKey
from customers.services import api_key_hash

pytestmark = pytest.mark.django_db


def test_manager_creates_a_key_in_the_admin_and_sees_it_once(client, make_staff, store):
    client.force_login(make_staff("Manager"))
    response = client.post(
        "/admin/customers/apikey/add/",
        {"store": store.pk, "name": "Sklep", "scopes": ["read", "write"]},
        follow=True,
    )
    assert response.status_code == 200
    api_key = ApiKey.objects.get()
    shown = [str(m) for m in response.context["messages"]]
    raw = next(m for m in shown if "kt_" in m).split("<code>")[1].split("</code>")[0]
    assert api_key_hash(raw) == api_key.key_hash
    assert (
        raw
        not in client.get(
            f"/admin/customers/apikey/{api_key.pk}/change/"
        ).content.decode()
    )


def test_revoke_action(client, make_staff, store, make_api_client):
    api = make_api_client(store)
    client.force_login(make_staff("Manager"))
    client.post(
        "/admin/customers/apikey/",
        {"action": "revoke_keys", "_selected_action": [ApiKey.objects.get().pk]},
    )
    assert api.get("/api/v1/customers/").status_code == 401


def test_support_cannot_open_api_keys(client, make_staff):
    client.force_login(make_staff("Support"))
    assert client.get("/admin/customers/apikey/").status_code == 403


def test_create_api_key_command_prints_the_key_once(store, capsys):
    call_command("create_api_key", "--store", store.code, "--scopes", "read")
    out = capsys.readouterr()
    raw = out.out.strip()
    assert ApiKey.objects.get().key_hash == api_key_hash(raw)
    assert ApiKey.objects.get().scopes == ["read"]
