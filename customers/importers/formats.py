"""Column layouts of the CSV exports shops bring when they leave a platform.

This module is pure format knowledge: which header names each platform writes, which
Kartoteka field each of them feeds, and how to recognise a file from its header row.
It reads no files and touches no database.

* :data:`CANONICAL_FIELDS` -- Kartoteka's own field names per kind of file (the
  ``generic`` format; see ``docs/import-formats.md``).
* :data:`LAYOUTS` -- every known layout (format, kind, variant) with its alias table.
* :data:`FORMATS` -- ``format -> kind -> {normalised header: canonical field}``.
* :func:`normalise_header` -- the comparison form of a header cell.
* :func:`detect_format` -- ``--format auto``: score every layout, return the best.
* :func:`map_header` -- an explicit format: map the header or raise
  :class:`MissingColumns`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

CUSTOMERS = "customers"
ORDERS = "orders"
CONSENTS = "consents"
KINDS = (CUSTOMERS, ORDERS, CONSENTS)

GENERIC = "generic"
AUTO = "auto"

#: Below this confidence ``--format auto`` refuses to guess.
MIN_CONFIDENCE = 0.5

CUSTOMER_FIELDS = (
    "external_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "full_name",
    "company",
    "nip",
    "birth_date",
    "gender",
    "language",
    "street",
    "street2",
    "postcode",
    "city",
    "region",
    "country",
    "is_default_billing",
    "is_default_shipping",
    "tags",
    "note",
    "accepts_email_marketing",
    "email_marketing_at",
    "accepts_sms_marketing",
    "sms_marketing_at",
    "accepts_partner_marketing",
    "created_at",
    "last_seen_at",
    "total_spent",
    "orders_count",
    "ip",
)

# The parts of an order's billing and shipping address, as the order fields name them.
ORDER_ADDRESS_PARTS = (
    "name",
    "first_name",
    "last_name",
    "company",
    "street",
    "street2",
    "postcode",
    "city",
    "region",
    "country",
    "phone",
)

ORDER_FIELDS = (
    "order_id",
    "order_number",
    "placed_at",
    "status",
    "financial_status",
    "fulfillment_status",
    "currency",
    "subtotal",
    "discount_total",
    "shipping_total",
    "tax_total",
    "refunded_total",
    "total",
    "email",
    "phone",
    "customer_external_id",
    "customer_name",
    *(f"billing_{part}" for part in ORDER_ADDRESS_PARTS),
    *(f"shipping_{part}" for part in ORDER_ADDRESS_PARTS),
    "line_sku",
    "line_name",
    "line_quantity",
    "line_unit_price",
    "line_total",
    "coupon_code",
    "payment_method",
    "shipping_method",
    "paid_at",
    "fulfilled_at",
    "cancelled_at",
    "accepts_email_marketing",
    "note",
    "tags",
)

CONSENT_FIELDS = (
    "email",
    "first_name",
    "last_name",
    "full_name",
    "phone",
    "status",
    "member_rating",
    "optin_time",
    "optin_ip",
    "confirm_time",
    "confirm_ip",
    "last_changed",
    "unsub_time",
    "unsub_campaign_title",
    "unsub_campaign_id",
    "unsub_reason",
    "unsub_reason_other",
    "clean_time",
    "clean_campaign_title",
    "clean_campaign_id",
    "gdpr_email",
    "gdpr_direct_mail",
    "gdpr_customized_online_advertising",
    "country",
    "region",
    "timezone",
    "latitude",
    "longitude",
    "leid",
    "euid",
    "language",
    "note",
    "tags",
)

CANONICAL_FIELDS: dict[str, tuple[str, ...]] = {
    CUSTOMERS: CUSTOMER_FIELDS,
    ORDERS: ORDER_FIELDS,
    CONSENTS: CONSENT_FIELDS,
}

#: Required fields per kind: every group must be fed by at least one column; the
#: fields inside a group are alternatives ("email or external_id").
REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    CUSTOMERS: (("email", "external_id"),),
    ORDERS: (
        ("order_id", "order_number"),
        ("placed_at",),
        ("line_name", "line_sku"),
        ("line_quantity",),
        ("line_unit_price", "line_total"),
    ),
    CONSENTS: (("email",),),
}

#: Order exports without line items (one row per order): what they must carry.
ORDER_SUMMARY_REQUIRED: tuple[tuple[str, ...], ...] = (
    ("order_id", "order_number"),
    ("placed_at",),
    ("total",),
)

#: ``apply`` fills an empty field from another one (order_id from order_number).
FALLBACKS: dict[str, dict[str, str]] = {
    CUSTOMERS: {},
    ORDERS: {"order_id": "order_number"},
    CONSENTS: {},
}


# --------------------------------------------------------------------------------------
# Header normalisation

_INVISIBLE = dict.fromkeys(map(ord, "\ufeff\u200b\u200c\u200d\u2060\u00ad"))
_SEPARATORS = re.compile(r"[\s_]+")


def normalise_header(text: object) -> str:
    """The comparison form of one header cell.

    Unicode NFKC (non-breaking and other odd spaces become plain spaces, composed
    Polish letters), byte order marks and zero-width characters dropped, underscores
    read as spaces, runs of whitespace collapsed, a trailing required-marker ``*``
    dropped (PrestaShop's import files write ``Email *``), case folded.
    A BOM-prefixed ``First_Name`` with a trailing non-breaking space equals
    ``first name``.
    """
    value = unicodedata.normalize("NFKC", str(text)).translate(_INVISIBLE)
    value = _SEPARATORS.sub(" ", value).strip()
    value = value.rstrip("*").strip()
    return value.casefold()


# --------------------------------------------------------------------------------------
# Layouts


@dataclass(frozen=True)
class Layout:
    """One export layout: its alias table and how to recognise it."""

    format: str
    kind: str
    variant: str
    title: str
    #: normalised header -> (canonical field, priority); lower priority wins when
    #: several columns feed one field.
    aliases: dict[str, tuple[str, int]]
    #: normalised headers the layout is known to contain but Kartoteka does not import.
    known: frozenset[str]
    #: normalised headers characteristic of this layout (used for scoring).
    signature: frozenset[str]
    required: tuple[tuple[str, ...], ...]
    #: values implied by the file itself (Mailchimp's status comes from which file).
    constants: dict[str, str] = field(default_factory=dict)
    #: the header text each field is written as in this layout (for messages).
    display: dict[str, str] = field(default_factory=dict)
    line_items: bool = True
    sources: tuple[str, ...] = ()

    def field_for(self, header: str) -> str | None:
        hit = self.aliases.get(normalise_header(header))
        return hit[0] if hit else None


def _layout(
    format: str,
    kind: str,
    variant: str,
    title: str,
    pairs: Iterable[tuple[str, str | None]],
    *,
    signature: Iterable[str] = (),
    required: tuple[tuple[str, ...], ...] | None = None,
    constants: dict[str, str] | None = None,
    line_items: bool = True,
    sources: Iterable[str] = (),
) -> Layout:
    fields = set(CANONICAL_FIELDS[kind])
    aliases: dict[str, tuple[str, int]] = {}
    display: dict[str, str] = {}
    known: set[str] = set()
    for priority, (header, target) in enumerate(pairs):
        key = normalise_header(header)
        if target is None:
            known.add(key)
            continue
        if target not in fields:
            raise ValueError(f"{format}/{kind}: {target!r} is not a {kind} field")
        if key in aliases and aliases[key][0] != target:
            raise ValueError(f"{format}/{kind}/{variant}: {header!r} mapped twice")
        aliases.setdefault(key, (target, priority))
        display.setdefault(target, header)
    sig = frozenset(normalise_header(h) for h in signature)
    unknown_sig = sig - aliases.keys() - known
    if unknown_sig:
        raise ValueError(f"{format}/{kind}/{variant}: signature {sorted(unknown_sig)}")
    return Layout(
        format=format,
        kind=kind,
        variant=variant,
        title=title,
        aliases=aliases,
        known=frozenset(known - aliases.keys()),
        signature=sig,
        required=required if required is not None else REQUIRED[kind],
        constants=dict(constants or {}),
        display=display,
        line_items=line_items,
        sources=tuple(sources),
    )


# --- Shopify --------------------------------------------------------------------------

_SHOPIFY_CUSTOMERS_NEW = [
    ("Customer ID", "external_id"),
    ("ID", "external_id"),
    ("First Name", "first_name"),
    ("Last Name", "last_name"),
    ("Email", "email"),
    ("Accepts Email Marketing", "accepts_email_marketing"),
    ("Default Address Company", "company"),
    ("Default Address Address1", "street"),
    ("Default Address Address2", "street2"),
    ("Default Address City", "city"),
    ("Default Address Province Code", "region"),
    ("Default Address Country Code", "country"),
    ("Default Address Zip", "postcode"),
    ("Phone", "phone"),
    ("Default Address Phone", "phone"),
    ("Accepts SMS Marketing", "accepts_sms_marketing"),
    ("Total Spent", "total_spent"),
    ("Total Orders", "orders_count"),
    ("Note", "note"),
    ("Tags", "tags"),
    ("Tax Exempt", None),
    ("Default Address Address3", None),
    ("Accepts WhatsApp Marketing", None),
]

_SHOPIFY_CUSTOMERS_OLD = [
    ("ID", "external_id"),
    ("Customer ID", "external_id"),
    ("First Name", "first_name"),
    ("Last Name", "last_name"),
    ("Email", "email"),
    ("Accepts Email Marketing", "accepts_email_marketing"),
    ("Accepts Marketing", "accepts_email_marketing"),
    ("Company", "company"),
    ("Address1", "street"),
    ("Address2", "street2"),
    ("City", "city"),
    ("Province Code", "region"),
    ("Province", "region"),
    ("Country Code", "country"),
    ("Country", "country"),
    ("Zip", "postcode"),
    ("Phone", "phone"),
    ("Accepts SMS Marketing", "accepts_sms_marketing"),
    ("Total Spent", "total_spent"),
    ("Total Orders", "orders_count"),
    ("Note", "note"),
    ("Tags", "tags"),
    ("Tax Exempt", None),
]


def _shopify_address(prefix: str, target: str) -> list[tuple[str, str | None]]:
    return [
        (f"{prefix} Name", f"{target}_name"),
        (f"{prefix} Address1", f"{target}_street"),
        (f"{prefix} Street", f"{target}_street"),
        (f"{prefix} Address2", f"{target}_street2"),
        (f"{prefix} Company", f"{target}_company"),
        (f"{prefix} City", f"{target}_city"),
        (f"{prefix} Zip", f"{target}_postcode"),
        (f"{prefix} Province", f"{target}_region"),
        (f"{prefix} Province Name", f"{target}_region"),
        (f"{prefix} Country", f"{target}_country"),
        (f"{prefix} Phone", f"{target}_phone"),
    ]


_SHOPIFY_ORDERS = [
    ("Name", "order_id"),
    ("Email", "email"),
    ("Financial Status", "financial_status"),
    ("Paid at", "paid_at"),
    ("Fulfillment Status", "fulfillment_status"),
    ("Fulfilled at", "fulfilled_at"),
    ("Fulfillment Date", "fulfilled_at"),
    ("Accepts Marketing", "accepts_email_marketing"),
    ("Currency", "currency"),
    ("Subtotal", "subtotal"),
    ("Shipping", "shipping_total"),
    ("Taxes", "tax_total"),
    ("Total", "total"),
    ("Discount Code", "coupon_code"),
    ("Discount Amount", "discount_total"),
    ("Shipping Method", "shipping_method"),
    ("Created at", "placed_at"),
    ("Lineitem quantity", "line_quantity"),
    ("Lineitem name", "line_name"),
    ("Lineitem price", "line_unit_price"),
    ("Lineitem sku", "line_sku"),
    ("Lineitem compare at price", None),
    ("Lineitem compare-at price", None),
    ("Lineitem requires shipping", None),
    ("Lineitem taxable", None),
    ("Lineitem fulfillment status", None),
    ("Lineitem discount", None),
    *_shopify_address("Billing", "billing"),
    *_shopify_address("Shipping", "shipping"),
    ("Notes", "note"),
    ("Note Attributes", None),
    ("Cancelled at", "cancelled_at"),
    ("Canceled at", "cancelled_at"),
    ("Payment Method", "payment_method"),
    ("Payment Reference", None),
    ("Payment Reference (deprecated)", None),
    ("Payment References", None),
    ("Payment ID", None),
    ("Payment Terms Name", None),
    ("Payment terms", None),
    ("Next Payment Due At", None),
    ("Refunded Amount", "refunded_total"),
    ("Vendor", None),
    ("Outstanding Balance", None),
    ("Employee", None),
    ("Location", None),
    ("Device ID", None),
    ("Id", None),
    ("Tags", "tags"),
    ("Risk Level", None),
    ("Source", None),
    *((f"Tax {n} {part}", None) for n in range(1, 6) for part in ("Name", "Value")),
    ("Phone", "phone"),
    ("Receipt Number", None),
    ("Duties", None),
]

_SHOPIFY_SOURCES = (
    "https://help.shopify.com/en/manual/customers/import-export-customers",
    "https://help.shopify.com/en/manual/orders/export-orders",
)

# --- WooCommerce ----------------------------------------------------------------------

_WOO_ANALYTICS_CUSTOMERS = [
    ("Name", "full_name"),
    ("Username", None),
    ("Last active", "last_seen_at"),
    ("Date registered", "created_at"),
    ("Sign Up", "created_at"),
    ("Email", "email"),
    ("Orders", "orders_count"),
    ("Total spend", "total_spent"),
    ("AOV", None),
    ("Country / Region", "country"),
    ("Country", "country"),
    ("City", "city"),
    ("Region", "region"),
    ("Postal code", "postcode"),
]


def _aoe_address(label: str, target: str) -> list[tuple[str, str | None]]:
    pairs: list[tuple[str, str | None]] = [
        (f"First Name ({label})", f"{target}_first_name"),
        (f"Last Name ({label})", f"{target}_last_name"),
        (f"Full Name ({label})", f"{target}_name"),
        (f"Company ({label})", f"{target}_company"),
        (f"Address 1 ({label})", f"{target}_street"),
        (f"Address 1&2 ({label})", f"{target}_street"),
        (f"Address 2 ({label})", f"{target}_street2"),
        (f"City ({label})", f"{target}_city"),
        (f"State Code ({label})", f"{target}_region"),
        (f"State Name ({label})", f"{target}_region"),
        (f"Zip ({label})", f"{target}_postcode"),
        (f"Country Code ({label})", f"{target}_country"),
        (f"Country Name ({label})", f"{target}_country"),
        (f"Country Name({label})", f"{target}_country"),
        (f"Phone ({label})", f"{target}_phone"),
        # "Billing First Name" style, written by other exporters and newer setups.
        (f"{label} First Name", f"{target}_first_name"),
        (f"{label} Last Name", f"{target}_last_name"),
        (f"{label} Full Name", f"{target}_name"),
        (f"{label} Company", f"{target}_company"),
        (f"{label} Address 1", f"{target}_street"),
        (f"{label} Address 2", f"{target}_street2"),
        (f"{label} City", f"{target}_city"),
        (f"{label} State", f"{target}_region"),
        (f"{label} Postcode", f"{target}_postcode"),
        (f"{label} Zip", f"{target}_postcode"),
        (f"{label} Country", f"{target}_country"),
        (f"{label} Phone", f"{target}_phone"),
    ]
    return pairs


_WOO_AOE_ORDERS = [
    ("Order ID", "order_id"),
    ("Order Number", "order_number"),
    ("Order Status", "status"),
    ("Order Date", "placed_at"),
    ("Paid Date", "paid_at"),
    ("Transaction Id", None),
    ("Completed Date", "fulfilled_at"),
    ("Customer Note", "note"),
    ("Order Notes", None),
    ("Customer IP address", None),
    ("Customer User Id", "customer_external_id"),
    ("Customer Username", None),
    ("Customer User Email", "email"),
    ("Customer Email", "email"),
    ("Customer Role", None),
    ("Email (Billing)", "email"),
    ("Billing Email", "email"),
    *_aoe_address("Billing", "billing"),
    *_aoe_address("Shipping", "shipping"),
    ("Item #", None),
    ("SKU", "line_sku"),
    ("Item SKU", "line_sku"),
    ("Item Name", "line_name"),
    ("Name", "line_name"),
    ("Product Name", "line_name"),
    ("Product Variation", None),
    ("Item Seller", None),
    ("Quantity", "line_quantity"),
    ("Qty", "line_quantity"),
    ("Quantity (- Refund)", None),
    ("Item Cost", "line_unit_price"),
    ("Product Current Price", None),
    ("Order Line (w/o tax)", None),
    ("Order Line Tax", None),
    ("Order Line Subtotal", None),
    ("Order Line Total", "line_total"),
    ("Coupon Code", "coupon_code"),
    ("Coupons Used", None),
    ("Discount Amount", None),
    ("Discount Amount Tax", None),
    ("Shipping Method Title", "shipping_method"),
    ("Shipping Method", "shipping_method"),
    ("Payment Method Title", "payment_method"),
    ("Payment Method", "payment_method"),
    ("Cart Discount Amount", "discount_total"),
    ("Cart Discount Tax Amount", None),
    ("Order Subtotal Amount", "subtotal"),
    ("Order Tax Amount", None),
    ("Order Shipping Amount", "shipping_total"),
    ("Order Shipping Tax Amount", None),
    ("Order Refund Amount", "refunded_total"),
    ("Order Total Amount (- Refund)", None),
    ("Order Total Amount", "total"),
    ("Order Total Amount without Tax", None),
    ("Order Total Tax Amount", "tax_total"),
    ("Currency", "currency"),
    ("Order Currency", "currency"),
    ("Total weight", None),
    ("Total items", None),
    ("Total products", None),
]

_WOO_ANALYTICS_ORDERS = [
    ("Date", "placed_at"),
    ("Order #", "order_number"),
    ("Status", "status"),
    ("Customer", "customer_name"),
    ("Customer type", None),
    ("Product(s)", None),
    ("Items sold", None),
    ("Coupon(s)", "coupon_code"),
    ("Net Sales", "total"),
    ("Attribution", None),
]

# --- PrestaShop -----------------------------------------------------------------------

_PS_CUSTOMERS_EN = [
    ("ID", "external_id"),
    ("Social title", "gender"),
    ("First name", "first_name"),
    ("Last name", "last_name"),
    ("Email address", "email"),
    ("Email", "email"),
    ("E-mail", "email"),
    ("Company", "company"),
    ("Sales", "total_spent"),
    ("Enabled", None),
    ("Newsletter", "accepts_email_marketing"),
    ("Partner offers", "accepts_partner_marketing"),
    ("Opt-in", "accepts_partner_marketing"),
    ("Registration", "created_at"),
    ("Last visit", "last_seen_at"),
    ("Shop", None),
    ("Group", None),
]

_PS_CUSTOMERS_PL = [
    ("ID", "external_id"),
    ("Tytuł", "gender"),
    ("Zwrot grzecznościowy", "gender"),
    ("Imię", "first_name"),
    ("Nazwisko", "last_name"),
    ("Adres e-mail", "email"),
    ("E-mail", "email"),
    ("Email", "email"),
    ("Firma", "company"),
    ("Sprzedaż", "total_spent"),
    ("Włączony", None),
    ("Włączone", None),
    ("Aktywny", None),
    ("Biuletyn", "accepts_email_marketing"),
    ("Newsletter", "accepts_email_marketing"),
    ("Oferty partnerów", "accepts_partner_marketing"),
    ("Rejestracja", "created_at"),
    ("Ostatnia wizyta", "last_seen_at"),
    ("Sklep", None),
    ("Grupa", None),
]

_PS_ORDERS_EN = [
    ("ID", "order_id"),
    ("Reference", "order_number"),
    ("New client", None),
    ("Delivery", "shipping_country"),
    ("Customer", "customer_name"),
    ("Total", "total"),
    ("Payment", "payment_method"),
    ("Status", "status"),
    ("Date", "placed_at"),
    ("Company", None),
]

_PS_ORDERS_PL = [
    ("ID", "order_id"),
    ("Indeks", "order_number"),
    ("Numer referencyjny", "order_number"),
    ("Nowy klient", None),
    ("Dostawa", "shipping_country"),
    ("Klient", "customer_name"),
    ("Razem", "total"),
    ("Suma", "total"),
    ("Płatność", "payment_method"),
    ("Status", "status"),
    ("Data", "placed_at"),
    ("Firma", None),
]

_PS_CUSTOMERS_IMPORT = [
    ("Customer ID", "external_id"),
    ("ID", "external_id"),
    ("Active (0/1)", None),
    ("Titles ID (Mr = 1, Ms = 2, else 0)", "gender"),
    ("Email", "email"),
    ("Password", None),
    ("Birthday (yyyy-mm-dd)", "birth_date"),
    ("Last Name", "last_name"),
    ("First Name", "first_name"),
    ("Newsletter (0/1)", "accepts_email_marketing"),
    ("Opt-in (0/1)", "accepts_partner_marketing"),
    ("Partner offers (0/1)", "accepts_partner_marketing"),
    ("Registration date (yyyy-mm-dd)", "created_at"),
    ("Groups (x,y,z...)", None),
    ("Default group ID", None),
    ("ID / Name of shop", None),
]

_PS_ADDRESSES_IMPORT = [
    ("Customer ID", "external_id"),
    ("Customer e-mail", "email"),
    ("Address ID", None),
    ("ID", None),
    ("Alias", None),
    ("Active (0/1)", None),
    ("Manufacturer", None),
    ("Supplier", None),
    ("Company", "company"),
    ("Lastname", "last_name"),
    ("Firstname", "first_name"),
    ("Address 1", "street"),
    ("Address 2", "street2"),
    ("Zipcode", "postcode"),
    ("Zip/postal code", "postcode"),
    ("City", "city"),
    ("Country", "country"),
    ("State", "region"),
    ("Other", "note"),
    ("Phone", "phone"),
    ("Mobile Phone", "phone"),
    ("VAT number", "nip"),
    ("DNI", None),
]

# --- Magento 2 ------------------------------------------------------------------------

_MAGENTO_CUSTOMER = [
    ("email", "email"),
    ("_website", None),
    ("_store", None),
    ("confirmation", None),
    ("created_at", "created_at"),
    ("created_in", None),
    ("disable_auto_group_change", None),
    ("dob", "birth_date"),
    ("firstname", "first_name"),
    ("gender", "gender"),
    ("group_id", None),
    ("lastname", "last_name"),
    ("middlename", None),
    ("password_hash", None),
    ("prefix", None),
    ("rp_token", None),
    ("rp_token_created_at", None),
    ("store_id", None),
    ("suffix", None),
    ("taxvat", "nip"),
    ("website_id", None),
    ("password", None),
    ("updated_at", None),
    ("failures_num", None),
    ("first_failure", None),
    ("lock_expires", None),
]

_MAGENTO_ADDRESS = [
    ("city", "city"),
    ("company", "company"),
    ("country_id", "country"),
    ("fax", None),
    ("firstname", "first_name"),
    ("lastname", "last_name"),
    ("middlename", None),
    ("postcode", "postcode"),
    ("prefix", None),
    ("region", "region"),
    ("region_id", None),
    ("street", "street"),
    ("suffix", None),
    ("telephone", "phone"),
    ("vat_id", "nip"),
    ("vat_is_valid", None),
    ("vat_request_date", None),
    ("vat_request_id", None),
    ("vat_request_success", None),
    ("_address_default_billing_", "is_default_billing"),
    ("_address_default_shipping_", "is_default_shipping"),
]

_MAGENTO_ADDRESS_FILE = [
    ("_website", None),
    ("_email", "email"),
    ("_entity_id", None),
    *_MAGENTO_ADDRESS,
]


def _magento_composite() -> list[tuple[str, str | None]]:
    pairs: list[tuple[str, str | None]] = list(_MAGENTO_CUSTOMER)
    customer_own = {"firstname", "lastname", "middlename", "prefix", "suffix"}
    for header, target in _MAGENTO_ADDRESS:
        if header.startswith("_address_"):
            pairs.append((header, target))
            continue
        # The customer's own name wins; the address name is not imported.
        pairs.append((f"_address_{header}", None if header in customer_own else target))
    return pairs


_MAGENTO_ORDERS_GRID = [
    ("ID", "order_id"),
    ("Purchase Point", None),
    ("Purchase Date", "placed_at"),
    ("Bill-to Name", "billing_name"),
    ("Ship-to Name", "shipping_name"),
    ("Grand Total (Base)", None),
    ("Grand Total (Purchased)", "total"),
    ("Status", "status"),
    ("Billing Address", None),
    ("Shipping Address", None),
    ("Shipping Information", "shipping_method"),
    ("Customer Email", "email"),
    ("Customer Group", None),
    ("Subtotal", "subtotal"),
    ("Shipping and Handling", "shipping_total"),
    ("Customer Name", "customer_name"),
    ("Payment Method", "payment_method"),
    ("Total Refunded", "refunded_total"),
    ("Allocated sources", None),
    ("Braintree Transaction Source", None),
]

# --- Mailchimp ------------------------------------------------------------------------

_MAILCHIMP_COMMON = [
    ("Email Address", "email"),
    ("First Name", "first_name"),
    ("Last Name", "last_name"),
    ("Name", "full_name"),
    ("Phone Number", "phone"),
    ("Address", None),
    ("Birthday", None),
    ("Company", None),
    ("Language", "language"),
    ("Email", "gdpr_email"),
    ("Direct Mail", "gdpr_direct_mail"),
    ("Customized Online Advertising", "gdpr_customized_online_advertising"),
    ("MEMBER_RATING", "member_rating"),
    ("OPTIN_TIME", "optin_time"),
    ("OPTIN_IP", "optin_ip"),
    ("CONFIRM_TIME", "confirm_time"),
    ("CONFIRM_IP", "confirm_ip"),
    ("LATITUDE", "latitude"),
    ("LONGITUDE", "longitude"),
    ("GMTOFF", None),
    ("DSTOFF", None),
    ("TIMEZONE", "timezone"),
    ("CC", "country"),
    ("REGION", "region"),
    ("LAST_CHANGED", "last_changed"),
    ("LEID", "leid"),
    ("EUID", "euid"),
    ("NOTES", "note"),
    ("TAGS", "tags"),
]

_MAILCHIMP_SIGNATURE = (
    "Email Address",
    "MEMBER_RATING",
    "OPTIN_TIME",
    "CONFIRM_TIME",
    "LAST_CHANGED",
    "LEID",
    "EUID",
)

_MAILCHIMP_UNSUB = [
    ("UNSUB_TIME", "unsub_time"),
    ("UNSUB_CAMPAIGN_TITLE", "unsub_campaign_title"),
    ("UNSUB_CAMPAIGN_ID", "unsub_campaign_id"),
    ("UNSUB_REASON", "unsub_reason"),
    ("UNSUB_REASON_OTHER", "unsub_reason_other"),
]

_MAILCHIMP_CLEAN = [
    ("CLEAN_TIME", "clean_time"),
    ("CLEAN_CAMPAIGN_TITLE", "clean_campaign_title"),
    ("CLEAN_CAMPAIGN_ID", "clean_campaign_id"),
]

_MAILCHIMP_SOURCES = (
    "https://mailchimp.com/help/view-export-contacts/",
    "https://mailchimp.com/help/collect-consent-with-gdpr-forms/",
)

# --- generic (Kartoteka's own names, English and Polish headings) ---------------------

_GENERIC_CUSTOMERS = [
    *((name, name) for name in CUSTOMER_FIELDS),
    ("id", "external_id"),
    ("customer id", "external_id"),
    ("id klienta", "external_id"),
    ("e-mail", "email"),
    ("email address", "email"),
    ("adres e-mail", "email"),
    ("adres email", "email"),
    ("mail", "email"),
    ("telefon", "phone"),
    ("phone number", "phone"),
    ("numer telefonu", "phone"),
    ("nr telefonu", "phone"),
    ("telefon komórkowy", "phone"),
    ("komórka", "phone"),
    ("first name", "first_name"),
    ("imię", "first_name"),
    ("imie", "first_name"),
    ("last name", "last_name"),
    ("nazwisko", "last_name"),
    ("name", "full_name"),
    ("imię i nazwisko", "full_name"),
    ("imie i nazwisko", "full_name"),
    ("firma", "company"),
    ("nazwa firmy", "company"),
    ("vat id", "nip"),
    ("nip", "nip"),
    ("date of birth", "birth_date"),
    ("data urodzenia", "birth_date"),
    ("płeć", "gender"),
    ("język", "language"),
    ("jezyk", "language"),
    ("ulica", "street"),
    ("adres", "street"),
    ("address", "street"),
    ("address1", "street"),
    ("ulica 2", "street2"),
    ("address2", "street2"),
    ("kod pocztowy", "postcode"),
    ("postal code", "postcode"),
    ("zip", "postcode"),
    ("miasto", "city"),
    ("miejscowość", "city"),
    ("miejscowosc", "city"),
    ("województwo", "region"),
    ("wojewodztwo", "region"),
    ("kraj", "country"),
    ("tagi", "tags"),
    ("notatka", "note"),
    ("uwagi", "note"),
    ("zgoda marketingowa", "accepts_email_marketing"),
    ("zgoda na marketing", "accepts_email_marketing"),
    ("zgoda e-mail", "accepts_email_marketing"),
    ("zgoda na newsletter", "accepts_email_marketing"),
    ("newsletter", "accepts_email_marketing"),
    ("data zgody e-mail", "email_marketing_at"),
    ("zgoda sms", "accepts_sms_marketing"),
    ("zgoda na sms", "accepts_sms_marketing"),
    ("data zgody sms", "sms_marketing_at"),
    ("data rejestracji", "created_at"),
    ("data utworzenia", "created_at"),
    ("ostatnia wizyta", "last_seen_at"),
    ("suma zakupów", "total_spent"),
    ("wartość zamówień", "total_spent"),
    ("liczba zamówień", "orders_count"),
    ("adres ip", "ip"),
]

_GENERIC_ORDERS = [
    *((name, name) for name in ORDER_FIELDS),
    ("id zamówienia", "order_id"),
    ("numer zamówienia", "order_number"),
    ("nr zamówienia", "order_number"),
    ("data zamówienia", "placed_at"),
    ("data złożenia", "placed_at"),
    ("status zamówienia", "status"),
    ("status płatności", "financial_status"),
    ("status realizacji", "fulfillment_status"),
    ("waluta", "currency"),
    ("suma częściowa", "subtotal"),
    ("rabat", "discount_total"),
    ("koszt dostawy", "shipping_total"),
    ("podatek", "tax_total"),
    ("wartość zamówienia", "total"),
    ("razem", "total"),
    ("e-mail", "email"),
    ("telefon", "phone"),
    ("id klienta", "customer_external_id"),
    ("klient", "customer_name"),
    ("sku", "line_sku"),
    ("kod produktu", "line_sku"),
    ("nazwa produktu", "line_name"),
    ("produkt", "line_name"),
    ("ilość", "line_quantity"),
    ("ilosc", "line_quantity"),
    ("cena", "line_unit_price"),
    ("cena jednostkowa", "line_unit_price"),
    ("wartość pozycji", "line_total"),
    ("kod rabatowy", "coupon_code"),
    ("metoda płatności", "payment_method"),
    ("sposób płatności", "payment_method"),
    ("sposób dostawy", "shipping_method"),
    ("metoda dostawy", "shipping_method"),
    ("data płatności", "paid_at"),
    ("data wysyłki", "fulfilled_at"),
    ("data anulowania", "cancelled_at"),
    ("uwagi", "note"),
    ("tagi", "tags"),
]

_GENERIC_CONSENTS = [
    *((name, name) for name in CONSENT_FIELDS),
    ("e-mail", "email"),
    ("email address", "email"),
    ("adres e-mail", "email"),
    ("first name", "first_name"),
    ("imię", "first_name"),
    ("last name", "last_name"),
    ("nazwisko", "last_name"),
    ("telefon", "phone"),
    ("status zgody", "status"),
    ("data zgody", "optin_time"),
    ("ip zgody", "optin_ip"),
    ("data potwierdzenia", "confirm_time"),
    ("data wypisania", "unsub_time"),
    ("powód wypisania", "unsub_reason"),
    ("język", "language"),
    ("tagi", "tags"),
]


LAYOUTS: tuple[Layout, ...] = (
    _layout(
        "shopify",
        CUSTOMERS,
        "customers_export",
        "Shopify customers export (2022+, 'Default Address …' columns)",
        _SHOPIFY_CUSTOMERS_NEW,
        signature=(
            "Customer ID",
            "Accepts Email Marketing",
            "Default Address Address1",
            "Default Address Zip",
            "Accepts SMS Marketing",
            "Total Spent",
            "Total Orders",
            "Tax Exempt",
        ),
        sources=_SHOPIFY_SOURCES,
    ),
    _layout(
        "shopify",
        CUSTOMERS,
        "customers_export_legacy",
        "Shopify customers export / import template (older: 'Address1', 'Zip')",
        _SHOPIFY_CUSTOMERS_OLD,
        signature=(
            "Address1",
            "Province Code",
            "Country Code",
            "Zip",
            "Total Spent",
            "Total Orders",
            "Tax Exempt",
        ),
        sources=_SHOPIFY_SOURCES,
    ),
    _layout(
        "shopify",
        ORDERS,
        "orders_export",
        "Shopify orders export (one row per line item)",
        _SHOPIFY_ORDERS,
        signature=(
            "Financial Status",
            "Fulfillment Status",
            "Lineitem quantity",
            "Lineitem name",
            "Lineitem price",
            "Billing Name",
            "Shipping Name",
        ),
        sources=_SHOPIFY_SOURCES,
    ),
    _layout(
        "woocommerce",
        CUSTOMERS,
        "analytics_customers",
        "WooCommerce Analytics > Customers, Download (CSV)",
        _WOO_ANALYTICS_CUSTOMERS,
        signature=(
            "Username",
            "Last active",
            "Orders",
            "Total spend",
            "AOV",
            "Country / Region",
        ),
        sources=(
            "woocommerce/woocommerce: plugins/woocommerce-admin customers report",
        ),
    ),
    _layout(
        "woocommerce",
        ORDERS,
        "advanced_order_export",
        "Advanced Order Export For WooCommerce (algolplus), one row per product",
        _WOO_AOE_ORDERS,
        signature=(
            "Order Number",
            "Order Status",
            "Order Date",
            "Item Cost",
            "Order Total Amount",
            "Order Subtotal Amount",
            "Order Shipping Amount",
            "Payment Method Title",
        ),
        sources=(
            "wordpress.org/plugins/woo-order-export-lite (class WC_Order_Export)",
        ),
    ),
    _layout(
        "woocommerce",
        ORDERS,
        "analytics_orders",
        "WooCommerce Analytics > Orders, Download (CSV); no line prices",
        _WOO_ANALYTICS_ORDERS,
        signature=("Order #", "Customer type", "Product(s)", "Items sold", "Net Sales"),
        required=ORDER_SUMMARY_REQUIRED,
        line_items=False,
        sources=("woocommerce/woocommerce: plugins/woocommerce-admin orders report",),
    ),
    _layout(
        "prestashop",
        CUSTOMERS,
        "customers_export",
        "PrestaShop 1.7.6+/8 back office Customers > Export (English)",
        _PS_CUSTOMERS_EN,
        signature=(
            "Social title",
            "Sales",
            "Enabled",
            "Newsletter",
            "Partner offers",
            "Registration",
            "Last visit",
        ),
        sources=(
            "PrestaShop/PrestaShop: src/PrestaShopBundle/Controller/Admin/Sell/"
            "Customer/CustomerController.php exportAction",
        ),
    ),
    _layout(
        "prestashop",
        CUSTOMERS,
        "customers_export_pl",
        "PrestaShop back office Customers > Export (Polish back office)",
        _PS_CUSTOMERS_PL,
        signature=(
            "Imię",
            "Nazwisko",
            "Sprzedaż",
            "Biuletyn",
            "Oferty partnerów",
            "Rejestracja",
            "Ostatnia wizyta",
        ),
        sources=("PrestaShop pl-PL translations (Crowdin); unverified, see docs",),
    ),
    _layout(
        "prestashop",
        CUSTOMERS,
        "customers_import",
        "PrestaShop customers import file (docs/csv_import/customers_import.csv)",
        _PS_CUSTOMERS_IMPORT,
        signature=(
            "Active (0/1)",
            "Titles ID (Mr = 1, Ms = 2, else 0)",
            "Birthday (yyyy-mm-dd)",
            "Newsletter (0/1)",
            "Opt-in (0/1)",
            "Registration date (yyyy-mm-dd)",
            "Default group ID",
        ),
        sources=("PrestaShop/PrestaShop: docs/csv_import/customers_import.csv",),
    ),
    _layout(
        "prestashop",
        CUSTOMERS,
        "addresses_import",
        "PrestaShop addresses import file (docs/csv_import/addresses_import.csv)",
        _PS_ADDRESSES_IMPORT,
        signature=(
            "Alias",
            "Customer e-mail",
            "Manufacturer",
            "Supplier",
            "Zipcode",
            "DNI",
            "Mobile Phone",
        ),
        sources=("PrestaShop/PrestaShop: docs/csv_import/addresses_import.csv",),
    ),
    _layout(
        "prestashop",
        ORDERS,
        "orders_export",
        "PrestaShop 1.7.7+/8 back office Orders > Export (English); no line items",
        _PS_ORDERS_EN,
        signature=("Reference", "New client", "Delivery", "Customer", "Payment"),
        required=ORDER_SUMMARY_REQUIRED,
        line_items=False,
        sources=(
            "PrestaShop/PrestaShop: src/PrestaShopBundle/Controller/Admin/Sell/"
            "Order/OrderController.php exportAction",
        ),
    ),
    _layout(
        "prestashop",
        ORDERS,
        "orders_export_pl",
        "PrestaShop back office Orders > Export (Polish back office); no line items",
        _PS_ORDERS_PL,
        signature=("Indeks", "Nowy klient", "Dostawa", "Klient", "Płatność"),
        required=ORDER_SUMMARY_REQUIRED,
        line_items=False,
        sources=("PrestaShop pl-PL translations (Crowdin); unverified, see docs",),
    ),
    _layout(
        "magento",
        CUSTOMERS,
        "customer",
        "Magento 2 export: Customers Main File (entity 'customer')",
        _MAGENTO_CUSTOMER,
        signature=(
            "_website",
            "_store",
            "created_in",
            "group_id",
            "firstname",
            "lastname",
            "website_id",
        ),
        sources=("magento/merchdocs: src/system/data-attributes-customer.md",),
    ),
    _layout(
        "magento",
        CUSTOMERS,
        "customer_address",
        "Magento 2 export: Customer Addresses (entity 'customer_address')",
        _MAGENTO_ADDRESS_FILE,
        signature=(
            "_website",
            "_email",
            "_entity_id",
            "country_id",
            "telephone",
            "_address_default_billing_",
            "_address_default_shipping_",
        ),
        sources=("magento/merchdocs: src/system/data-attributes-customer.md",),
    ),
    _layout(
        "magento",
        CUSTOMERS,
        "customer_composite",
        "Magento 2 import: Customers and Addresses (entity 'customer_composite')",
        _magento_composite(),
        signature=(
            "_website",
            "_store",
            "firstname",
            "group_id",
            "_address_city",
            "_address_country_id",
            "_address_postcode",
            "_address_street",
            "_address_default_billing_",
        ),
        sources=(
            "magento/merchdocs: src/system/data-attributes-customer.md",
            "Adobe Commerce docs: Customers and Addresses (single file) import",
        ),
    ),
    _layout(
        "magento",
        ORDERS,
        "sales_order_grid",
        "Magento 2 admin Sales > Orders grid, Export CSV; no line items",
        _MAGENTO_ORDERS_GRID,
        signature=(
            "Purchase Point",
            "Purchase Date",
            "Bill-to Name",
            "Ship-to Name",
            "Grand Total (Base)",
            "Grand Total (Purchased)",
        ),
        required=ORDER_SUMMARY_REQUIRED,
        line_items=False,
        sources=("Adobe Commerce user guide: Orders grid columns",),
    ),
    _layout(
        "mailchimp",
        CONSENTS,
        "subscribed",
        "Mailchimp audience export: subscribed_members_export_*.csv",
        _MAILCHIMP_COMMON,
        signature=_MAILCHIMP_SIGNATURE,
        constants={"status": "subscribed"},
        sources=_MAILCHIMP_SOURCES,
    ),
    _layout(
        "mailchimp",
        CONSENTS,
        "unsubscribed",
        "Mailchimp audience export: unsubscribed_members_export_*.csv",
        [*_MAILCHIMP_COMMON, *_MAILCHIMP_UNSUB],
        signature=(*_MAILCHIMP_SIGNATURE, "UNSUB_TIME", "UNSUB_CAMPAIGN_TITLE"),
        constants={"status": "unsubscribed"},
        sources=_MAILCHIMP_SOURCES,
    ),
    _layout(
        "mailchimp",
        CONSENTS,
        "cleaned",
        "Mailchimp audience export: cleaned_members_export_*.csv",
        [*_MAILCHIMP_COMMON, *_MAILCHIMP_CLEAN],
        signature=(*_MAILCHIMP_SIGNATURE, "CLEAN_TIME", "CLEAN_CAMPAIGN_TITLE"),
        constants={"status": "cleaned"},
        sources=_MAILCHIMP_SOURCES,
    ),
    _layout(
        GENERIC,
        CUSTOMERS,
        "customers",
        "Kartoteka generic customers file (canonical names, Polish headings)",
        _GENERIC_CUSTOMERS,
    ),
    _layout(
        GENERIC,
        ORDERS,
        "orders",
        "Kartoteka generic orders file (one row per line item)",
        _GENERIC_ORDERS,
    ),
    _layout(
        GENERIC,
        CONSENTS,
        "consents",
        "Kartoteka generic consents file",
        _GENERIC_CONSENTS,
    ),
)


def _build_formats() -> dict[str, dict[str, dict[str, str]]]:
    formats: dict[str, dict[str, dict[str, str]]] = {}
    for layout in LAYOUTS:
        table = formats.setdefault(layout.format, {}).setdefault(layout.kind, {})
        ordered = sorted(layout.aliases.items(), key=lambda item: item[1][1])
        for header, (target, _priority) in ordered:
            table.setdefault(header, target)
    return formats


#: ``format -> kind -> {normalised header: canonical field}`` over all variants.
FORMATS: dict[str, dict[str, dict[str, str]]] = _build_formats()


# --------------------------------------------------------------------------------------
# Results and errors


class UnknownFormat(ValueError):
    """No layout fits the header well enough (or the format name is unknown)."""

    def __init__(self, message: str, candidates: Sequence[Candidate] = ()) -> None:
        self.candidates = tuple(candidates)
        if self.candidates:
            listed = ", ".join(
                f"{c.format}/{c.kind} ({c.variant}) {c.score:.2f}"
                for c in self.candidates
            )
            message = f"{message} Best candidates: {listed}."
        super().__init__(message)


class MissingColumns(ValueError):
    """The header lacks a column the chosen layout requires."""

    def __init__(self, layout: Layout, missing: Sequence[tuple[str, ...]]) -> None:
        self.format = layout.format
        self.kind = layout.kind
        self.variant = layout.variant
        self.missing = tuple(missing)
        parts = []
        for group in self.missing:
            names = " or ".join(group)
            shown = [f"'{layout.display[f]}'" for f in group if f in layout.display]
            parts.append(f"{names} (column {' / '.join(shown)})" if shown else names)
        super().__init__(
            f"{layout.format} {layout.kind} file ({layout.variant}) is missing "
            f"required column(s): {'; '.join(parts)}"
        )


@dataclass(frozen=True)
class Candidate:
    format: str
    kind: str
    variant: str
    score: float


@dataclass(frozen=True)
class Mapping:
    """How one header row maps onto canonical fields."""

    format: str
    kind: str
    variant: str
    header: tuple[str, ...]
    #: source column -> canonical field (first occurrence of a repeated name).
    columns: dict[str, str]
    #: canonical field -> header positions feeding it, best first.
    positions: dict[str, tuple[int, ...]]
    #: columns not imported (known to the layout but ignored, or unknown).
    unmapped: tuple[str, ...]
    #: the subset of ``unmapped`` this layout does not know at all.
    unknown: tuple[str, ...]
    missing: tuple[tuple[str, ...], ...]
    constants: dict[str, str]
    line_items: bool
    confidence: float

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.positions)

    def apply(self, row: Sequence[str]) -> dict[str, str]:
        """Canonical values of one data row (a sequence aligned with the header).

        For a field fed by several columns the first non-blank one wins; values are
        stripped but otherwise untouched. Constants implied by the file (Mailchimp's
        status) and kind fallbacks (order_id from order_number) are filled in.
        """
        values: dict[str, str] = dict(self.constants)
        for target, indexes in self.positions.items():
            for index in indexes:
                if index < len(row) and row[index] is not None:
                    value = str(row[index]).strip()
                    if value:
                        values[target] = value
                        break
        for target, source in FALLBACKS[self.kind].items():
            if not values.get(target) and values.get(source):
                values[target] = values[source]
        return values


@dataclass(frozen=True)
class Detection:
    """The result of :func:`detect_format`."""

    format: str
    kind: str
    variant: str
    #: source column -> canonical field.
    mapping: dict[str, str]
    unmapped: tuple[str, ...]
    unknown: tuple[str, ...]
    missing: tuple[tuple[str, ...], ...]
    confidence: float
    candidates: tuple[Candidate, ...]
    plan: Mapping

    @property
    def mailchimp_status(self) -> str | None:
        return self.plan.constants.get("status") if self.format == "mailchimp" else None


# --------------------------------------------------------------------------------------
# Matching


def _match(layout: Layout, header: Sequence[str]) -> Mapping:
    norms = [normalise_header(cell) for cell in header]
    hits: dict[str, list[tuple[int, int]]] = {}
    columns: dict[str, str] = {}
    unmapped: list[str] = []
    unknown: list[str] = []
    recognised = 0
    nonblank = 0
    for index, (cell, norm) in enumerate(zip(header, norms, strict=True)):
        if not norm:
            continue
        nonblank += 1
        hit = layout.aliases.get(norm)
        if hit:
            recognised += 1
            target, priority = hit
            hits.setdefault(target, []).append((priority, index))
            columns.setdefault(str(cell), target)
            continue
        unmapped.append(str(cell))
        if norm in layout.known:
            recognised += 1
        else:
            unknown.append(str(cell))
    positions = {
        target: tuple(index for _priority, index in sorted(found))
        for target, found in sorted(hits.items(), key=lambda item: min(item[1]))
    }
    missing = tuple(
        group
        for group in layout.required
        if not any(target in positions for target in group)
    )
    if nonblank:
        coverage = recognised / nonblank
        if layout.signature:
            present = layout.signature & set(norms)
            score = 0.5 * coverage + 0.5 * len(present) / len(layout.signature)
        else:
            # Generic names are common words: never outrank a platform that fits.
            score = 0.9 * coverage
        if missing:
            score *= 0.6
    else:
        score = 0.0
    return Mapping(
        format=layout.format,
        kind=layout.kind,
        variant=layout.variant,
        header=tuple(str(cell) for cell in header),
        columns=columns,
        positions=positions,
        unmapped=tuple(unmapped),
        unknown=tuple(unknown),
        missing=missing,
        constants=dict(layout.constants),
        line_items=layout.line_items,
        confidence=round(score, 3),
    )


def _check_kind(kind: str | None) -> None:
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")


def _ranked(
    header: Sequence[str], layouts: Iterable[Layout]
) -> list[tuple[Mapping, Layout]]:
    scored = [(_match(layout, header), layout) for layout in layouts]
    # Stable sort: on equal scores the earlier layout (platform before generic,
    # customers before consents) wins.
    return sorted(scored, key=lambda pair: -pair[0].confidence)


def detect_format(header: Sequence[str], *, kind: str | None = None) -> Detection:
    """``--format auto``: the best scoring (format, kind, variant) for a header row.

    Raises :class:`UnknownFormat` (listing the best candidates) when no layout reaches
    :data:`MIN_CONFIDENCE`. A detection may still report ``missing`` required fields;
    :func:`map_header` is the strict step that raises :class:`MissingColumns`.
    """
    _check_kind(kind)
    layouts = [layout for layout in LAYOUTS if kind is None or layout.kind == kind]
    ranked = _ranked(header, layouts)
    candidates = tuple(
        Candidate(m.format, m.kind, m.variant, m.confidence) for m, _ in ranked[:3]
    )
    best, _layout_used = ranked[0]
    if best.confidence < MIN_CONFIDENCE:
        raise UnknownFormat(
            "Could not recognise the file from its header row; choose --format "
            "explicitly or rename the columns to Kartoteka's generic names.",
            candidates,
        )
    return Detection(
        format=best.format,
        kind=best.kind,
        variant=best.variant,
        mapping=dict(best.columns),
        unmapped=best.unmapped,
        unknown=best.unknown,
        missing=best.missing,
        confidence=best.confidence,
        candidates=candidates,
        plan=best,
    )


def map_header(header: Sequence[str], format: str, kind: str | None = None) -> Mapping:
    """Map a header row for an explicitly chosen format (``auto`` detects it).

    Among the format's layouts of that kind the best fitting variant is used (e.g.
    Magento's ``customer`` vs ``customer_composite``, Mailchimp's subscribed vs
    unsubscribed vs cleaned file). Raises :class:`MissingColumns` naming every
    missing required column, :class:`UnknownFormat` for an unknown format name.
    """
    _check_kind(kind)
    if format == AUTO:
        detection = detect_format(header, kind=kind)
        format, kind = detection.format, detection.kind
    if format not in FORMATS:
        raise UnknownFormat(
            f"Unknown format {format!r}; expected auto or one of "
            f"{', '.join(sorted(FORMATS))}."
        )
    layouts = [
        layout
        for layout in LAYOUTS
        if layout.format == format and (kind is None or layout.kind == kind)
    ]
    if not layouts:
        raise UnknownFormat(f"Format {format!r} has no {kind} layout.")
    best, layout = _ranked(header, layouts)[0]
    if best.missing:
        raise MissingColumns(layout, best.missing)
    return best


def layouts_for(format: str, kind: str | None = None) -> tuple[Layout, ...]:
    """The known layouts of one format (optionally of one kind)."""
    return tuple(
        layout
        for layout in LAYOUTS
        if layout.format == format and (kind is None or layout.kind == kind)
    )
