"""Header layouts of platform exports and ``--format auto`` detection."""

import pytest

from customers.importers.formats import (
    CANONICAL_FIELDS,
    FORMATS,
    LAYOUTS,
    MissingColumns,
    UnknownFormat,
    detect_format,
    map_header,
    normalise_header,
)

SHOPIFY_CUSTOMERS = (
    "Customer ID,First Name,Last Name,Email,Accepts Email Marketing,"
    "Default Address Company,Default Address Address1,Default Address Address2,"
    "Default Address City,Default Address Province Code,Default Address Country Code,"
    "Default Address Zip,Default Address Phone,Phone,Accepts SMS Marketing,"
    "Total Spent,Total Orders,Note,Tax Exempt,Tags"
).split(",")

SHOPIFY_CUSTOMERS_OLD = (
    "First Name,Last Name,Email,Company,Address1,Address2,City,Province,"
    "Province Code,Country,Country Code,Zip,Phone,Accepts Marketing,Total Spent,"
    "Total Orders,Tags,Note,Tax Exempt"
).split(",")

SHOPIFY_ORDERS = (
    "Name,Email,Financial Status,Paid at,Fulfillment Status,Fulfilled at,"
    "Accepts Marketing,Currency,Subtotal,Shipping,Taxes,Total,Discount Code,"
    "Discount Amount,Shipping Method,Created at,Lineitem quantity,Lineitem name,"
    "Lineitem price,Lineitem compare at price,Lineitem sku,Lineitem requires shipping,"
    "Lineitem taxable,Lineitem fulfillment status,Billing Name,Billing Street,"
    "Billing Address1,Billing Address2,Billing Company,Billing City,Billing Zip,"
    "Billing Province,Billing Country,Billing Phone,Shipping Name,Shipping Street,"
    "Shipping Address1,Shipping Address2,Shipping Company,Shipping City,Shipping Zip,"
    "Shipping Province,Shipping Country,Shipping Phone,Notes,Note Attributes,"
    "Cancelled at,Payment Method,Payment Reference,Refunded Amount,Vendor,"
    "Outstanding Balance,Employee,Location,Device ID,Id,Tags,Risk Level,Source,"
    "Lineitem discount,Tax 1 Name,Tax 1 Value,Tax 2 Name,Tax 2 Value,Tax 3 Name,"
    "Tax 3 Value,Tax 4 Name,Tax 4 Value,Tax 5 Name,Tax 5 Value,Phone,Receipt Number,"
    "Duties,Billing Province Name,Shipping Province Name,Payment ID,"
    "Payment Terms Name,Next Payment Due At,Payment References"
).split(",")

WOO_ANALYTICS_CUSTOMERS = [
    "Name",
    "Username",
    "Last active",
    "Date registered",
    "Email",
    "Orders",
    "Total spend",
    "AOV",
    "Country / Region",
    "City",
    "Region",
    "Postal code",
]

WOO_AOE_ORDERS = [
    "Order Number",
    "Order Status",
    "Order Date",
    "Customer Note",
    "First Name (Billing)",
    "Last Name (Billing)",
    "Company (Billing)",
    "Address 2 (Billing)",
    "City (Billing)",
    "State Code (Billing)",
    "Zip (Billing)",
    "Country Code (Billing)",
    "Email (Billing)",
    "Phone (Billing)",
    "First Name (Shipping)",
    "Last Name (Shipping)",
    "Address 1 (Shipping)",
    "Address 2 (Shipping)",
    "City (Shipping)",
    "State Code (Shipping)",
    "Zip (Shipping)",
    "Country Code (Shipping)",
    "Item #",
    "SKU",
    "Name",
    "Quantity",
    "Item Cost",
    "Coupon Code",
    "Shipping Method Title",
    "Payment Method Title",
    "Cart Discount Amount",
    "Order Subtotal Amount",
    "Order Shipping Amount",
    "Order Refund Amount",
    "Order Total Amount",
    "Order Total Tax Amount",
]

PS_CUSTOMERS_EN = [
    "ID",
    "Social title",
    "First name",
    "Last name",
    "Email address",
    "Company",
    "Sales",
    "Enabled",
    "Newsletter",
    "Partner offers",
    "Registration",
    "Last visit",
]

PS_CUSTOMERS_PL = [
    "ID",
    "Tytuł",
    "Imię",
    "Nazwisko",
    "E-mail",
    "Sprzedaż",
    "Włączony",
    "Biuletyn",
    "Oferty partnerów",
    "Rejestracja",
    "Ostatnia wizyta",
]

PS_ORDERS = [
    "ID",
    "Reference",
    "New client",
    "Delivery",
    "Customer",
    "Total",
    "Payment",
    "Status",
    "Date",
]

PS_CUSTOMERS_IMPORT = (
    "Customer ID;Active (0/1);Titles ID (Mr = 1, Ms = 2, else 0);Email *;Password *;"
    "Birthday (yyyy-mm-dd);Last Name *;First Name *;Newsletter (0/1);Opt-in (0/1);"
    "Registration date (yyyy-mm-dd);Groups (x,y,z...);Default group ID"
).split(";")

PS_ADDRESSES_IMPORT = (
    "Address ID;Alias*;Active (0/1);Customer e-mail*;Customer ID;Manufacturer;"
    "Supplier;Company;Lastname*;Firstname*;Address 1*;Address 2;Zipcode*;City*;"
    "Country*;State;Other;Phone;Mobile Phone;VAT number;DNI"
).split(";")

MAGENTO_CUSTOMER = (
    "email,_website,_store,confirmation,created_at,created_in,"
    "disable_auto_group_change,dob,firstname,gender,group_id,lastname,middlename,"
    "password_hash,prefix,rp_token,rp_token_created_at,store_id,suffix,taxvat,"
    "website_id,password"
).split(",")

MAGENTO_ADDRESS = (
    "_website,_email,_entity_id,city,company,country_id,fax,firstname,lastname,"
    "middlename,postcode,prefix,region,region_id,street,suffix,telephone,vat_id,"
    "vat_is_valid,vat_request_date,vat_request_id,vat_request_success,"
    "_address_default_billing_,_address_default_shipping_"
).split(",")

MAGENTO_COMPOSITE = MAGENTO_CUSTOMER + (
    "_address_city,_address_company,_address_country_id,_address_fax,"
    "_address_firstname,_address_lastname,_address_middlename,_address_postcode,"
    "_address_prefix,_address_region,_address_street,_address_suffix,"
    "_address_telephone,_address_vat_id,_address_default_billing_,"
    "_address_default_shipping_"
).split(",")

MAILCHIMP_BASE = [
    "Email Address",
    "First Name",
    "Last Name",
    "Email",
    "Direct Mail",
    "Customized Online Advertising",
    "MEMBER_RATING",
    "OPTIN_TIME",
    "OPTIN_IP",
    "CONFIRM_TIME",
    "CONFIRM_IP",
    "LATITUDE",
    "LONGITUDE",
    "GMTOFF",
    "DSTOFF",
    "TIMEZONE",
    "CC",
    "REGION",
]
MAILCHIMP_TAIL = ["LEID", "EUID", "NOTES", "TAGS"]
MAILCHIMP_SUBSCRIBED = [*MAILCHIMP_BASE, "LAST_CHANGED", *MAILCHIMP_TAIL]
MAILCHIMP_UNSUBSCRIBED = [
    *MAILCHIMP_BASE,
    "UNSUB_TIME",
    "UNSUB_CAMPAIGN_TITLE",
    "UNSUB_CAMPAIGN_ID",
    "UNSUB_REASON",
    "UNSUB_REASON_OTHER",
    *MAILCHIMP_TAIL,
]
MAILCHIMP_CLEANED = [
    *MAILCHIMP_BASE,
    "CLEAN_TIME",
    "CLEAN_CAMPAIGN_TITLE",
    "CLEAN_CAMPAIGN_ID",
    *MAILCHIMP_TAIL,
]

GENERIC_POLISH = [
    "Imię",
    "Nazwisko",
    "E-mail",
    "Telefon",
    "Ulica",
    "Kod pocztowy",
    "Miasto",
    "Kraj",
    "Firma",
    "NIP",
    "Data urodzenia",
    "Zgoda marketingowa",
]


@pytest.mark.parametrize(
    ("header", "expected", "spot_checks"),
    [
        (
            SHOPIFY_CUSTOMERS,
            ("shopify", "customers", "customers_export"),
            {
                "Customer ID": "external_id",
                "Default Address Address1": "street",
                "Default Address Zip": "postcode",
                "Accepts Email Marketing": "accepts_email_marketing",
                "Total Orders": "orders_count",
            },
        ),
        (
            SHOPIFY_CUSTOMERS_OLD,
            ("shopify", "customers", "customers_export_legacy"),
            {
                "Company": "company",
                "Address1": "street",
                "Zip": "postcode",
                "Accepts Marketing": "accepts_email_marketing",
            },
        ),
        (
            SHOPIFY_ORDERS,
            ("shopify", "orders", "orders_export"),
            {
                "Name": "order_id",
                "Created at": "placed_at",
                "Lineitem quantity": "line_quantity",
                "Lineitem price": "line_unit_price",
                "Lineitem sku": "line_sku",
                "Billing Zip": "billing_postcode",
                "Shipping Country": "shipping_country",
                "Discount Code": "coupon_code",
                "Cancelled at": "cancelled_at",
            },
        ),
        (
            WOO_ANALYTICS_CUSTOMERS,
            ("woocommerce", "customers", "analytics_customers"),
            {
                "Name": "full_name",
                "Email": "email",
                "Total spend": "total_spent",
                "Orders": "orders_count",
                "Postal code": "postcode",
                "Country / Region": "country",
            },
        ),
        (
            WOO_AOE_ORDERS,
            ("woocommerce", "orders", "advanced_order_export"),
            {
                "Order Number": "order_number",
                "Order Date": "placed_at",
                "Email (Billing)": "email",
                "Zip (Billing)": "billing_postcode",
                "Name": "line_name",
                "Quantity": "line_quantity",
                "Item Cost": "line_unit_price",
                "Order Total Amount": "total",
            },
        ),
        (
            PS_CUSTOMERS_EN,
            ("prestashop", "customers", "customers_export"),
            {
                "ID": "external_id",
                "Email address": "email",
                "Sales": "total_spent",
                "Newsletter": "accepts_email_marketing",
                "Partner offers": "accepts_partner_marketing",
                "Registration": "created_at",
            },
        ),
        (
            PS_CUSTOMERS_PL,
            ("prestashop", "customers", "customers_export_pl"),
            {
                "Imię": "first_name",
                "Nazwisko": "last_name",
                "E-mail": "email",
                "Sprzedaż": "total_spent",
                "Biuletyn": "accepts_email_marketing",
                "Oferty partnerów": "accepts_partner_marketing",
                "Rejestracja": "created_at",
                "Ostatnia wizyta": "last_seen_at",
            },
        ),
        (
            PS_ORDERS,
            ("prestashop", "orders", "orders_export"),
            {"ID": "order_id", "Reference": "order_number", "Date": "placed_at"},
        ),
        (
            PS_CUSTOMERS_IMPORT,
            ("prestashop", "customers", "customers_import"),
            {
                "Email *": "email",
                "Birthday (yyyy-mm-dd)": "birth_date",
                "Newsletter (0/1)": "accepts_email_marketing",
            },
        ),
        (
            PS_ADDRESSES_IMPORT,
            ("prestashop", "customers", "addresses_import"),
            {
                "Customer e-mail*": "email",
                "Zipcode*": "postcode",
                "VAT number": "nip",
            },
        ),
        (
            MAGENTO_CUSTOMER,
            ("magento", "customers", "customer"),
            {"email": "email", "dob": "birth_date", "taxvat": "nip"},
        ),
        (
            MAGENTO_ADDRESS,
            ("magento", "customers", "customer_address"),
            {"_email": "email", "country_id": "country", "telephone": "phone"},
        ),
        (
            MAGENTO_COMPOSITE,
            ("magento", "customers", "customer_composite"),
            {
                "firstname": "first_name",
                "_address_street": "street",
                "_address_postcode": "postcode",
                "_address_country_id": "country",
                "_address_default_billing_": "is_default_billing",
            },
        ),
        (
            MAILCHIMP_SUBSCRIBED,
            ("mailchimp", "consents", "subscribed"),
            {
                "Email Address": "email",
                "OPTIN_TIME": "optin_time",
                "CONFIRM_IP": "confirm_ip",
                "Email": "gdpr_email",
                "TAGS": "tags",
            },
        ),
        (
            MAILCHIMP_UNSUBSCRIBED,
            ("mailchimp", "consents", "unsubscribed"),
            {"UNSUB_TIME": "unsub_time", "UNSUB_REASON": "unsub_reason"},
        ),
        (
            MAILCHIMP_CLEANED,
            ("mailchimp", "consents", "cleaned"),
            {"CLEAN_TIME": "clean_time", "CLEAN_CAMPAIGN_ID": "clean_campaign_id"},
        ),
        (
            GENERIC_POLISH,
            ("generic", "customers", "customers"),
            {
                "Imię": "first_name",
                "Kod pocztowy": "postcode",
                "NIP": "nip",
                "Data urodzenia": "birth_date",
                "Zgoda marketingowa": "accepts_email_marketing",
            },
        ),
    ],
)
def test_realistic_headers_are_detected(header, expected, spot_checks):
    detection = detect_format(header)
    assert (detection.format, detection.kind, detection.variant) == expected
    assert detection.confidence >= 0.5
    assert detection.missing == ()
    for column, target in spot_checks.items():
        assert detection.mapping[column] == target, column
    # The explicit path agrees with auto-detection.
    mapping = map_header(header, expected[0], expected[1])
    assert mapping.variant == expected[2]
    assert mapping.columns == detection.mapping


def test_shopify_old_and_new_customer_headers_map_to_the_same_fields():
    new = map_header(SHOPIFY_CUSTOMERS, "shopify", "customers")
    old = map_header(SHOPIFY_CUSTOMERS_OLD, "shopify", "customers")
    for target in ("email", "first_name", "street", "postcode", "city", "country"):
        assert target in new.positions
        assert target in old.positions
    assert new.columns["Email"] == old.columns["Email"] == "email"


def test_shopify_phone_prefers_the_customer_phone_over_the_address_phone():
    mapping = map_header(SHOPIFY_CUSTOMERS, "shopify", "customers")
    row = [""] * len(SHOPIFY_CUSTOMERS)
    row[SHOPIFY_CUSTOMERS.index("Default Address Phone")] = "+48 600 000 001"
    assert mapping.apply(row)["phone"] == "+48 600 000 001"
    row[SHOPIFY_CUSTOMERS.index("Phone")] = "+48 600 000 002"
    assert mapping.apply(row)["phone"] == "+48 600 000 002"


def test_shopify_orders_header_is_orders_even_when_asked_for_any_kind():
    assert detect_format(SHOPIFY_ORDERS).kind == "orders"
    with pytest.raises(UnknownFormat):
        detect_format(SHOPIFY_ORDERS, kind="consents")


def test_mailchimp_status_comes_from_the_file_kind():
    for header, status in (
        (MAILCHIMP_SUBSCRIBED, "subscribed"),
        (MAILCHIMP_UNSUBSCRIBED, "unsubscribed"),
        (MAILCHIMP_CLEANED, "cleaned"),
    ):
        detection = detect_format(header)
        assert detection.mailchimp_status == status
        row = ["x"] * len(header)
        row[header.index("Email Address")] = "ola@example.pl"
        values = detection.plan.apply(row)
        assert values["status"] == status
        assert values["email"] == "ola@example.pl"


def test_magento_composite_keeps_customer_name_not_address_name():
    mapping = map_header(MAGENTO_COMPOSITE, "magento", "customers")
    assert mapping.variant == "customer_composite"
    assert mapping.columns["firstname"] == "first_name"
    assert "_address_firstname" in mapping.unmapped
    assert "_address_firstname" not in mapping.unknown


def test_order_summary_exports_need_no_line_columns():
    mapping = map_header(PS_ORDERS, "prestashop", "orders")
    assert mapping.line_items is False


def test_order_id_falls_back_to_order_number():
    mapping = map_header(WOO_AOE_ORDERS, "woocommerce", "orders")
    row = [""] * len(WOO_AOE_ORDERS)
    row[WOO_AOE_ORDERS.index("Order Number")] = "1042"
    assert mapping.apply(row)["order_id"] == "1042"


def test_unknown_header_raises_unknown_format_listing_candidates():
    with pytest.raises(UnknownFormat) as excinfo:
        detect_format(["Kolumna A", "Kolumna B", "Wartość X"])
    assert excinfo.value.candidates
    assert "candidates" in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)


def test_unknown_format_name_is_refused():
    with pytest.raises(UnknownFormat):
        map_header(["email"], "bigcommerce", "customers")


def test_missing_required_column_is_named():
    header = [h for h in SHOPIFY_ORDERS if h != "Lineitem quantity"]
    with pytest.raises(MissingColumns) as excinfo:
        map_header(header, "shopify", "orders")
    assert excinfo.value.missing == (("line_quantity",),)
    assert "line_quantity" in str(excinfo.value)
    assert "Lineitem quantity" in str(excinfo.value)


def test_missing_identity_column_for_customers():
    header = [h for h in SHOPIFY_CUSTOMERS if h not in ("Email", "Customer ID")]
    with pytest.raises(MissingColumns) as excinfo:
        map_header(header, "shopify", "customers")
    assert excinfo.value.missing == (("email", "external_id"),)
    assert "email or external_id" in str(excinfo.value)


def test_generic_canonical_names_are_their_own_aliases():
    header = list(CANONICAL_FIELDS["orders"])
    detection = detect_format(header, kind="orders")
    assert detection.format == "generic"
    assert all(detection.mapping[name] == name for name in header)


def test_generic_headers_do_not_pose_as_a_platform():
    detection = detect_format(["email", "first_name", "last_name", "phone"])
    assert (detection.format, detection.kind) == ("generic", "customers")


@pytest.mark.parametrize(
    "raw",
    [
        "First Name",
        "first name",
        "  FIRST NAME  ",
        "\ufeffFirst Name",
        "First\u00a0Name",
        "first_name",
        "First__Name",
        "First Name *",
        "first\tname",
    ],
)
def test_header_normalisation(raw):
    assert normalise_header(raw) == "first name"


def test_normalisation_keeps_polish_letters_and_composes_them():
    assert normalise_header("IMIĘ") == "imię"
    assert normalise_header("Imie\u0328") == "imię"  # e + combining ogonek


def test_bom_on_the_first_column_does_not_break_detection():
    header = ["\ufeff" + SHOPIFY_CUSTOMERS[0], *SHOPIFY_CUSTOMERS[1:]]
    detection = detect_format(header)
    assert detection.mapping["\ufeffCustomer ID"] == "external_id"


def test_every_alias_targets_a_canonical_field():
    for format_name, kinds in FORMATS.items():
        for kind, table in kinds.items():
            allowed = set(CANONICAL_FIELDS[kind])
            assert set(table.values()) <= allowed, (format_name, kind)
            assert all(key == normalise_header(key) for key in table)
    assert {layout.format for layout in LAYOUTS} == {
        "shopify",
        "woocommerce",
        "prestashop",
        "magento",
        "mailchimp",
        "generic",
    }
