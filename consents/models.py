"""RODO: purposes, consent texts, the consent ledger, requests and the access log.

Also the current consent state and the suppression list of erased people.
The ledger (ConsentEvent) and the access log refuse UPDATE and DELETE in the
database itself (triggers). The current consent per customer and purpose
(ConsentState) is kept by a trigger on the ledger, so it cannot drift from it.
"""

from __future__ import annotations

import datetime as dt

import pgtrigger
from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from customers.models import ApiKey, Customer, Store

LANGUAGES = [("pl", _("Polish")), ("en", _("English"))]


class ConsentPurpose(models.Model):
    """Why personal data is processed, and on what legal basis (Art. 6, Art. 30)."""

    class Code(models.TextChoices):
        EMAIL_MARKETING = "email_marketing", _("Email marketing")
        SMS_MARKETING = "sms_marketing", _("SMS marketing")
        PHONE_MARKETING = "phone_marketing", _("Phone marketing")
        PROFILING = "profiling", _("Profiling and personalisation")
        TRACKING = "tracking", _("Email open and click tracking")
        PARTNER_SHARING = "partner_sharing", _("Sharing with partners")

    class LegalBasis(models.TextChoices):
        CONSENT = "consent", _("Consent (Art. 6(1)(a))")
        CONTRACT = "contract", _("Contract (Art. 6(1)(b))")
        LEGAL_OBLIGATION = "legal_obligation", _("Legal obligation (Art. 6(1)(c))")
        LEGITIMATE_INTEREST = (
            "legitimate_interest",
            _("Legitimate interest (Art. 6(1)(f))"),
        )

    class Channel(models.TextChoices):
        EMAIL = "email", _("Email")
        SMS = "sms", _("SMS")
        PHONE = "phone", _("Phone")
        NONE = "", _("Not a channel")

    code = models.CharField(_("code"), max_length=32, choices=Code.choices, unique=True)
    channel = models.CharField(
        _("channel"), max_length=8, choices=Channel.choices, blank=True
    )
    is_marketing = models.BooleanField(
        _("direct marketing"),
        default=False,
        help_text=_("An objection to direct marketing withdraws it (Art. 21(3))."),
    )
    legal_basis = models.CharField(
        _("legal basis"),
        max_length=24,
        choices=LegalBasis.choices,
        default=LegalBasis.CONSENT,
    )
    description = models.TextField(_("what is done"), blank=True)
    data_categories = ArrayField(
        models.CharField(max_length=64),
        verbose_name=_("categories of data"),
        default=list,
        blank=True,
    )
    recipients = models.CharField(_("recipients"), max_length=255, blank=True)
    retention = models.CharField(
        _("retention"),
        max_length=255,
        help_text=_("How long the data is kept for this purpose."),
    )
    requires_double_opt_in = models.BooleanField(
        _("needs double opt-in"), default=False
    )
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("consent purpose")
        verbose_name_plural = _("consent purposes")
        ordering = ["position", "code"]

    def __str__(self) -> str:
        return self.get_code_display()


class ConsentText(models.Model):
    """The words a person agreed to: immutable, versioned per purpose and language."""

    purpose = models.ForeignKey(
        ConsentPurpose,
        verbose_name=_("purpose"),
        on_delete=models.PROTECT,
        related_name="texts",
    )
    language = models.CharField(_("language"), max_length=8, choices=LANGUAGES)
    version = models.PositiveIntegerField(_("version"))
    text = models.TextField(_("text"))
    content_hash = models.CharField(
        _("content hash"), max_length=64, editable=False, help_text="SHA-256"
    )
    published_at = models.DateTimeField(_("published at"), default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = _("consent text")
        verbose_name_plural = _("consent texts")
        ordering = ["purpose", "language", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["purpose", "language", "version"],
                name="consent_text_version_unique",
            ),
            models.CheckConstraint(condition=Q(version__gte=1), name="consent_text_v1"),
            models.CheckConstraint(
                condition=~Q(text=""), name="consent_text_not_blank"
            ),
        ]
        triggers = [
            pgtrigger.Protect(
                name="consent_text_immutable",
                operation=pgtrigger.Update | pgtrigger.Delete,
            )
        ]

    def __str__(self) -> str:
        return f"{self.purpose} v{self.version} ({self.language})"


class ConsentEvent(models.Model):
    """One grant or withdrawal, with its evidence: the ledger. Never changed.

    Erasure may blank ``ip_address``, ``user_agent`` and ``evidence`` (the
    person's data); ``evidence_hash`` still proves what the evidence was.
    """

    class Action(models.TextChoices):
        GRANT = "grant", _("Granted")
        WITHDRAW = "withdraw", _("Withdrawn")

    class Source(models.TextChoices):
        CHECKOUT_FORM = "checkout_form", _("Checkout form")
        NEWSLETTER_FORM = "newsletter_form", _("Newsletter form")
        ACCOUNT_FORM = "account_form", _("Account settings in the shop")
        API = "api", _("API")
        IMPORT = "import", _("Import file")
        DOUBLE_OPT_IN = "double_opt_in", _("Double opt-in confirmation")
        PREFERENCE_CENTRE = "preference_centre", _("Preference centre")
        UNSUBSCRIBE_LINK = "unsubscribe_link", _("Unsubscribe link")
        SPAM_COMPLAINT = "spam_complaint", _("Marked as spam (mail provider)")
        STAFF = "staff", _("Staff")
        DATA_SUBJECT_REQUEST = "data_subject_request", _("Data subject request")
        # Carried over from a duplicate record's ledger, or back again on undo
        # (customers.merging); the evidence names the original entry.
        MERGE = "merge", _("Merge of duplicate records")
        MERGE_UNDO = "merge_undo", _("Merge undone")

    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.PROTECT,
        related_name="consent_events",
        db_index=False,  # consent_event_customer_idx starts with it
    )
    purpose = models.ForeignKey(
        ConsentPurpose,
        verbose_name=_("purpose"),
        on_delete=models.PROTECT,
        related_name="events",
    )
    action = models.CharField(_("action"), max_length=8, choices=Action.choices)
    text = models.ForeignKey(
        ConsentText,
        verbose_name=_("text agreed to"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="events",
    )
    occurred_at = models.DateTimeField(_("when"))
    recorded_at = models.DateTimeField(_("recorded at"), default=timezone.now)
    source = models.CharField(_("how"), max_length=24, choices=Source.choices)
    store = models.ForeignKey(
        Store,
        verbose_name=_("store"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    # Indexed only where set (see Meta): most events have neither.
    api_key = models.ForeignKey(
        ApiKey,
        verbose_name=_("API key"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("staff member"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    import_file_hash = models.CharField(
        _("import file hash"), max_length=64, blank=True
    )
    evidence = models.JSONField(_("evidence"), default=dict, blank=True)
    evidence_hash = models.CharField(_("evidence hash"), max_length=64, blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("consent event")
        verbose_name_plural = _("consent ledger")
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(
                fields=["customer", "purpose", "-occurred_at"],
                name="consent_event_customer_idx",
            ),
            # For the foreign keys' checks when a key or a user is deleted; every
            # event written by an import or the shop would otherwise add a NULL
            # entry to both.
            models.Index(
                fields=["api_key"],
                condition=Q(api_key__isnull=False),
                name="consent_event_api_key_idx",
            ),
            models.Index(
                fields=["staff_user"],
                condition=Q(staff_user__isnull=False),
                name="consent_event_staff_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(action="withdraw") | Q(text__isnull=False),
                name="consent_grant_has_text",
            ),
            models.CheckConstraint(
                condition=~Q(source="staff") | Q(staff_user__isnull=False),
                name="consent_staff_has_user",
            ),
            models.CheckConstraint(
                condition=~Q(source="api") | Q(api_key__isnull=False),
                name="consent_api_has_key",
            ),
            models.CheckConstraint(
                condition=~Q(source="import") | ~Q(import_file_hash=""),
                name="consent_import_has_file_hash",
            ),
        ]
        triggers = [
            pgtrigger.Protect(
                name="consent_event_no_delete", operation=pgtrigger.Delete
            ),
            # The only change allowed: blanking the person's data on erasure.
            pgtrigger.Trigger(
                name="consent_event_append_only",
                operation=pgtrigger.Update,
                when=pgtrigger.Before,
                func="""
                    IF (to_jsonb(NEW) - 'ip_address' - 'user_agent' - 'evidence')
                           IS DISTINCT FROM
                       (to_jsonb(OLD) - 'ip_address' - 'user_agent' - 'evidence')
                       OR (NEW.ip_address IS NOT NULL
                           AND NEW.ip_address IS DISTINCT FROM OLD.ip_address)
                       OR (NEW.user_agent <> '' AND NEW.user_agent <> OLD.user_agent)
                       OR (NEW.evidence <> '{}'::jsonb
                           AND NEW.evidence <> OLD.evidence)
                    THEN
                        RAISE EXCEPTION 'The consent ledger is append-only.'
                            USING ERRCODE = 'restrict_violation';
                    END IF;
                    RETURN NEW;
                """,
            ),
            # The current state follows the new events: the newest one wins. Per
            # statement, over its transition table: an import's or a COPY's
            # thousands of rows cost one set-based upsert, not one each.
            pgtrigger.Trigger(
                name="consent_event_state",
                operation=pgtrigger.Insert,
                when=pgtrigger.After,
                level=pgtrigger.Statement,
                referencing=pgtrigger.Referencing(new="new_events"),
                func="""
                    INSERT INTO consents_consentstate
                        (customer_id, purpose_id, granted, event_id, changed_at)
                    SELECT DISTINCT ON (customer_id, purpose_id)
                           customer_id, purpose_id, action = 'grant', id, occurred_at
                    FROM new_events
                    ORDER BY customer_id, purpose_id, occurred_at DESC, id DESC
                    ON CONFLICT (customer_id, purpose_id) DO UPDATE SET
                        granted = EXCLUDED.granted,
                        event_id = EXCLUDED.event_id,
                        changed_at = EXCLUDED.changed_at
                    WHERE (EXCLUDED.changed_at, EXCLUDED.event_id)
                        >= (consents_consentstate.changed_at,
                            consents_consentstate.event_id);
                    RETURN NULL;
                """,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.purpose} {self.occurred_at:%Y-%m-%d}"


class ConsentStateQuerySet(models.QuerySet):
    def granted(self) -> ConsentStateQuerySet:
        return self.filter(granted=True)


class ConsentState(models.Model):
    """The current consent of a customer for a purpose: the ledger's newest event.

    Kept by a trigger on ConsentEvent; never written by the application.
    """

    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.PROTECT,
        related_name="consent_states",
        db_index=False,  # consent_state_unique leads with it
    )
    purpose = models.ForeignKey(
        ConsentPurpose,
        verbose_name=_("purpose"),
        on_delete=models.PROTECT,
        related_name="states",
    )
    granted = models.BooleanField(_("granted"))
    event = models.ForeignKey(
        ConsentEvent,
        verbose_name=_("event"),
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    changed_at = models.DateTimeField(_("changed at"))

    objects = ConsentStateQuerySet.as_manager()

    class Meta:
        verbose_name = _("consent state")
        verbose_name_plural = _("consent states")
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "purpose"], name="consent_state_unique"
            )
        ]
        indexes = [
            # Audiences: everyone who granted a purpose.
            models.Index(
                fields=["purpose", "customer"],
                condition=Q(granted=True),
                name="consent_state_granted_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.purpose}: {'yes' if self.granted else 'no'}"


class DoubleOptIn(models.Model):
    """A newsletter sign-up waiting for the person to confirm it by email."""

    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.CASCADE,
        related_name="double_opt_ins",
    )
    purpose = models.ForeignKey(
        ConsentPurpose, verbose_name=_("purpose"), on_delete=models.PROTECT
    )
    text = models.ForeignKey(
        ConsentText, verbose_name=_("text"), on_delete=models.PROTECT
    )
    store = models.ForeignKey(
        Store, verbose_name=_("store"), on_delete=models.CASCADE, null=True
    )
    api_key = models.ForeignKey(
        ApiKey, verbose_name=_("API key"), on_delete=models.SET_NULL, null=True
    )
    requested_at = models.DateTimeField(_("requested at"), default=timezone.now)
    request_ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    request_user_agent = models.CharField(_("user agent"), max_length=500, blank=True)
    evidence = models.JSONField(_("evidence"), default=dict, blank=True)
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)
    event = models.OneToOneField(
        ConsentEvent,
        verbose_name=_("recorded grant"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = _("double opt-in")
        verbose_name_plural = _("double opt-ins")
        indexes = [
            models.Index(
                fields=["requested_at"],
                condition=Q(confirmed_at__isnull=True),
                name="double_opt_in_pending_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.purpose} {self.requested_at:%Y-%m-%d}"


class Suppression(models.Model):
    """A keyed hash of an email or phone no marketing may go to.

    An erased person's contacts, and addresses that bounced for good or whose
    owner marked a message as spam (the reason says which). A later import or API
    call cannot bring their marketing consent back; only the person themselves
    can, by confirming a double opt-in.
    """

    class Kind(models.TextChoices):
        EMAIL = "email", _("Email")
        PHONE = "phone", _("Phone")

    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    value_hash = models.CharField(_("keyed hash"), max_length=64)
    reason = models.CharField(_("reason"), max_length=32, default="erasure")
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("suppressed contact")
        verbose_name_plural = _("suppressed contacts")
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "value_hash"], name="suppression_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.value_hash[:12]}…"


def one_month_after(moment: dt.datetime) -> dt.date:
    """Art. 12(3): one month from receipt (the next month's last day at most)."""
    return timezone.localtime(moment).date() + relativedelta(months=1)


class DataSubjectRequestQuerySet(models.QuerySet):
    def open(self) -> DataSubjectRequestQuerySet:
        return self.exclude(
            status__in=[
                DataSubjectRequest.Status.COMPLETED,
                DataSubjectRequest.Status.REJECTED,
            ]
        )

    def overdue(self, today: dt.date | None = None) -> DataSubjectRequestQuerySet:
        today = today or timezone.localdate()
        return self.open().filter(
            Q(extended_until__isnull=True, due_on__lt=today)
            | Q(extended_until__lt=today)
        )


class DataSubjectRequest(models.Model):
    """A person exercising a right of Art. 15-21, answered within a month."""

    class Kind(models.TextChoices):
        ACCESS = "access", _("Access (Art. 15)")
        RECTIFICATION = "rectification", _("Rectification (Art. 16)")
        ERASURE = "erasure", _("Erasure (Art. 17)")
        RESTRICTION = "restriction", _("Restriction (Art. 18)")
        PORTABILITY = "portability", _("Portability (Art. 20)")
        OBJECTION_MARKETING = (
            "objection_marketing",
            _("Objection to direct marketing (Art. 21(2))"),
        )
        OBJECTION_PROFILING = (
            "objection_profiling",
            _("Objection to profiling (Art. 21(1))"),
        )

    class Status(models.TextChoices):
        RECEIVED = "received", _("Received")
        VERIFYING = "verifying", _("Verifying identity")
        IN_PROGRESS = "in_progress", _("In progress")
        COMPLETED = "completed", _("Completed")
        REJECTED = "rejected", _("Rejected")

    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="data_subject_requests",
    )
    kind = models.CharField(_("kind"), max_length=24, choices=Kind.choices)
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.RECEIVED
    )
    received_at = models.DateTimeField(_("received at"), default=timezone.now)
    due_on = models.DateField(_("due on"))
    extended_until = models.DateField(_("extended until"), null=True, blank=True)
    extension_reason = models.TextField(_("reason for the extension"), blank=True)
    channel = models.CharField(
        _("received by"),
        max_length=64,
        blank=True,
        help_text=_("Email, letter, phone, form…"),
    )
    requester = models.CharField(
        _("requester"),
        max_length=255,
        blank=True,
        help_text=_("How the person identified themselves."),
    )
    notes = models.TextField(_("notes"), blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("handled by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    outcome = models.TextField(_("outcome"), blank=True)

    objects = DataSubjectRequestQuerySet.as_manager()

    class Meta:
        verbose_name = _("data subject request")
        verbose_name_plural = _("data subject requests")
        ordering = ["due_on", "received_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(extended_until__isnull=True)
                | Q(extended_until__gt=models.F("due_on")),
                name="dsr_extension_after_due",
            ),
            models.CheckConstraint(
                condition=Q(extended_until__isnull=True) | ~Q(extension_reason=""),
                name="dsr_extension_has_reason",
            ),
        ]
        indexes = [
            models.Index(
                fields=["due_on"],
                condition=~Q(status__in=["completed", "rejected"]),
                name="dsr_open_due_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"

    @property
    def deadline(self) -> dt.date:
        return self.extended_until or self.due_on

    @property
    def is_overdue(self) -> bool:
        return (
            self.status not in {self.Status.COMPLETED, self.Status.REJECTED}
            and self.deadline < timezone.localdate()
        )


class AccessLog(models.Model):
    """Who saw or took whose personal data, when and from where. Append-only."""

    class Action(models.TextChoices):
        VIEW = "view", _("Viewed the customer page")
        EXPORT = "export", _("Exported")
        API_READ = "api_read", _("Read through the API")
        ACCESS_EXPORT = "access_export", _("Access request export")
        ERASURE = "erasure", _("Erased")

    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.PROTECT,
        related_name="access_log",
        db_index=False,  # access_log_customer_idx leads with it
    )
    action = models.CharField(_("action"), max_length=16, choices=Action.choices)
    at = models.DateTimeField(_("when"), default=timezone.now)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("staff member"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    api_key = models.ForeignKey(
        ApiKey,
        verbose_name=_("API key"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    purpose = models.CharField(_("purpose"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("access log entry")
        verbose_name_plural = _("access log")
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["customer", "-at"], name="access_log_customer_idx"),
            models.Index(
                fields=["user", "-at"],
                condition=Q(user__isnull=False),
                name="access_log_user_idx",
            ),
        ]
        triggers = [
            pgtrigger.Protect(
                name="access_log_append_only",
                operation=pgtrigger.Update | pgtrigger.Delete,
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.at:%Y-%m-%d %H:%M}"
