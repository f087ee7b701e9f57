import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import Customer, CustomerIdentity, Tag
from customers.services import customer_attributes_clean, customer_upsert
from tests.factories.customers import StoreFactory


def writes(ctx):
    return [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].split(None, 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}
    ]


@pytest.mark.django_db
class TestCustomerUpsert:
    def test_same_person_with_other_casing_and_phone_formats_is_one_customer(
        self, store
    ):
        first, created = customer_upsert(
            store=store,
            email="Jan.Kowalski@Example.PL",
            phone="+48 601 234 567",
            first_name="Jan",
        )
        assert created
        assert first.email == "Jan.Kowalski@example.pl"
        assert first.phone == "+48601234567"
        for email, phone in [
            ("jan.kowalski@example.pl", "601234567"),
            ("  JAN.KOWALSKI@EXAMPLE.PL ", "0048601234567"),
        ]:
            again, created = customer_upsert(store=store, email=email, phone=phone)
            assert not created
            assert again.pk == first.pk
        assert Customer.objects.count() == 1
        first.refresh_from_db()
        assert first.phone == "+48601234567"

    def test_repeat_writes_nothing(self, store):
        data = {
            "store": store,
            "external_id": "C-1",
            "email": "anna@example.pl",
            "phone": "601 234 567",
            "first_name": "Anna",
            "attributes": {"profession": "nauczycielka"},
            "tags": ["VIP"],
        }
        customer_upsert(**data)
        with CaptureQueriesContext(connection) as ctx:
            customer, created = customer_upsert(**data)
        assert not created
        assert writes(ctx) == []
        assert customer.attributes == {"profession": "nauczycielka"}

    def test_keyed_by_store_external_id_before_email(self, store):
        customer, _ = customer_upsert(
            store=store, external_id="42", email="a@example.pl"
        )
        again, created = customer_upsert(
            store=store, external_id="42", email="new@example.pl", first_name="Ola"
        )
        assert not created
        assert again.pk == customer.pk
        assert again.email == "new@example.pl"
        assert again.first_name == "Ola"

    def test_other_store_same_external_id_is_another_identity(self, store):
        other = StoreFactory(code="drugi")
        a, _ = customer_upsert(store=store, external_id="1", email="a@example.pl")
        b, created = customer_upsert(store=other, external_id="1", email="b@example.pl")
        assert created
        assert a.pk != b.pk

    def test_email_match_attaches_identity(self, store):
        customer, _ = customer_upsert(email="ewa@example.pl")
        again, created = customer_upsert(
            store=store, external_id="X9", email="EWA@example.pl"
        )
        assert not created
        assert again.pk == customer.pk
        assert (
            CustomerIdentity.objects.get(store=store, external_id="X9").customer
            == customer
        )

    def test_email_owned_by_another_customer_is_a_conflict(self, store):
        customer_upsert(email="owner@example.pl")
        customer_upsert(store=store, external_id="7", email="seven@example.pl")
        with pytest.raises(ValidationError) as error:
            customer_upsert(store=store, external_id="7", email="owner@example.pl")
        assert error.value.error_dict["email"][0].code == "email_taken"

    @pytest.mark.parametrize(
        ("field", "value", "code"),
        [
            ("email", "not-an-email", "invalid_email"),
            ("email", "jan@", "invalid_email"),
            ("phone", "12", "invalid_phone"),
            ("phone", "+48 123", "invalid_phone"),
        ],
    )
    def test_invalid_input_is_a_clear_error_and_writes_nothing(
        self, store, field, value, code
    ):
        data = {
            "store": store,
            "external_id": "E1",
            "email": "ok@example.pl",
            field: value,
        }
        with pytest.raises(ValidationError) as error:
            customer_upsert(**data)
        assert error.value.error_dict[field][0].code == code
        assert str(error.value.error_dict[field][0].message)
        assert Customer.objects.count() == 0
        assert CustomerIdentity.objects.count() == 0

    def test_every_bad_field_is_reported_at_once(self):
        with pytest.raises(ValidationError) as error:
            customer_upsert(
                email="x@example.pl",
                nip="1234567890",
                birth_date="1990-13-45",
                gender="yes",
                attributes={"nope": 1},
            )
        assert set(error.value.error_dict) == {
            "nip",
            "birth_date",
            "gender",
            "attributes.nope",
        }
        assert Customer.objects.count() == 0

    def test_needs_an_email_or_external_id(self, store):
        with pytest.raises(ValidationError) as error:
            customer_upsert(phone="601234567")
        assert error.value.error_dict["email"][0].code == "required"
        with pytest.raises(ValidationError) as error:
            customer_upsert(external_id="1")
        assert "store" in error.value.error_dict

    def test_none_keeps_values_and_attributes_merge(self, store):
        customer_upsert(
            email="m@example.pl",
            first_name="Maria",
            nip="526-000-12-46",
            attributes={"profession": "lekarka"},
        )
        customer, _ = customer_upsert(
            email="m@example.pl", first_name=None, attributes={"lifestyle": "aktywny"}
        )
        assert customer.first_name == "Maria"
        assert customer.nip == "5260001246"
        assert customer.attributes == {"profession": "lekarka", "lifestyle": "aktywny"}

    def test_tags_are_matched_case_insensitively(self):
        Tag.objects.create(name="VIP")
        customer, _ = customer_upsert(email="t@example.pl", tags=["vip", "Hurt"])
        assert sorted(customer.tags.values_list("name", flat=True)) == ["Hurt", "VIP"]
        assert Tag.objects.count() == 2

    def test_last_seen_only_moves_forward(self):
        later = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)
        customer_upsert(email="s@example.pl", last_seen_at=later)
        customer, _ = customer_upsert(
            email="s@example.pl", last_seen_at="2026-01-01T00:00:00Z"
        )
        assert customer.last_seen_at == later


@pytest.mark.django_db
class TestAttributes:
    def test_values_are_converted_to_json(self):
        cleaned = customer_attributes_clean(
            {
                "interests": ["sport", "moda"],
                "education": "wyższe",
                "profession": "  inżynier ",
                "lifestyle": "",
            }
        )
        assert cleaned == {
            "interests": ["sport", "moda"],
            "education": "wyższe",
            "profession": "inżynier",
        }

    def test_bad_values_are_reported_by_code(self):
        with pytest.raises(ValidationError) as error:
            customer_attributes_clean(
                {
                    "education": "doktorat",
                    "marital_status": ["w związku", "wolny/wolna"],
                }
            )
        assert set(error.value.error_dict) == {"education", "marital_status"}
