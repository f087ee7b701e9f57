"""An index on UPPER(city): segments by city, and the planner's statistics of it.

Built concurrently: on a large base the addresses stay writable meanwhile.
"""

import django.db.models.functions.text
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("customers", "0014_interaction_role_permissions")]

    operations = [
        AddIndexConcurrently(
            model_name="address",
            index=models.Index(
                django.db.models.functions.text.Upper("city"),
                name="address_city_ci_idx",
            ),
        ),
    ]
