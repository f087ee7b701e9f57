from customers.models import AttributeDefinition


def test_attribute_definitions_are_seeded(db):
    assert set(AttributeDefinition.objects.values_list("code", flat=True)) >= {
        "education",
        "marital_status",
        "profession",
        "income_bracket",
        "interests",
        "lifestyle",
    }
