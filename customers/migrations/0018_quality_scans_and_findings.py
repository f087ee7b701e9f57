"""The data quality scan's record (QualityScan) and what its checks found
(QualityFinding): the quality pages list findings instead of checking a million
customers per page view."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0017_merge_role_permissions"),
    ]

    operations = [
        migrations.CreateModel(
            name="QualityScan",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                (
                    "started_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, verbose_name="started at"
                    ),
                ),
                (
                    "finished_at",
                    models.DateTimeField(
                        blank=True, null=True, verbose_name="finished at"
                    ),
                ),
                (
                    "duplicates",
                    models.JSONField(
                        default=dict, verbose_name="likely duplicates per reason"
                    ),
                ),
                (
                    "counts",
                    models.JSONField(default=dict, verbose_name="count per check"),
                ),
                (
                    "duplicates_seconds",
                    models.FloatField(
                        blank=True, null=True, verbose_name="duplicate scan time (s)"
                    ),
                ),
            ],
            options={
                "verbose_name": "data quality scan",
                "verbose_name_plural": "data quality scans",
                "ordering": ["-started_at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="QualityFinding",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                ("code", models.SlugField(max_length=40, verbose_name="check")),
                ("object_id", models.BigIntegerField(verbose_name="record")),
                (
                    "found_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, verbose_name="found at"
                    ),
                ),
            ],
            options={
                "verbose_name": "data quality finding",
                "verbose_name_plural": "data quality findings",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("code", "object_id"), name="quality_finding_unique"
                    )
                ],
            },
        ),
    ]
