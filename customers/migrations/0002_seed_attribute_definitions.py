"""Seed the custom attributes every shop starts with; staff may edit or add more."""

from django.db import migrations

DEFINITIONS = [
    {
        "code": "education",
        "label": "Wykształcenie",
        "kind": "choice",
        "choices": ["podstawowe", "zawodowe", "średnie", "wyższe"],
    },
    {
        "code": "marital_status",
        "label": "Stan cywilny",
        "kind": "choice",
        "choices": [
            "wolny/wolna",
            "w związku",
            "żonaty/zamężna",
            "rozwiedziony/a",
            "wdowiec/wdowa",
        ],
    },
    {"code": "profession", "label": "Zawód", "kind": "text", "choices": []},
    {
        "code": "income_bracket",
        "label": "Przedział dochodu",
        "kind": "choice",
        "choices": [
            "do 3000 zł",
            "3000–6000 zł",
            "6000–10 000 zł",
            "powyżej 10 000 zł",
        ],
    },
    {
        "code": "interests",
        "label": "Zainteresowania",
        "kind": "choice",
        "multiple": True,
        "choices": [
            "sport",
            "podróże",
            "moda",
            "technologia",
            "gotowanie",
            "zwierzęta",
            "książki",
            "muzyka",
            "ogród",
            "zdrowie i uroda",
        ],
    },
    {
        "code": "lifestyle",
        "label": "Styl życia",
        "kind": "choice",
        "choices": ["aktywny", "rodzinny", "miejski", "eko", "domator"],
    },
]


def seed(apps, schema_editor):
    definition = apps.get_model("customers", "AttributeDefinition")
    for position, data in enumerate(DEFINITIONS):
        definition.objects.update_or_create(
            code=data["code"],
            defaults={
                "label": data["label"],
                "kind": data["kind"],
                "choices": data["choices"],
                "multiple": data.get("multiple", False),
                "position": position,
            },
        )


def unseed(apps, schema_editor):
    definition = apps.get_model("customers", "AttributeDefinition")
    definition.objects.filter(code__in=[d["code"] for d in DEFINITIONS]).delete()


class Migration(migrations.Migration):
    dependencies = [("customers", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
