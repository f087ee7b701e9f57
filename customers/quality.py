"""Data quality: the duplicate scan, the checks the quality pages list, the scan run.

**The duplicate scan** (:func:`duplicates_scan`) finds pairs of customers that are
likely one person and keeps them as ``DuplicateCandidate`` rows, set-based in
PostgreSQL, in one transaction. Merged-away and erased customers take no part.
Each reason has its rule:

* ``email`` -- the same canonical email (:func:`email_canonical`): lower case,
  a "+tag" dropped from the local part, and for Gmail (gmail.com, googlemail.com)
  the dots of the local part dropped and the domain gmail.com.
* ``phone`` -- the same phone (stored in E.164, so equal means the same number).

  For both exact reasons every member of a group of records sharing a key is
  paired with the group's oldest record (the lowest id), not with every other
  member: a batch merge folds them all into that one. A group of more than
  :data:`EXACT_GROUP_LIMIT` records is a shared contact (a shop's own phone on
  guest orders, a family address), not one person, and is left out.

* ``name_postcode`` -- similar names at the same postcode (and country), and
* ``name_street`` -- similar names at the same street and house number (and flat)
  in the same town, whatever the postcode: the street as :data:`STREET_KEY_RULE`
  normalises it ("ul. Długa 5/3" and "Dluga 5 m. 3" are one street); a street
  line without a number is no block.

  Names are folded as the search box folds them (``search_fold``: "Żółkiewska"
  is "zolkiewska"); both the first and the last name must be given. Within each
  block (postcode or street), every person enters twice, as "first last" and as
  "last first", the entries are sorted, and each is compared with its
  :data:`NAME_NEIGHBOURS` following entries (a sorted neighbourhood): a typo in
  the last name keeps the "first last" entries side by side, a typo in the first
  name the "last first" ones, and swapped names meet across the two. Two
  entries are compared only if they start with the same word and the rest of
  them shares its first two or its last two letters (a one-letter typo in a word
  of five letters or more leaves one of those), and the pair is kept when
  pg_trgm's ``similarity`` of the two names is at least :data:`NAME_SIMILARITY`
  (word order does not change it). So a block costs at most
  ``2 × NAME_NEIGHBOURS`` comparisons a person whatever its size: a postcode
  with 5,000 people makes 30,000, not 12.5 million. The price: in a big block,
  look-alikes further apart than the window in both sort orders are missed, and
  so are names with a typo in both words. A pair found by street is not listed
  again by postcode.

``score`` is how alike the two names are (pg_trgm similarity of the folded
names, 1 for equal ones, and 1 for an exact pair where a record has no name).
Pairs that still hold keep their row (and ``found_at``); their key and score are
brought up to date; new pairs are added with the scan's time; pairs that no
longer hold (changed data, a merged or erased record) are deleted.

**Checks** (:class:`QualityCheck`) are what the quality page counts and lists:
each has a code, a label, a help text, its rule (a queryset of what fails it)
and the columns of its list and CSV file. Apps register theirs with
:func:`register_check`: the customers app its own below, the consents app
undeliverable emails and stale leads (``consents.quality``), the orders app
orders with no customer (``orders.quality``), each from its ``AppConfig.ready()``.
The customers app's rules, all in SQL:

* ``invalid-email`` -- :data:`EMAIL_RULE`: Django's own email patterns, run by
  PostgreSQL on the address split at its last @ (a plain-address pattern settles
  most rows first: 0.7 s for a million);
* ``invalid-phone`` -- :data:`PHONE_RULE`: phonenumbers' metadata turned into one
  CASE per country code (:func:`phone_valid_sql`), the same verdict as
  ``validate_phone`` (2.5 s for 700,000 numbers, read in phone order);
* ``no-contact`` -- processable customers with no email, no phone, no address.

The rules are too slow for a page view over a million customers, so the scan
keeps what they find (``QualityFinding``); a list shows those and marks the rows
fixed since.

**The scan run** (:func:`quality_scan`, nightly and on request through
``customers.tasks.duplicates_scan_task``) runs the duplicate scan, counts every
check and records it as a ``QualityScan``: the overview page shows those figures.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import phonenumbers
from django.conf import settings
from django.core.exceptions import EmptyResultSet, ImproperlyConfigured
from django.core.validators import EmailValidator
from django.db import connection, transaction
from django.db.models import (
    BooleanField,
    Exists,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Left, Length, Reverse, Right, StrIndex
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from customers.models import Address, Customer, DuplicateCandidate
from customers.models.customer import (
    SEARCH_FOLD_FROM,
    SEARCH_FOLD_MARKS,
    SEARCH_FOLD_TO,
)
from customers.models.quality import QualityFinding, QualityScan
from customers.validators import PHONE_NUMBER_TYPES, format_phone

logger = logging.getLogger(__name__)

#: Records sharing an exact key beyond this many are a shared contact, not a person.
EXACT_GROUP_LIMIT = 20
#: pg_trgm similarity of two folded names from which they count as alike.
NAME_SIMILARITY = 0.6
#: Following entries each name entry is compared with in its sorted block.
NAME_NEIGHBOURS = 3
#: Scans kept on record (the overview needs only the last).
SCANS_KEPT = 60
#: Memory a sort or hash of the scan may take before it spills to disk.
SCAN_WORK_MEM = "256MB"
# The scans run one at a time: a second one waits for the first to commit.
_SCAN_LOCK = "customers.quality.duplicates_scan"

StrOrPromise = str | Promise


# --- Normalising, in SQL and Python ------------------------------------------------

GMAIL_DOMAINS = ("gmail.com", "googlemail.com")


def email_canonical(email: str) -> str:
    """The email as the duplicate scan compares it (see the module docstring).

    "Jan.Kowalski+sklep@GoogleMail.com" is "jankowalski@gmail.com". A local part
    that is only a tag ("+x@host") keeps it.
    """
    email = (email or "").strip().lower()
    local, _at, domain = email.rpartition("@")
    if not _at:
        return email
    local = local.split("+", 1)[0] or local
    if domain in GMAIL_DOMAINS:
        domain = "gmail.com"
        local = local.replace(".", "")
    return f"{local}@{domain}"


def _email_canonical_sql(column: str) -> str:
    """SQL: :func:`email_canonical` of ``column`` (an email with an "@")."""
    lowered = f"lower({column})"
    domain = f"split_part({lowered}, '@', -1)"
    local = f"left({lowered}, -char_length({domain}) - 1)"
    untagged = f"coalesce(nullif(split_part({local}, '+', 1), ''), {local})"
    gmail = ", ".join(f"'{name}'" for name in GMAIL_DOMAINS)
    return (
        f"CASE WHEN {domain} IN ({gmail})"
        f" THEN replace({untagged}, '.', '') || '@gmail.com'"
        f" ELSE {untagged} || '@' || {domain} END"
    )


def _fold_sql(expression: str) -> str:
    """SQL: ``expression`` folded as ``search_fold`` folds it.

    Plain ASCII (a byte per character) only needs lower(); Unicode normalisation
    costs a microsecond a name and is spent only on names with other letters.
    """
    return (
        f"CASE WHEN octet_length({expression}) = char_length({expression})"
        f" THEN lower({expression})"
        f" ELSE lower(translate(regexp_replace(normalize({expression}, NFD),"
        f" '{SEARCH_FOLD_MARKS}', '', 'g'), '{SEARCH_FOLD_FROM}',"
        f" '{SEARCH_FOLD_TO}')) END"
    )


def _words_sql(expression: str) -> str:
    """SQL: ``expression`` folded, with runs of blanks as one space, trimmed."""
    return f"btrim(regexp_replace({_fold_sql(expression)}, '\\s+', ' ', 'g'))"


#: How a street line is normalised before addresses are compared.
STREET_KEY_RULE = (
    "street and address line 2 folded (no accents, lower case); a leading ul.,"
    " ulica, al., aleja, aleje, os., osiedle, pl. or plac dropped; the words m.,"
    " lok. and mieszk. before a flat number dropped; everything but letters and"
    " digits made one space. Compared only when it holds a digit."
)
_STREET_PREFIX = r"^\s*(ul|ulica|al|aleja|aleje|os|osiedle|pl|plac)\M\.?"
_FLAT_WORD = r"\m(m|lok|mieszk)\M\.?"


def _street_key_sql(street: str, street2: str) -> str:
    folded = _fold_sql(f"({street} || ' ' || {street2})")
    no_prefix = f"regexp_replace({folded}, '{_STREET_PREFIX}', '')"
    no_flat_word = f"regexp_replace({no_prefix}, '{_FLAT_WORD}', ' ', 'g')"
    return f"btrim(regexp_replace({no_flat_word}, '[^a-z0-9]+', ' ', 'g'))"


def _city_key_sql(city: str) -> str:
    return f"btrim(regexp_replace({_fold_sql(city)}, '[^a-z0-9]+', ' ', 'g'))"


# --- The duplicate scan ------------------------------------------------------------

_EXACT_KEYS_SQL = """
    CREATE TEMP TABLE quality_dup_keys AS
    SELECT c.id, 'email'::text AS reason, ({email_key}) AS key
    FROM customers_customer c
    WHERE c.merged_into_id IS NULL AND c.erased_at IS NULL
      AND c.email IS NOT NULL AND position('@' IN c.email) > 0
    UNION ALL
    SELECT c.id, 'phone', c.phone
    FROM customers_customer c
    WHERE c.merged_into_id IS NULL AND c.erased_at IS NULL AND c.phone <> ''
"""

_PEOPLE_SQL = """
    CREATE TEMP TABLE quality_dup_people AS
    SELECT c.id, btrim(f.folded || ' ' || l.folded) AS name,
        btrim(l.folded || ' ' || f.folded) AS rname,
        (f.folded <> '' AND l.folded <> '') AS full
    FROM customers_customer c
    JOIN (
        SELECT v, {first} AS folded
        FROM (SELECT DISTINCT first_name AS v FROM customers_customer) d OFFSET 0
    ) f ON f.v = c.first_name
    JOIN (
        SELECT v, {last} AS folded
        FROM (SELECT DISTINCT last_name AS v FROM customers_customer) d OFFSET 0
    ) l ON l.v = c.last_name
    WHERE c.merged_into_id IS NULL AND c.erased_at IS NULL
      AND (c.first_name <> '' OR c.last_name <> '')
"""

# Streets, towns and names are normalised once per distinct value (OFFSET 0 keeps
# PostgreSQL from inlining the expression into every place that uses it).
_PLACES_SQL = """
    CREATE TEMP TABLE quality_dup_places AS
    SELECT DISTINCT a.id, b.reason, b.block, b.key
    FROM (
        SELECT a.customer_id AS id, a.country, a.street, a.street2, a.city,
            upper(regexp_replace(a.postcode, '\\s', '', 'g')) AS postcode
        FROM customers_address a
        JOIN quality_dup_people p ON p.id = a.customer_id AND p.full
        OFFSET 0
    ) a
    JOIN (
        SELECT street, street2, {street} AS street_key
        FROM (SELECT DISTINCT street, street2 FROM customers_address) d OFFSET 0
    ) s ON s.street = a.street AND s.street2 = a.street2
    JOIN (
        SELECT city, {city} AS city_key
        FROM (SELECT DISTINCT city FROM customers_address) d OFFSET 0
    ) t ON t.city = a.city
    CROSS JOIN LATERAL (VALUES
        (%(postcode)s,
            CASE WHEN a.postcode <> '' THEN a.country || ' ' || a.postcode END,
            a.postcode),
        (%(street)s, CASE WHEN s.street_key ~ '[0-9]'
                THEN a.country || ' ' || t.city_key || ' ' || s.street_key END,
            s.street_key || ', ' || t.city_key)
    ) b(reason, block, key)
    WHERE b.block IS NOT NULL
"""

_EXACT_PAIRS_SQL = """
    INSERT INTO quality_dup_found (customer_id, other_id, reason, key, score)
    SELECT g.first_id, k.id, k.reason, g.key,
        CASE WHEN pa.name IS NULL OR pb.name IS NULL OR pa.name = pb.name THEN 1
            ELSE similarity(pa.name, pb.name) END
    FROM quality_dup_keys k
    JOIN (
        SELECT reason, key, min(id) AS first_id FROM quality_dup_keys
        GROUP BY reason, key HAVING count(*) BETWEEN 2 AND %(limit)s
    ) g ON g.reason = k.reason AND g.key = k.key
    LEFT JOIN quality_dup_people pa ON pa.id = g.first_id
    LEFT JOIN quality_dup_people pb ON pb.id = k.id
    WHERE k.id <> g.first_id
"""

_NAME_PAIRS_SQL = """
    INSERT INTO quality_dup_found (customer_id, other_id, reason, key, score)
    SELECT least(n.id, n.other_id), greatest(n.id, n.other_id), %(reason)s,
        n.key, n.score
    FROM (
        SELECT x.id, v.other_id, x.key,
            CASE WHEN v.other_id IS NULL OR v.other_id = x.id
                    OR left(v.other_name, x.head) <> left(x.name, x.head)
                    OR (left(v.other_name, x.head + 2) <> left(x.name, x.head + 2)
                        AND right(v.other_name, 2) <> right(x.name, 2)) THEN 0
                WHEN v.other_name = x.name THEN 1
                ELSE similarity(x.name, v.other_name) END AS score
        FROM (
            SELECT e.id, e.key, e.name,
                char_length(split_part(e.name, ' ', 1)) + 1 AS head, {leads}
            FROM (
                SELECT pl.id, pl.block, pl.key, s.name
                FROM quality_dup_places pl
                JOIN quality_dup_people p ON p.id = pl.id
                CROSS JOIN LATERAL (VALUES (p.name), (p.rname)) s(name)
                WHERE pl.reason = %(reason)s
            ) e
            WINDOW w AS (
                PARTITION BY e.block COLLATE "C" ORDER BY e.name COLLATE "C", e.id
            )
        ) x
        CROSS JOIN LATERAL (VALUES {neighbours}) v(other_id, other_name)
    ) n
    WHERE n.score >= %(similarity)s
"""

_PAIRS_SQL = """
    CREATE TEMP TABLE quality_dup_pairs AS
    SELECT customer_id, other_id, reason, left(min(key), 254) AS key,
        round(max(score)::numeric, 3)::float8 AS score
    FROM quality_dup_found
    GROUP BY customer_id, other_id, reason
"""

_STREET_OVER_POSTCODE_SQL = """
    DELETE FROM quality_dup_pairs p
    WHERE p.reason = 'name_postcode' AND EXISTS (
        SELECT 1 FROM quality_dup_pairs s
        WHERE s.reason = 'name_street' AND s.customer_id = p.customer_id
          AND s.other_id = p.other_id
    )
"""

_DELETE_GONE_SQL = """
    DELETE FROM customers_duplicatecandidate d
    WHERE NOT EXISTS (
        SELECT 1 FROM quality_dup_pairs p
        WHERE p.customer_id = d.customer_id AND p.other_id = d.other_id
          AND p.reason = d.reason
    )
"""

_UPDATE_HELD_SQL = """
    UPDATE customers_duplicatecandidate d SET key = p.key, score = p.score
    FROM quality_dup_pairs p
    WHERE p.customer_id = d.customer_id AND p.other_id = d.other_id
      AND p.reason = d.reason AND (d.key, d.score) IS DISTINCT FROM (p.key, p.score)
"""

_INSERT_NEW_SQL = """
    INSERT INTO customers_duplicatecandidate
        (customer_id, other_id, reason, key, score, found_at)
    SELECT customer_id, other_id, reason, key, score, %(now)s
    FROM quality_dup_pairs
    ON CONFLICT (customer_id, other_id, reason) DO NOTHING
"""

_TEMP_TABLES = (
    "quality_dup_keys",
    "quality_dup_people",
    "quality_dup_places",
    "quality_dup_found",
    "quality_dup_pairs",
)


def _name_pairs_sql() -> str:
    leads = ", ".join(
        f"lead(e.id, {k}) OVER w AS id{k}, lead(e.name, {k}) OVER w AS name{k}"
        for k in range(1, NAME_NEIGHBOURS + 1)
    )
    neighbours = ", ".join(
        f"(x.id{k}, x.name{k})" for k in range(1, NAME_NEIGHBOURS + 1)
    )
    return _NAME_PAIRS_SQL.format(leads=leads, neighbours=neighbours)


def duplicates_scan() -> dict[str, int]:
    """Find likely duplicates and replace the stored pairs; pairs per reason.

    The rules are the module docstring's. One transaction: the page sees the old
    pairs or the new ones, never half of them; a second scan waits for the first.
    """
    now = timezone.now()
    reason = DuplicateCandidate.Reason
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [_SCAN_LOCK])
        cursor.execute(f"SET LOCAL work_mem = '{SCAN_WORK_MEM}'")
        for table in _TEMP_TABLES:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(
            _PEOPLE_SQL.format(first=_words_sql("d.v"), last=_words_sql("d.v"))
        )
        cursor.execute("CREATE INDEX ON quality_dup_people (id)")
        cursor.execute(
            _EXACT_KEYS_SQL.format(email_key=_email_canonical_sql("c.email"))
        )
        cursor.execute(
            _PLACES_SQL.format(
                street=_street_key_sql("d.street", "d.street2"),
                city=_city_key_sql("d.city"),
            ),
            {
                "postcode": reason.NAME_POSTCODE.value,
                "street": reason.NAME_STREET.value,
            },
        )
        cursor.execute("ANALYZE quality_dup_people")
        cursor.execute("ANALYZE quality_dup_keys")
        cursor.execute("ANALYZE quality_dup_places")
        cursor.execute(
            "CREATE TEMP TABLE quality_dup_found (customer_id bigint, other_id bigint,"
            " reason text, key text, score float8)"
        )
        cursor.execute(_EXACT_PAIRS_SQL, {"limit": EXACT_GROUP_LIMIT})
        for name_reason in (reason.NAME_POSTCODE, reason.NAME_STREET):
            cursor.execute(
                _name_pairs_sql(),
                {"reason": name_reason.value, "similarity": NAME_SIMILARITY},
            )
        cursor.execute(_PAIRS_SQL)
        cursor.execute(_STREET_OVER_POSTCODE_SQL)
        cursor.execute(_DELETE_GONE_SQL)
        cursor.execute(_UPDATE_HELD_SQL)
        cursor.execute(_INSERT_NEW_SQL, {"now": now})
        cursor.execute("SELECT reason, count(*) FROM quality_dup_pairs GROUP BY reason")
        found = dict(cursor.fetchall())
        for table in _TEMP_TABLES:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
    return {choice.value: found.get(choice.value, 0) for choice in reason}


# --- Validity rules in SQL ---------------------------------------------------------

#: What makes a stored phone invalid, in words: what ``validate_phone`` rejects.
PHONE_RULE = (
    "The digits after the country code, as stored, are not a number"
    " phonenumbers' is_valid_number accepts: the country code is unknown, or they"
    " match none of the country's number patterns and lengths (for a code several"
    " regions share, the region is chosen as phonenumbers chooses it). A number"
    " written with its national prefix (+4407911...) is not canonical E.164 and"
    " fails too."
)


def _phone_desc_lengths(desc: Any) -> tuple[int, ...] | None:
    """The national number lengths the description allows: () any, None: none.

    As phonenumbers' ``_is_number_matching_desc``: no pattern matches nothing,
    possible lengths (-1,) mean the type does not exist in the region.
    """
    if desc is None or not desc.national_number_pattern:
        return None
    lengths = tuple(sorted({n for n in (desc.possible_length or ()) if n > 0}))
    if desc.possible_length and not lengths:
        return None
    return lengths


def _phone_test_sql(nsn: str, lengths: tuple[int, ...], patterns: list[str]) -> str:
    """SQL: ``nsn`` has one of ``lengths`` (any if empty) and matches a pattern."""
    regex = "|".join(f"(?:{pattern})" for pattern in patterns)
    test = f"{nsn} ~ '^(?:{regex})$'"
    if lengths:
        test = f"char_length({nsn}) IN ({', '.join(map(str, lengths))}) AND {test}"
    return f"({test})"


def _phone_region_sql(nsn: str, metadata: Any) -> str:
    """SQL: the national number ``nsn`` has a type in the region.

    phonenumbers' ``_number_type_helper``: the general description, then any of
    the number types. Types allowing the same lengths share one regex: the
    database keeps only a few dozen compiled, and the default region's must stay.
    """
    if metadata is None:
        return "FALSE"
    general = _phone_desc_lengths(metadata.general_desc)
    by_lengths: dict[tuple[int, ...], list[str]] = {}
    for kind in PHONE_NUMBER_TYPES:
        desc = getattr(metadata, kind, None)
        lengths = _phone_desc_lengths(desc)
        if lengths is not None:
            by_lengths.setdefault(lengths, []).append(desc.national_number_pattern)
    if general is None or not by_lengths:
        return "FALSE"
    general_test = _phone_test_sql(
        nsn, general, [metadata.general_desc.national_number_pattern]
    )
    types = " OR ".join(
        _phone_test_sql(nsn, lengths, patterns)
        for lengths, patterns in by_lengths.items()
    )
    return f"({general_test} AND ({types}))"


@functools.cache
def _phone_valid_template() -> str:
    """SQL over ``{phone}`` (an E.164 column), true for a valid number.

    Built from phonenumbers' own metadata: per country calling code, the test of
    ``is_valid_number`` on the national number as stored. The default region's
    code comes first (most numbers stop there). The patterns are literals (digits,
    classes, groups: no quote, no percent sign), so the regexes are constants the
    database compiles once.
    """
    default_code = phonenumbers.country_code_for_region(
        settings.PHONENUMBER_DEFAULT_REGION
    )
    codes = sorted(
        phonenumbers.COUNTRY_CODE_TO_REGION_CODE,
        key=lambda code: (code != default_code, code),
    )
    branches = []
    for code in codes:
        prefix = f"+{code}"
        nsn = f"substr({{phone}}, {len(prefix) + 1})"
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]
        if regions == (phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY,):
            metadata = phonenumbers.PhoneMetadata.metadata_for_nongeo_region(code)
            test = _phone_region_sql(nsn, metadata)
        elif len(regions) == 1:
            metadata = phonenumbers.PhoneMetadata.metadata_for_region(regions[0])
            test = _phone_region_sql(nsn, metadata)
        else:
            # As region_code_for_number: the first region whose leading digits
            # match decides; a region without them is chosen if the number has a
            # type there.
            whens = []
            for region in regions:
                metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
                if metadata is None:
                    continue
                valid = _phone_region_sql(nsn, metadata)
                if metadata.leading_digits:
                    lead = f"{nsn} ~ '^(?:{metadata.leading_digits})'"
                    whens.append(f"WHEN {lead} THEN {valid}")
                else:
                    whens.append(f"WHEN {valid} THEN TRUE")
            test = f"(CASE {' '.join(whens)} ELSE FALSE END)" if whens else "FALSE"
        branches.append(f"WHEN left({{phone}}, {len(prefix)}) = '{prefix}' THEN {test}")
    template = f"(CASE {' '.join(branches)} ELSE FALSE END)"
    if "%" in template or template.count("'") % 2:
        raise ImproperlyConfigured("phonenumbers' patterns need quoting in SQL")
    return template


def phone_valid_sql(column: str) -> str:
    """SQL true when ``column`` (an E.164 phone) holds a valid number.

    The rule is :data:`PHONE_RULE`: what ``customers.validators.validate_phone``
    accepts.
    """
    return _phone_valid_template().replace("{phone}", column)


def phone_valid_expression(field: str = "phone") -> RawSQL:
    """``phone_valid_sql`` of the customer's ``field``, for ``alias()``."""
    quote = connection.ops.quote_name
    column = f"{quote(Customer._meta.db_table)}.{quote(field)}"
    # The SQL is built from phonenumbers' metadata, never from input.
    return RawSQL(  # noqa: S611
        phone_valid_sql(column), (), output_field=BooleanField()
    )


#: What makes a stored email invalid, in words.
EMAIL_RULE = (
    "Not an address Django's EmailValidator accepts (the check of every form and"
    " import): at most 320 characters; the part before the last @ a dot-atom or a"
    " quoted string; the domain a host name with a top-level domain of letters,"
    " localhost, or an IP address in brackets (an approximation: dotted IPv4 with"
    " numbers up to 255, or hex digits, dots and colons for IPv6)."
)
# Django's own patterns (the project's validator is Django's): PostgreSQL's
# regular expressions read them alike (lookahead, lookbehind, \Z, octal escapes),
# case-insensitively (~*) as Python's re.IGNORECASE.
_EMAIL_USER_RE = EmailValidator.user_regex.pattern
_EMAIL_DOMAIN_RE = EmailValidator.domain_regex.pattern
_EMAIL_IPV4_RE = (
    r"^\[(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
    r"(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}\]$"
)
_EMAIL_IPV6_RE = r"^\[[0-9a-f.]*:[0-9a-f:.]*:[0-9a-f:.]*\]$"
# Plain addresses (ASCII dot-atom @ ASCII host names, a top-level domain of
# letters) of at most 64 characters (so no label can pass 63) are valid by
# Django's rules too: one cheap match settles almost every row, and only the
# rest is read with Django's slower patterns (bounded repeats make PostgreSQL's
# regular expressions slow: 8 µs an address against 0.5).
_EMAIL_PLAIN_RE = (
    r"^[a-z0-9_+=-]+(\.[a-z0-9_+=-]+)*@([a-z0-9]+(-+[a-z0-9]+)*\.)+[a-z][a-z]+$"
)
_EMAIL_PLAIN_LENGTH = 64


def email_invalid(queryset: QuerySet) -> QuerySet:
    """``queryset``'s customers whose email is given and invalid (:data:`EMAIL_RULE`).

    The address is split at its last @ in SQL, and each part is matched with
    Django's own regular expressions.
    """
    at = StrIndex(Reverse("email"), Value("@"))
    valid = (
        Q(quality_email_at__gt=0)
        & Q(quality_email_length__lte=320)
        & Q(quality_email_user__iregex=_EMAIL_USER_RE)
        & (
            Q(quality_email_domain__in=EmailValidator.domain_allowlist)
            | Q(quality_email_domain__iregex=_EMAIL_DOMAIN_RE)
            | Q(quality_email_domain__iregex=_EMAIL_IPV4_RE)
            | Q(quality_email_domain__iregex=_EMAIL_IPV6_RE)
        )
    )
    plain = Q(quality_email_length__lte=_EMAIL_PLAIN_LENGTH) & Q(
        email__iregex=_EMAIL_PLAIN_RE
    )
    return (
        queryset.filter(email__isnull=False)
        .alias(
            quality_email_at=at,
            quality_email_length=Length("email"),
            quality_email_user=Left("email", Length("email") - at),
            quality_email_domain=Right("email", at - 1),
        )
        .exclude(plain)
        .filter(~valid)
    )


# --- Checks --------------------------------------------------------------------------

#: Who sees the quality pages: the Manager and the data protection officer.
VIEW_PERMISSION = "customers.view_duplicatecandidate"


@dataclass(frozen=True)
class QualityColumn:
    """One column of a check's list and CSV file.

    ``name`` heads the CSV column, ``label`` the page's; ``value(row)`` is what the
    file holds, ``display(row)`` (default: the value) what the page shows.
    """

    name: str
    label: StrOrPromise
    value: Callable[[Any], Any]
    display: Callable[[Any], Any] | None = None

    def shown(self, row: Any) -> Any:
        return (self.display or self.value)(row)


def _customer_url(customer: Any) -> str:
    return reverse("customers:detail", args=[customer.pk])


def _own_id(customer: Any) -> list[int]:
    return [customer.pk]


@dataclass(frozen=True)
class QualityCheck:
    """One data quality check: what the quality pages count and list for it.

    ``rule()`` gives the records that fail the check now (a queryset of
    ``model``); the scan keeps their ids (``QualityFinding``), and the list shows
    those, as ``prepare`` readies them for ``columns``, newest first, marking the
    ones that pass since (``recheck(ids)`` if the rule over all records is not
    the way to check a page of them). A check with
    ``listing`` instead keeps its own table (the duplicate pairs): the list is
    ``listing()``. ``customer_ids(row)`` names whose personal data a row shows
    (the access log hears of them), ``url(row)`` the page a row links to. Staff
    need every permission in ``permissions`` to see the check, and those of
    ``export_permissions`` too for its CSV file.
    """

    code: str
    label: StrOrPromise
    help_text: StrOrPromise
    model: Any
    columns: tuple[QualityColumn, ...]
    rule: Callable[[], QuerySet] | None = None
    recheck: Callable[[Sequence[int]], QuerySet] | None = None
    listing: Callable[[], QuerySet] | None = None
    prepare: Callable[[QuerySet], QuerySet] = lambda queryset: queryset
    customer_ids: Callable[[Any], Iterable[int]] = _own_id
    url: Callable[[Any], str] = _customer_url
    permissions: tuple[str, ...] = (VIEW_PERMISSION,)
    export_permissions: tuple[str, ...] = ("customers.export_customer",)
    template: str = "customers/quality_list.html"
    position: int = 100

    @property
    def stored(self) -> bool:
        return self.listing is None

    def visible_to(self, user: Any) -> bool:
        return user.has_perms(self.permissions)

    def exportable_by(self, user: Any) -> bool:
        return self.visible_to(user) and user.has_perms(self.export_permissions)

    def found(self) -> QuerySet:
        """What the list shows: the records found at the last scan, newest first."""
        if self.listing is not None:
            return self.listing()
        found_ids = QualityFinding.objects.filter(code=self.code).values("object_id")
        return self.prepare(
            self.model._default_manager.filter(pk__in=Subquery(found_ids))
        ).order_by("-pk")

    def count(self) -> int:
        """How many the list holds."""
        if self.listing is not None:
            return self.listing().order_by().count()
        return QualityFinding.objects.filter(code=self.code).count()

    def still_failing(self, ids: Sequence[int]) -> set[int]:
        """Which of ``ids`` (listed records) fail the check now, not only then.

        ``recheck(ids)``, if given, is the rule for a few records where ``rule()``
        is written for all of them at once.
        """
        if self.rule is None or not ids:
            return set(ids)
        failing = self.recheck(ids) if self.recheck else self.rule().filter(pk__in=ids)
        return set(failing.values_list("pk", flat=True))


_CHECKS: dict[str, QualityCheck] = {}


def register_check(check: QualityCheck) -> QualityCheck:
    """Add ``check`` to the quality pages (one of the same code is replaced)."""
    _CHECKS[check.code] = check
    return check


def quality_checks(user: Any = None) -> list[QualityCheck]:
    """The registered checks in page order; those ``user`` may see, if given."""
    checks = sorted(_CHECKS.values(), key=lambda check: (check.position, check.code))
    return [check for check in checks if user is None or check.visible_to(user)]


def quality_check(code: str) -> QualityCheck | None:
    return _CHECKS.get(code)


# --- The customers app's own checks -------------------------------------------------


def open_duplicates() -> QuerySet:
    """Likely duplicate pairs both of whose records are still there.

    Neither merged nor erased since the scan; grouped by reason (by its code: the
    order of the ``duplicate_reason_idx`` index, so a page is read from it, not
    sorted from every pair), likeliest first.
    """
    return DuplicateCandidate.objects.filter(
        customer__merged_into__isnull=True,
        customer__erased_at__isnull=True,
        other__merged_into__isnull=True,
        other__erased_at__isnull=True,
    ).order_by("reason", "-score", "customer_id", "other_id")


def with_city(queryset: QuerySet) -> QuerySet:
    """Customers with ``quality_city``: their default shipping (else billing) town."""
    return queryset.annotate(
        quality_city=Subquery(
            Address.objects.filter(customer=OuterRef("pk"), is_default=True)
            .order_by("-kind")  # shipping before billing
            .values("city")[:1]
        )
    )


def _name(customer: Any) -> str:
    return customer.full_name or customer.company


def _name_shown(customer: Any) -> str:
    return _name(customer) or f"#{customer.pk}"


NAME_COLUMN = QualityColumn("name", pgettext_lazy("person", "Name"), _name, _name_shown)
ID_COLUMN = QualityColumn("customer_id", _("ID"), lambda c: c.pk)
#: A customer list's columns: the page links the first (the name).
CUSTOMER_COLUMNS = (
    NAME_COLUMN,
    QualityColumn("email", _("Email"), lambda c: c.email or ""),
    QualityColumn(
        "phone", _("Phone"), lambda c: c.phone, lambda c: format_phone(c.phone)
    ),
    QualityColumn("city", _("City"), lambda c: c.quality_city or ""),
    QualityColumn("created_at", _("Created"), lambda c: c.created_at),
    ID_COLUMN,
)


def _pair_columns(side: str, label: StrOrPromise) -> tuple[QualityColumn, ...]:
    def value(name: str) -> Callable[[Any], Any]:
        return lambda pair: getattr(getattr(pair, side), name) or ""

    return (
        QualityColumn(f"{side}_id", label, lambda pair: getattr(pair, f"{side}_id")),
        QualityColumn(
            f"{side}_name",
            pgettext_lazy("person", "Name"),
            lambda pair: _name(getattr(pair, side)),
        ),
        QualityColumn(f"{side}_email", _("Email"), value("email")),
        QualityColumn(f"{side}_phone", _("Phone"), value("phone")),
        QualityColumn(f"{side}_created_at", _("Created"), value("created_at")),
    )


DUPLICATE_COLUMNS = (
    QualityColumn("reason", _("Why"), lambda pair: pair.reason),
    QualityColumn("key", _("Shared value"), lambda pair: pair.key),
    QualityColumn("score", _("Name similarity"), lambda pair: pair.score),
    QualityColumn("found_at", _("Found at"), lambda pair: pair.found_at),
    *_pair_columns("customer", _("Customer")),
    *_pair_columns("other", _("Likely the same as")),
)


def _invalid_phones() -> QuerySet:
    # Checked in the order of the phone index: numbers of one country follow each
    # other, so the database compiles each country's patterns once, not again and
    # again as countries take turns in its small cache of regular expressions.
    quote = connection.ops.quote_name
    table = quote(Customer._meta.db_table)
    ids = RawSQL(  # noqa: S611 - no input in it
        f"SELECT s.id FROM (SELECT c.id, c.phone FROM {table} c"  # noqa: S608
        " WHERE c.phone <> '' AND c.merged_into_id IS NULL"
        " AND c.erased_at IS NULL ORDER BY c.phone OFFSET 0) s"
        f" WHERE NOT {phone_valid_sql('s.phone')}",
        (),
    )
    return Customer.objects.filter(pk__in=ids)


def _invalid_phones_among(ids: Sequence[int]) -> QuerySet:
    return (
        Customer.objects.not_merged()
        .not_erased()
        .filter(pk__in=ids)
        .exclude(phone="")
        .alias(quality_phone_valid=phone_valid_expression())
        .filter(quality_phone_valid=False)
    )


def _no_contact() -> QuerySet:
    return (
        Customer.objects.processable()
        .filter(email__isnull=True, phone="")
        .exclude(Exists(Address.objects.filter(customer=OuterRef("pk"))))
    )


register_check(
    QualityCheck(
        code="duplicates",
        label=_("Likely duplicates"),
        help_text=_(
            "Pairs of customers that are probably one person: the same email or "
            "phone, or similar names at the same postcode or street. Compare them "
            "and merge."
        ),
        model=DuplicateCandidate,
        listing=open_duplicates,
        columns=DUPLICATE_COLUMNS,
        customer_ids=lambda pair: [pair.customer_id, pair.other_id],
        url=lambda pair: reverse("customers:detail", args=[pair.customer_id]),
        template="customers/quality_duplicates.html",
        position=10,
    )
)
register_check(
    QualityCheck(
        code="invalid-email",
        label=_("Invalid emails"),
        help_text=_(
            "Email addresses that are not valid addresses (as a form would reject "
            "them): no message can reach them."
        ),
        model=Customer,
        rule=lambda: email_invalid(Customer.objects.not_merged().not_erased()),
        prepare=with_city,
        columns=CUSTOMER_COLUMNS,
        position=20,
    )
)
register_check(
    QualityCheck(
        code="invalid-phone",
        label=_("Invalid phones"),
        help_text=_(
            "Phone numbers that are not valid numbers of their country (wrong "
            "length or prefix), though written in international form."
        ),
        model=Customer,
        rule=_invalid_phones,
        recheck=_invalid_phones_among,
        prepare=with_city,
        columns=CUSTOMER_COLUMNS,
        position=40,
    )
)
register_check(
    QualityCheck(
        code="no-contact",
        label=_("No way to contact"),
        help_text=_(
            "Customers with no email, no phone and no postal address (erased, "
            "restricted and merged-away records left out)."
        ),
        model=Customer,
        rule=_no_contact,
        prepare=with_city,
        columns=(
            NAME_COLUMN,
            QualityColumn(
                "status",
                _("Status"),
                lambda c: c.status,
                lambda c: c.get_status_display(),
            ),
            QualityColumn("created_at", _("Created"), lambda c: c.created_at),
            QualityColumn("last_seen_at", _("Last seen"), lambda c: c.last_seen_at),
            ID_COLUMN,
        ),
        position=50,
    )
)


# --- The scan run ------------------------------------------------------------------


def quality_findings_refresh(*, check: QualityCheck) -> int:
    """Replace ``check``'s stored findings with what its rule finds now; how many.

    Set-based, in one transaction: findings that still hold keep ``found_at``.
    """
    if check.rule is None:
        return check.count()
    try:
        query, params = (
            check.rule().order_by().values_list("pk").query.sql_with_params()
        )
    except EmptyResultSet:  # a rule that knows it finds nothing (none())
        query, params = "SELECT NULL::bigint WHERE false", ()
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS quality_found_ids")
        cursor.execute(f"CREATE TEMP TABLE quality_found_ids (id) AS {query}", params)
        cursor.execute(
            "DELETE FROM customers_qualityfinding f WHERE f.code = %s AND NOT EXISTS"
            " (SELECT 1 FROM quality_found_ids i WHERE i.id = f.object_id)",
            [check.code],
        )
        cursor.execute(
            "INSERT INTO customers_qualityfinding (code, object_id, found_at)"
            " SELECT DISTINCT %s, id, %s::timestamptz FROM quality_found_ids"
            " ON CONFLICT (code, object_id) DO NOTHING",
            [check.code, now],
        )
        cursor.execute("SELECT count(DISTINCT id) FROM quality_found_ids")
        (count,) = cursor.fetchone()
        cursor.execute("DROP TABLE quality_found_ids")
    return count


def quality_scan() -> QualityScan:
    """The whole data quality scan: duplicates, every check's findings, the record.

    Run by ``customers.tasks.duplicates_scan_task`` (nightly, and from the quality
    page's "Scan now"). The ``QualityScan`` row is written first (the page shows
    that a scan is running) and completed at the end; the last
    :data:`SCANS_KEPT` are kept. Findings of checks no longer registered go.
    """
    scan = QualityScan.objects.create()
    started = time.perf_counter()
    duplicates = duplicates_scan()
    scan.duplicates_seconds = round(time.perf_counter() - started, 3)
    counts = {}
    for check in quality_checks():
        counts[check.code] = quality_findings_refresh(check=check)
    with transaction.atomic():
        QualityFinding.objects.exclude(code__in=list(counts)).delete()
        scan.duplicates = duplicates
        scan.counts = counts
        scan.finished_at = timezone.now()
        scan.save(
            update_fields=["duplicates", "counts", "duplicates_seconds", "finished_at"]
        )
        old = QualityScan.objects.order_by("-started_at", "-pk").values_list(
            "pk", flat=True
        )[SCANS_KEPT:]
        QualityScan.objects.filter(pk__in=list(old)).delete()
    logger.info(
        "Data quality scan: duplicates %s in %.1f s; findings %s",
        duplicates,
        scan.duplicates_seconds,
        counts,
    )
    return scan
