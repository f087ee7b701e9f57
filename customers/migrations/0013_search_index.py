"""One folded trigram index for the search box instead of four.

Email, first name, last name and company had an UPPER() trigram index each; the
search box now matches every word against one text: the email, and the names and
company with their letters folded to base (customers.models.customer.
search_document: "zolkiewska" finds "Żółkiewska"). Built and dropped
concurrently: on a large base the customers stay writable meanwhile.
"""

import django.contrib.postgres.indexes
import django.db.models.functions.comparison
import django.db.models.functions.text
from django.contrib.postgres.operations import (
    AddIndexConcurrently,
    RemoveIndexConcurrently,
)
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("customers", "0012_interactions")]

    operations = [
        AddIndexConcurrently(
            model_name="customer",
            index=django.contrib.postgres.indexes.GinIndex(
                django.contrib.postgres.indexes.OpClass(
                    django.db.models.functions.text.Concat(
                        django.db.models.functions.text.Lower(
                            django.db.models.functions.comparison.Coalesce(
                                "email", models.Value("")
                            )
                        ),
                        models.Value(" "),
                        django.db.models.functions.text.Lower(
                            models.Func(
                                models.Func(
                                    models.Func(
                                        django.db.models.functions.text.Concat(
                                            "first_name",
                                            models.Value(" "),
                                            "last_name",
                                            models.Value(" "),
                                            "company",
                                            output_field=models.TextField(),
                                        ),
                                        function="normalize",
                                        output_field=models.TextField(),
                                        template="%(function)s(%(expressions)s, NFD)",
                                    ),
                                    models.Value("[\\u0300-\\u036f]"),
                                    models.Value(""),
                                    models.Value("g"),
                                    function="regexp_replace",
                                    output_field=models.TextField(),
                                ),
                                models.Value("łŁßøØđĐ"),
                                models.Value("lLsoOdD"),
                                function="translate",
                                output_field=models.TextField(),
                            )
                        ),
                        output_field=models.TextField(),
                    ),
                    name="gin_trgm_ops",
                ),
                name="customer_search_trgm",
            ),
        ),
        RemoveIndexConcurrently(
            model_name="customer",
            name="customer_email_trgm",
        ),
        RemoveIndexConcurrently(
            model_name="customer",
            name="customer_last_name_trgm",
        ),
        RemoveIndexConcurrently(
            model_name="customer",
            name="customer_first_name_trgm",
        ),
        RemoveIndexConcurrently(
            model_name="customer",
            name="customer_company_trgm",
        ),
    ]
