"""The six consent purposes with their first texts, and the roles' permissions.

Descriptions, data categories and retention are the register of processing's
(Art. 30) starting point, in Polish: the shop adapts them in the admin. Texts are
immutable; a change is a new version.
"""

import hashlib

from django.db import migrations

from customers.roles import (
    CONSENTS_PERMISSIONS,
    grant_role_permissions,
    revoke_role_permissions,
)

PURPOSES = [
    {
        "code": "email_marketing",
        "channel": "email",
        "is_marketing": True,
        "requires_double_opt_in": True,
        "description": "Wysyłka newslettera i ofert handlowych pocztą elektroniczną.",
        "data_categories": ["email", "imię", "historia zamówień"],
        "recipients": "dostawca usługi wysyłki e-mail (podmiot przetwarzający)",
        "retention": "do wycofania zgody",
        "texts": {
            "pl": "Zgadzam się na otrzymywanie informacji handlowych i newslettera "
            "na mój adres e-mail.",
            "en": "I agree to receive newsletters and offers at my email address.",
        },
    },
    {
        "code": "sms_marketing",
        "channel": "sms",
        "is_marketing": True,
        "requires_double_opt_in": False,
        "description": "Wysyłka ofert i przypomnień handlowych SMS-em.",
        "data_categories": ["numer telefonu", "imię"],
        "recipients": "bramka SMS (podmiot przetwarzający)",
        "retention": "do wycofania zgody",
        "texts": {
            "pl": "Zgadzam się na otrzymywanie informacji handlowych SMS-em "
            "na mój numer telefonu.",
            "en": "I agree to receive offers by text message on my phone number.",
        },
    },
    {
        "code": "phone_marketing",
        "channel": "phone",
        "is_marketing": True,
        "requires_double_opt_in": False,
        "description": "Kontakt telefoniczny w celach marketingowych.",
        "data_categories": ["numer telefonu", "imię i nazwisko"],
        "recipients": "",
        "retention": "do wycofania zgody",
        "texts": {
            "pl": "Zgadzam się na kontakt telefoniczny w celach marketingowych.",
            "en": "I agree to be called with marketing offers.",
        },
    },
    {
        "code": "profiling",
        "channel": "",
        "is_marketing": False,
        "requires_double_opt_in": False,
        "description": "Analiza historii zakupów i zachowań (RFM, segmenty, "
        "rekomendacje) w celu dopasowania ofert.",
        "data_categories": ["historia zamówień", "zdarzenia na stronie", "lokalizacja"],
        "recipients": "",
        "retention": "do wycofania zgody lub sprzeciwu",
        "texts": {
            "pl": "Zgadzam się na analizę moich zakupów i aktywności w sklepie "
            "w celu dopasowania ofert do moich zainteresowań.",
            "en": "I agree to the analysis of my purchases and activity in the shop "
            "so that offers match my interests.",
        },
    },
    {
        "code": "tracking",
        "channel": "email",
        "is_marketing": False,
        "requires_double_opt_in": False,
        "description": "Pomiar otwarć i kliknięć w wiadomościach e-mail.",
        "data_categories": ["adres IP", "czas otwarcia", "kliknięte linki"],
        "recipients": "dostawca usługi wysyłki e-mail (podmiot przetwarzający)",
        "retention": "13 miesięcy",
        "texts": {
            "pl": "Zgadzam się na pomiar otwarć i kliknięć w wiadomościach, "
            "które otrzymuję.",
            "en": "I agree to the measuring of opens and clicks in the messages "
            "I receive.",
        },
    },
    {
        "code": "partner_sharing",
        "channel": "",
        "is_marketing": True,
        "requires_double_opt_in": False,
        "description": "Udostępnianie danych kontaktowych partnerom handlowym "
        "w celach marketingowych.",
        "data_categories": ["imię i nazwisko", "email", "numer telefonu"],
        "recipients": "partnerzy handlowi wymienieni w polityce prywatności",
        "retention": "do wycofania zgody",
        "texts": {
            "pl": "Zgadzam się na przekazanie moich danych kontaktowych partnerom "
            "sklepu w celach marketingowych.",
            "en": "I agree that my contact details may be shared with the shop's "
            "partners for their marketing.",
        },
    },
]


def seed(apps, schema_editor):
    purpose_model = apps.get_model("consents", "ConsentPurpose")
    text_model = apps.get_model("consents", "ConsentText")
    for position, data in enumerate(PURPOSES):
        data = dict(data)
        texts = data.pop("texts")
        purpose, _created = purpose_model.objects.get_or_create(
            code=data.pop("code"), defaults={**data, "position": position}
        )
        for language, text in texts.items():
            if not text_model.objects.filter(
                purpose=purpose, language=language
            ).exists():
                text_model.objects.create(
                    purpose=purpose,
                    language=language,
                    version=1,
                    text=text,
                    content_hash=hashlib.sha256(text.encode()).hexdigest(),
                )
    grant_role_permissions(apps, "consents", CONSENTS_PERMISSIONS)


def unseed(apps, schema_editor):
    revoke_role_permissions(apps, "consents", CONSENTS_PERMISSIONS)


class Migration(migrations.Migration):
    dependencies = [("consents", "0001_initial"), ("customers", "0003_roles")]

    operations = [migrations.RunPython(seed, unseed)]
