"""Product links for the recommendations in messages: the page and the image.

Empty by default, in the database too, so a raw INSERT that leaves them out works.
"""

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0008_order_line_purchase_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="product",
            name="image_url",
            field=models.URLField(
                blank=True,
                db_default="",
                default="",
                max_length=2000,
                validators=[
                    django.core.validators.URLValidator(
                        message="Enter an absolute http or https address.",
                        schemes=["http", "https"],
                    )
                ],
                verbose_name="image",
            ),
        ),
        migrations.AddField(
            model_name="product",
            name="url",
            field=models.URLField(
                blank=True,
                db_default="",
                default="",
                max_length=2000,
                validators=[
                    django.core.validators.URLValidator(
                        message="Enter an absolute http or https address.",
                        schemes=["http", "https"],
                    )
                ],
                verbose_name="product page",
            ),
        ),
    ]
