"""Who the customers are: metrics and RFM scores, and segments of them.

CustomerMetrics is computed in PostgreSQL by ``segments.metrics`` (set-based SQL,
never a Python loop over customers); segments are rule trees (``segments.rules``)
whose members ``segments.services`` materialises.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from customers.models import Customer, Store, currency_validator
from orders.models import Category

SCORE_VALIDATORS = [MinValueValidator(1), MaxValueValidator(5)]


class CurrencyRate(models.Model):
    """What one unit of a currency is worth in the default currency.

    Revenue, order values and the M score are in the default currency (PLN unless
    configured): an order in another currency counts at this rate, and an order in
    a currency with no rate counts for recency and frequency but not for money.
    """

    currency = models.CharField(
        _("currency"), max_length=3, unique=True, validators=[currency_validator]
    )
    rate = models.DecimalField(
        _("rate"),
        max_digits=14,
        decimal_places=6,
        help_text=_("Value of 1 unit in the default currency."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("currency rate")
        verbose_name_plural = _("currency rates")
        ordering = ["currency"]
        constraints = [
            models.CheckConstraint(
                condition=Q(rate__gt=0), name="currency_rate_positive"
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"), name="currency_rate_iso"
            ),
        ]

    def __str__(self) -> str:
        return f"1 {self.currency} = {self.rate} {settings.DEFAULT_CURRENCY}"


class RfmSegment(models.Model):
    """A named RFM segment; which R-by-F cells belong to it is in RfmCell."""

    class Code(models.TextChoices):
        CHAMPIONS = "champions", _("Champions")
        LOYAL = "loyal", _("Loyal")
        POTENTIAL_LOYALISTS = "potential_loyalists", _("Potential loyalists")
        NEW_CUSTOMERS = "new_customers", _("New customers")
        PROMISING = "promising", _("Promising")
        NEED_ATTENTION = "need_attention", _("Need attention")
        ABOUT_TO_SLEEP = "about_to_sleep", _("About to sleep")
        AT_RISK = "at_risk", _("At risk")
        CANT_LOSE_THEM = "cant_lose_them", _("Can't lose them")
        HIBERNATING = "hibernating", _("Hibernating")
        LOST = "lost", _("Lost")

    code = models.CharField(_("code"), max_length=24, choices=Code.choices, unique=True)
    name = models.CharField(
        _("name"),
        max_length=80,
        blank=True,
        help_text=_("Leave blank for the standard name in each user's language."),
    )
    description = models.CharField(_("description"), max_length=255, blank=True)
    color = models.CharField(_("colour"), max_length=7, default="#64748b")
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    class Meta:
        verbose_name = _("RFM segment")
        verbose_name_plural = _("RFM segments")
        ordering = ["position", "code"]

    def __str__(self) -> str:
        return self.name or str(self.Code(self.code).label)


class RfmCell(models.Model):
    """One cell of the recency-by-frequency grid and the named segment it is in."""

    recency = models.PositiveSmallIntegerField(
        _("R score"), validators=SCORE_VALIDATORS
    )
    frequency = models.PositiveSmallIntegerField(
        _("F score"), validators=SCORE_VALIDATORS
    )
    segment = models.ForeignKey(
        RfmSegment,
        verbose_name=_("RFM segment"),
        on_delete=models.PROTECT,
        related_name="cells",
    )

    class Meta:
        verbose_name = _("RFM grid cell")
        verbose_name_plural = _("RFM grid cells")
        ordering = ["-recency", "frequency"]
        constraints = [
            models.UniqueConstraint(
                fields=["recency", "frequency"], name="rfm_cell_unique"
            ),
            models.CheckConstraint(
                condition=Q(recency__range=(1, 5), frequency__range=(1, 5)),
                name="rfm_cell_scores_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"R{self.recency} F{self.frequency}"


class CustomerMetricsQuerySet(models.QuerySet):
    def overall(self) -> CustomerMetricsQuerySet:
        """The figures over every store (one row per buyer)."""
        return self.filter(store__isnull=True)

    def scored(self) -> CustomerMetricsQuerySet:
        """Rows with RFM scores (buyers who may be profiled)."""
        return self.filter(recency_score__isnull=False)


class CustomerMetrics(models.Model):
    """A buyer's figures over all stores (``store`` empty) or in one store.

    Only customers with at least one paid, shipped or delivered order have rows.
    Money is in the default currency (see CurrencyRate). Customers who objected to
    profiling, are restricted or erased keep the plain figures (order count,
    revenue, dates) but get no scores, segment, favourites or prediction.
    """

    # Derived rows, written in bulk by segments.metrics from the rows they point
    # at, in the same statement: the foreign keys are not checked row by row in
    # the database (three index probes per row, a third of a first recompute).
    # Django still cascades a deleted customer or store to them.
    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.CASCADE,
        related_name="metrics",
        db_index=False,  # customer_metrics_unique leads with it
        db_constraint=False,
    )
    store = models.ForeignKey(
        Store,
        verbose_name=_("store"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("Empty: all stores together."),
        db_constraint=False,
    )
    orders_count = models.PositiveIntegerField(_("orders"))
    revenue = models.DecimalField(_("revenue"), max_digits=14, decimal_places=2)
    average_order_value = models.DecimalField(
        _("average order value"), max_digits=14, decimal_places=2
    )
    first_order_at = models.DateTimeField(_("first order"))
    last_order_at = models.DateTimeField(_("last order"))
    average_days_between_orders = models.DecimalField(
        _("average days between orders"),
        max_digits=7,
        decimal_places=1,
        null=True,
        blank=True,
    )
    favourite_category = models.ForeignKey(
        Category,
        verbose_name=_("favourite category"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    favourite_brand = models.CharField(_("favourite brand"), max_length=100, blank=True)
    predicted_next_order_on = models.DateField(
        _("next purchase expected"), null=True, blank=True
    )
    clv = models.DecimalField(
        _("historical lifetime value"),
        max_digits=14,
        decimal_places=2,
        help_text=_(
            "Revenue over the customer's whole history, or what the previous "
            "platform reported if that is more."
        ),
    )
    recency_score = models.PositiveSmallIntegerField(
        _("R"), null=True, blank=True, validators=SCORE_VALIDATORS
    )
    frequency_score = models.PositiveSmallIntegerField(
        _("F"), null=True, blank=True, validators=SCORE_VALIDATORS
    )
    monetary_score = models.PositiveSmallIntegerField(
        _("M"), null=True, blank=True, validators=SCORE_VALIDATORS
    )
    rfm_segment = models.CharField(
        _("RFM segment"), max_length=24, choices=RfmSegment.Code.choices, blank=True
    )
    # When a figure last changed: a recompute that finds the same figures leaves
    # the row alone (RfmThreshold.computed_at says when everyone was last ranked).
    updated_at = models.DateTimeField(_("figures changed at"))

    objects = CustomerMetricsQuerySet.as_manager()

    class Meta:
        verbose_name = _("customer metrics")
        verbose_name_plural = _("customer metrics")
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "store"],
                nulls_distinct=False,
                name="customer_metrics_unique",
            ),
            models.CheckConstraint(
                condition=(
                    Q(recency_score__isnull=True)
                    & Q(frequency_score__isnull=True)
                    & Q(monetary_score__isnull=True)
                    & Q(rfm_segment="")
                )
                | (
                    Q(recency_score__range=(1, 5))
                    & Q(frequency_score__range=(1, 5))
                    & Q(monetary_score__range=(1, 5))
                    & ~Q(rfm_segment="")
                ),
                name="customer_metrics_scores_together",
            ),
        ]
        indexes = [
            # The RFM page: the grid and the named segments, per store or overall.
            models.Index(
                fields=["store", "recency_score", "frequency_score"],
                condition=Q(recency_score__isnull=False),
                name="customer_metrics_grid_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.store_id or '*'}"

    @property
    def days_since_last_order(self) -> int:
        today = timezone.localdate()
        return (today - timezone.localtime(self.last_order_at).date()).days

    @property
    def rfm_label(self) -> str:
        return f"{self.recency_score}{self.frequency_score}{self.monetary_score}"


class RfmThreshold(models.Model):
    """The quintile cuts of the last full recompute, per store and overall.

    A buyer scores 1 plus the number of cuts their value is above (see
    segments.metrics). The incremental recompute scores a customer whose orders
    changed against these, so one new order does not re-rank every buyer; the
    nightly recompute ranks everyone again and writes new cuts.
    """

    store = models.OneToOneField(
        Store,
        verbose_name=_("store"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
    )
    # Four ascending cuts each: the values at ranks n/5, 2n/5, 3n/5 and 4n/5.
    recency = models.JSONField(_("last order dates"), default=list)
    frequency = models.JSONField(_("order counts"), default=list)
    monetary = models.JSONField(_("revenues"), default=list)
    buyers = models.PositiveIntegerField(_("scored buyers"), default=0)
    orders_without_rate = models.PositiveIntegerField(
        _("orders in a currency with no rate"),
        default=0,
        db_default=0,  # segments.metrics inserts the rows in SQL
        help_text=_("Counted for recency and frequency, left out of money."),
    )
    computed_at = models.DateTimeField(_("computed at"))

    class Meta:
        verbose_name = _("RFM thresholds")
        verbose_name_plural = _("RFM thresholds")
        constraints = [
            models.UniqueConstraint(
                fields=["store"], nulls_distinct=False, name="rfm_threshold_unique"
            )
        ]

    def __str__(self) -> str:
        return str(self.store or _("All stores"))


class RfmSegmentMove(models.Model):
    """A customer moved from one named RFM segment to another (over all stores).

    An empty ``from_segment`` is a first score; an empty ``to_segment`` is a customer
    who is no longer scored (objected to profiling, restricted, no orders left).
    The very first recompute records no moves: nobody moved, they were first seen.
    """

    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.CASCADE,
        related_name="rfm_moves",
        db_index=False,  # rfm_move_customer_idx
        db_constraint=False,  # written in bulk by segments.metrics, as above
    )
    from_segment = models.CharField(
        _("from"), max_length=24, choices=RfmSegment.Code.choices, blank=True
    )
    to_segment = models.CharField(
        _("to"), max_length=24, choices=RfmSegment.Code.choices, blank=True
    )
    moved_at = models.DateTimeField(_("moved at"))

    class Meta:
        verbose_name = _("RFM segment move")
        verbose_name_plural = _("RFM segment moves")
        ordering = ["-moved_at"]
        indexes = [
            models.Index(
                fields=["customer", "-moved_at"], name="rfm_move_customer_idx"
            ),
            models.Index(fields=["moved_at"], name="rfm_move_moved_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.from_segment or '-'} → {self.to_segment or '-'}"


class MetricsQueue(models.Model):
    """Customers whose metrics are due for recomputing (orders or rights changed).

    One row per customer however many times they changed: the incremental task
    takes them all at once.
    """

    customer = models.OneToOneField(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="+",
    )
    queued_at = models.DateTimeField(_("queued at"), default=timezone.now)

    class Meta:
        verbose_name = _("queued metrics recompute")
        verbose_name_plural = _("queued metrics recomputes")

    def __str__(self) -> str:
        return str(self.customer_id)


class Segment(models.Model):
    """A group of customers: by rules (dynamic) or hand-picked (static)."""

    class Kind(models.TextChoices):
        DYNAMIC = "dynamic", _("Dynamic (by rules)")
        STATIC = "static", _("Static (a list)")

    class Schedule(models.TextChoices):
        MANUAL = "manual", _("Only on demand")
        HOURLY = "hourly", _("Every hour")
        DAILY = "daily", _("Every night")

    SCHEDULE_PERIODS = {
        Schedule.HOURLY: dt.timedelta(hours=1),
        Schedule.DAILY: dt.timedelta(days=1),
    }

    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    kind = models.CharField(
        _("kind"), max_length=8, choices=Kind.choices, default=Kind.DYNAMIC
    )
    rules = models.JSONField(
        _("rules"),
        default=dict,
        blank=True,
        help_text=_("The rule tree of a dynamic segment (see segments.rules)."),
    )
    schedule = models.CharField(
        _("rebuilt"), max_length=8, choices=Schedule.choices, default=Schedule.DAILY
    )
    is_active = models.BooleanField(_("active"), default=True)
    size = models.PositiveIntegerField(_("members"), default=0)
    rebuilt_at = models.DateTimeField(_("last rebuilt"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        ordering = ["name"]
        permissions = [("export_segment", _("Can export segment members"))]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["dynamic", "static"]), name="segment_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(schedule__in=["manual", "hourly", "daily"]),
                name="segment_schedule_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_dynamic(self) -> bool:
        return self.kind == self.Kind.DYNAMIC

    def rebuild_due(self, now: dt.datetime) -> bool:
        period = self.SCHEDULE_PERIODS.get(self.schedule)
        if not self.is_active or not self.is_dynamic or period is None:
            return False
        # A little slack, so an hourly beat does not skip every other hour.
        return self.rebuilt_at is None or now - self.rebuilt_at >= period * 0.9


class SegmentMembership(models.Model):
    segment = models.ForeignKey(
        Segment,
        verbose_name=_("segment"),
        on_delete=models.CASCADE,
        related_name="memberships",
        db_index=False,  # segment_membership_unique leads with it
    )
    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.CASCADE,
        related_name="segment_memberships",
        db_index=False,  # segment_member_customer_idx
    )
    entered_at = models.DateTimeField(_("member since"))
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("added by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )

    class Meta:
        verbose_name = _("segment member")
        verbose_name_plural = _("segment members")
        constraints = [
            models.UniqueConstraint(
                fields=["segment", "customer"], name="segment_membership_unique"
            )
        ]
        indexes = [
            models.Index(fields=["customer"], name="segment_member_customer_idx")
        ]

    def __str__(self) -> str:
        return f"{self.segment_id}:{self.customer_id}"


class SegmentRebuild(models.Model):
    """One rebuild of a segment's members: the size history, and how it changed."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", _("Schedule")
        MANUAL = "manual", _("On demand")
        EDIT = "edit", _("Rules changed")
        LIST = "list", _("List changed")

    segment = models.ForeignKey(
        Segment,
        verbose_name=_("segment"),
        on_delete=models.CASCADE,
        related_name="rebuilds",
        db_index=False,  # segment_rebuild_segment_idx
    )
    trigger = models.CharField(_("trigger"), max_length=8, choices=Trigger.choices)
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"))
    size = models.PositiveIntegerField(_("members"))
    entered = models.PositiveIntegerField(_("entered"))
    left = models.PositiveIntegerField(_("left"))
    rules = models.JSONField(_("rules"), default=dict, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("requested by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )

    class Meta:
        verbose_name = _("segment rebuild")
        verbose_name_plural = _("segment rebuilds")
        ordering = ["-started_at"]
        indexes = [
            models.Index(
                fields=["segment", "-started_at"], name="segment_rebuild_segment_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.segment_id} {self.started_at:%Y-%m-%d %H:%M}"


class SegmentChange(models.Model):
    """A customer entered or left a segment at a rebuild (flows start on entering)."""

    class Kind(models.TextChoices):
        ENTERED = "entered", _("Entered")
        LEFT = "left", _("Left")

    segment = models.ForeignKey(
        Segment,
        verbose_name=_("segment"),
        on_delete=models.CASCADE,
        related_name="changes",
        db_index=False,  # segment_change_segment_idx
    )
    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.CASCADE,
        related_name="segment_changes",
        db_index=False,  # segment_change_customer_idx
    )
    rebuild = models.ForeignKey(
        SegmentRebuild,
        verbose_name=_("rebuild"),
        on_delete=models.CASCADE,
        related_name="changes",
        db_index=False,  # segment_change_rebuild_idx
    )
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    at = models.DateTimeField(_("at"))

    class Meta:
        verbose_name = _("segment change")
        verbose_name_plural = _("segment changes")
        ordering = ["-at"]
        indexes = [
            models.Index(fields=["segment", "-at"], name="segment_change_segment_idx"),
            models.Index(
                fields=["customer", "-at"], name="segment_change_customer_idx"
            ),
            models.Index(fields=["rebuild"], name="segment_change_rebuild_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.segment_id}:{self.customer_id}"


# --- The dashboard's pre-aggregated figures ------------------------------------------
#
# Written only by segments.rollups (set-based SQL), read by segments.dashboard. A day
# is a local day (TIME_ZONE). Money is in the order's currency: the dashboard converts
# at the current CurrencyRate when it reads, as the RFM figures do, so a new rate needs
# no rebuild. The foreign keys are not checked row by row in the database (rows are
# derived and written in bulk, like CustomerMetrics); Django still cascades deletes.


class DailySales(models.Model):
    """One store's orders that count as revenue, on one day, in one currency."""

    day = models.DateField(_("day"))
    store = models.ForeignKey(
        Store,
        verbose_name=_("store"),
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,  # daily_sales_unique leads with the day
        db_constraint=False,
    )
    currency = models.CharField(_("currency"), max_length=3)
    orders = models.PositiveIntegerField(_("orders"))
    revenue = models.DecimalField(_("revenue"), max_digits=16, decimal_places=2)

    class Meta:
        verbose_name = _("daily sales")
        verbose_name_plural = _("daily sales")
        ordering = ["-day", "store", "currency"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "store", "currency"], name="daily_sales_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.store_id} {self.currency}"


class DailyCustomers(models.Model):
    """Who ordered on one day, in one store or (``store`` empty) in any.

    Customers are counted once a day whatever their orders, and only while they may
    be processed (not erased, restricted or merged away). ``repeat_gaps`` makes
    distinct counts over any period exact without a row per customer: the customers
    who ordered on this day and before, by the days since their previous order day,
    cumulated (element k: those whose previous order day was at most k days
    earlier). ``second_order_gaps`` is the same for customers whose previous order
    day was their first (this day is their second). See segments.dashboard.
    """

    day = models.DateField(_("day"))
    store = models.ForeignKey(
        Store,
        verbose_name=_("store"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # daily_customers_unique leads with the day
        db_constraint=False,
        help_text=_("Empty: all stores together."),
    )
    customers = models.PositiveIntegerField(_("customers"))
    new_customers = models.PositiveIntegerField(_("new customers"))
    repeat_gaps = ArrayField(
        models.PositiveIntegerField(), verbose_name=_("repeat gaps"), default=list
    )
    second_order_gaps = ArrayField(
        models.PositiveIntegerField(),
        verbose_name=_("second order gaps"),
        default=list,
    )

    class Meta:
        verbose_name = _("daily customers")
        verbose_name_plural = _("daily customers")
        ordering = ["-day", "store"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "store"],
                nulls_distinct=False,
                name="daily_customers_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.store_id or '*'}"


class DailyCategorySales(models.Model):
    """Order lines of one category in one store on one day, in one currency."""

    day = models.DateField(_("day"))
    store = models.ForeignKey(
        Store,
        verbose_name=_("store"),
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    category = models.ForeignKey(
        Category,
        verbose_name=_("category"),
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    currency = models.CharField(_("currency"), max_length=3)
    lines = models.PositiveIntegerField(_("order lines"))
    quantity = models.DecimalField(_("quantity"), max_digits=16, decimal_places=3)
    revenue = models.DecimalField(_("revenue"), max_digits=16, decimal_places=2)

    class Meta:
        verbose_name = _("daily category sales")
        verbose_name_plural = _("daily category sales")
        ordering = ["-day", "store", "category"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "store", "category", "currency"],
                name="daily_category_sales_unique",
            )
        ]
        indexes = [
            # Deleting a category cascades here.
            models.Index(fields=["category"], name="daily_category_sales_cat_idx")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.category_id} {self.currency}"


class DailyBrandSales(models.Model):
    """Order lines of one brand's products in one store on one day, in one currency."""

    day = models.DateField(_("day"))
    store = models.ForeignKey(
        Store,
        verbose_name=_("store"),
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    brand = models.CharField(_("brand"), max_length=100)
    currency = models.CharField(_("currency"), max_length=3)
    lines = models.PositiveIntegerField(_("order lines"))
    quantity = models.DecimalField(_("quantity"), max_digits=16, decimal_places=3)
    revenue = models.DecimalField(_("revenue"), max_digits=16, decimal_places=2)

    class Meta:
        verbose_name = _("daily brand sales")
        verbose_name_plural = _("daily brand sales")
        ordering = ["-day", "store", "brand"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "store", "brand", "currency"],
                name="daily_brand_sales_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.brand} {self.currency}"


class DashboardSnapshot(models.Model):
    """The dashboard's figures that do not depend on the period, per store or overall.

    Cohort retention, the lifetime value distribution, the RFM segment mix and the
    consent coverage, as of ``computed_at`` (segments.rollups, nightly and on
    demand). Also the holder of the dashboard permission.
    """

    store = models.OneToOneField(
        Store,
        verbose_name=_("store"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("Empty: all stores together."),
    )
    computed_at = models.DateTimeField(_("computed at"))
    cohorts = models.JSONField(_("cohort retention"), default=dict)
    lifetime_values = models.JSONField(_("lifetime value distribution"), default=dict)
    rfm_mix = models.JSONField(_("RFM segment mix"), default=dict)
    consent_coverage = models.JSONField(_("consent coverage"), default=dict)

    class Meta:
        verbose_name = _("dashboard snapshot")
        verbose_name_plural = _("dashboard snapshots")
        permissions = [("view_dashboard", _("Can see the dashboard"))]
        constraints = [
            models.UniqueConstraint(
                fields=["store"],
                nulls_distinct=False,
                name="dashboard_snapshot_unique",
            )
        ]

    def __str__(self) -> str:
        return str(self.store or _("All stores"))


class DashboardRefresh(models.Model):
    """One run of segments.rollups: which days it rebuilt, and when it finished."""

    class Kind(models.TextChoices):
        RECENT = "recent", _("Recent days")
        FULL = "full", _("Every day")
        SNAPSHOT = "snapshot", _("Snapshot")

    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    first_day = models.DateField(_("from"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"))
    rows = models.PositiveIntegerField(_("rows written"), default=0)

    class Meta:
        verbose_name = _("dashboard refresh")
        verbose_name_plural = _("dashboard refreshes")
        ordering = ["-finished_at"]
        indexes = [
            models.Index(fields=["kind", "-finished_at"], name="dashboard_refresh_idx")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.finished_at:%Y-%m-%d %H:%M}"

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()
