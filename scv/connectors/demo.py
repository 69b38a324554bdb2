"""Synthetic multi-channel traffic with the ground truth kept *outside* the events.

The demo, load tests and accuracy checks need traffic that looks like what web collectors, an
email service provider, the commerce platform and a call-centre CTI really send: people who
browse anonymously and log in later, abandon carts, click campaign links on a new browser,
phone in from a number typed five different ways (or withheld), share a tablet with their
partner, and some junk and broken messages in between. Each :class:`DemoEvent` carries the
raw bytes exactly as a source would produce them plus ``person_id`` — who really produced the
event — which is never written into the payload, so a resolver can be scored honestly
against it (see :mod:`scv.connectors.truth`).

Design rules that keep the truth honest:

* every identifier value (cookie, device, email, phone, customer id) belongs to one person;
  the deliberate exceptions are what a household shares: a tablet's ``device_id``, and with
  ``households`` (a share of people living in households of 2-4) a family email, a landline
  and a tablet's browser cookie. Each member has their own customer id (the resolver must
  not merge two), and family values are what members really type: orders to the family
  address, calls from the landline, mailings to the family inbox, logins on the tablet;
* junk values (``test@test.com``, ``0000000000``, the call-centre's own number …) are sprinkled
  over many people, so any link made through them is a false merge;
* some events are legitimately unlinkable by identifiers (a cookie that never logs in, a call
  from a number never seen elsewhere or withheld): :func:`linkability` measures the share a
  perfect deterministic resolver could attach, so an observed recall can be read against its
  ceiling.

This is the ``demo`` profile, shaped so that the identity rules can be checked exactly. The
``realistic`` profile (:mod:`scv.connectors.realistic`, ``generate(..., profile="realistic")``)
is a German retailer's customer base with what the demo leaves out: households of about 40 %
of people, call-centre agents typing the same placeholder for dozens of callers, typos and
German phone formats. Its truth says more: ``DemoEvent.household_id`` and
``DemoEvent.placeholders``, and :func:`linkability` reports a *personal* ceiling where values
several people use and placeholders never link.

The module is pure Python (no Kafka); everything is drawn from ``random.Random(seed)`` so a
seed reproduces the byte-identical stream (except that ``start_ts`` defaults to now).
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = [
    "BLOCKED_VALUES",
    "CALL_CENTRE_NUMBER",
    "KEY_FIELDS",
    "PROFILES",
    "DemoEvent",
    "generate",
    "linkability",
]

#: The call-centre's own outbound number: CTI systems log it when caller id is withheld.
CALL_CENTRE_NUMBER = "+44 20 7946 0000"
_JUNK_EMAILS = ("test@test.com", "noreply@example.com")
_JUNK_PHONES = ("0000000000", "unknown", "n/a", CALL_CENTRE_NUMBER)
_JUNK_COOKIES = ("null", "unknown")
#: The customer bases :func:`generate` can produce.
PROFILES = ("demo", "realistic")
#: Share of calls from a withheld number (no caller id): placed only by what the caller says.
WITHHELD_SHARE = 0.1

#: Values that must never link anything (compared after trim + lower-case; phones also E.164).
BLOCKED_VALUES = frozenset(
    {"test@test.com", "noreply@example.com", "0000000000", "null", "unknown", "n/a"}
)
_BLOCKED_E164 = frozenset({"+442079460000"})

_FIRST = (  # noqa: SIM905 (a word list reads better than a 60-line literal)
    "James Oliver Harry Jack George Noah Charlie Jacob Alfie Freddie Oscar Leo Thomas William "
    "Henry Arthur Daniel Samuel Joseph Ethan Olivia Amelia Isla Ava Emily Sophia Grace Lily "
    "Mia Poppy Ella Chloe Evie Jessica Isabella Ruby Sophie Charlotte Freya Alice Hannah "
    "Priya Aisha Fatima Mohammed Ali Zara Ewan Niamh Siobhan Rhys Megan Callum Eilidh Seren "
    "Dylan"
).split()
_LAST = (  # noqa: SIM905 (a word list reads better than a 60-line literal)
    "Smith Jones Taylor Brown Williams Wilson Johnson Davies Robinson Wright Thompson Evans "
    "Walker White Roberts Green Hall Wood Jackson Clarke Patel Khan Lewis James Phillips "
    "Mason Mitchell Rose Davis Rodriguez Cox Alexander Morgan Hughes Edwards Hill Moore Clark "
    "Harrison Scott Young Morris Ward Turner Carter Cooper Murphy Kelly O'Brien McDonald "
    "Campbell Stewart Anderson Macleod Fraser Singh Ahmed Begum Nowak Kowalski"
).split()
_STREETS = (  # noqa: SIM905
    "High Street,Station Road,Church Lane,Victoria Road,Green Lane,Manor Road,Park Avenue,"
    "Queens Road,Kings Road,Mill Lane,The Crescent,Alexandra Road,York Road,London Road"
).split(",")
_AREAS = (
    ("SW", "London"),
    ("SE", "London"),
    ("N", "London"),
    ("E", "London"),
    ("NW", "London"),
    ("M", "Manchester"),
    ("B", "Birmingham"),
    ("LS", "Leeds"),
    ("G", "Glasgow"),
    ("EH", "Edinburgh"),
    ("BS", "Bristol"),
    ("CF", "Cardiff"),
    ("L", "Liverpool"),
    ("NG", "Nottingham"),
    ("S", "Sheffield"),
    ("OX", "Oxford"),
    ("CB", "Cambridge"),
    ("BT", "Belfast"),
)
_POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
_MAIL_DOMAINS = ("gmail.com", "yahoo.co.uk", "hotmail.co.uk", "outlook.com", "btinternet.com")
_WORK_DOMAINS = ("acme-corp.co.uk", "nhs.net", "gov.uk", "uni.ac.uk", "bigbank.com")
_PRODUCT_WORDS = (  # noqa: SIM905
    "Merino Jumper,Rain Jacket,Trail Shoes,Denim Jeans,Linen Shirt,Wool Scarf,Leather Belt,"
    "Canvas Tote,Running Socks,Cotton Tee,Puffer Vest,Chino Shorts,Knit Beanie,Silk Tie,"
    "Ankle Boots,Hoodie,Swim Shorts,Gilet,Pyjama Set,Sun Hat"
).split(",")
_COLOURS = ("Navy", "Black", "Grey", "Olive", "Red", "Cream")
_SITE = "https://www.northwind-outfitters.co.uk"
_DISPOSITIONS = ("inquiry", "complaint", "purchase", "other")
_DISPOSITION_WEIGHTS = (50, 20, 15, 15)
#: How a UK mobile is typed (``n``: the 10 national digits; ``a`` ``b``: 4 + 6 of them,
#: ``c`` ``d``: the 6 as 3 + 3), one form as likely as another.
_PHONE_FORMS = (
    "{e164}",
    "+44 {a} {b}",
    "0{a} {b}",
    "0044 {a}-{c}-{d}",
    "(0{a}) {b}",
    "0{n}",
    "+44 (0){a} {b}",
)
_CHURN_NOTES = (
    "wants to cancel membership, price too high",
    "asked how to close account",
    "cancel subscription - moving to competitor",
)


@dataclass(slots=True)
class DemoEvent:
    """One message for ``raw.<source>.v1`` plus who really produced it.

    ``person_id`` is None for junk-only traffic (QA test orders, calls from the call-centre's
    own line) and for malformed messages; ``event_id`` is None when the bytes carry no readable
    id (invalid JSON, truncated). ``household_id`` is the true household of the person (None
    for people living alone), so household detection can be scored too; ``placeholders``
    names the payload fields that hold a value typed *instead* of the person's own (an
    agent's ``keine@mail.de``, a checkout's ``0123456789``): such a value identifies nobody,
    and :func:`linkability` must not count a link through it. The truth never appears inside
    ``value``.
    """

    source: str
    key: bytes | None
    value: bytes
    event_id: str | None
    person_id: str | None
    malformed: bool
    household_id: str | None = None
    placeholders: tuple[str, ...] = ()


@dataclass(slots=True)
class _Person:
    pid: str
    first: str
    last: str
    birth: str
    address: dict[str, str]
    emails: list[str]
    phone: str  # canonical E.164; events show it in many formats
    cid: str | None
    cookies: list[str]  # cookies[0] is the app's install id when ``device`` is set
    device: str | None
    consent: bool
    #: cookies that appear in the person's journeys (fillers reuse only these)
    seen: list[str] = field(default_factory=list)
    #: cookies that a login/signup tied to the customer id
    logged: list[str] = field(default_factory=list)
    #: cookies tied to a stronger identifier by any event (login, order, campaign click)
    linked: list[str] = field(default_factory=list)
    known_emails: list[str] = field(default_factory=list)  # addresses linked by an event
    shared_device: str | None = None
    household: _Household | None = None
    #: a home phone (canonical E.164): a household's shared landline or a single's own
    landline: str | None = None
    #: the one misspelling of an address an agent made for this person (reused at most once)
    typo: str | None = None


@dataclass(slots=True)
class _Household:
    """What 2-4 people living together share; each keeps their own ids as well."""

    family_email: str | None
    landline: str | None  # canonical E.164 (a London number in the demo profile)
    tablet: str | None  # the browser cookie of a tablet every member logs in on
    hid: str = ""  # the truth's household id (never in a payload)
    device: str | None = None  # the shop app's install id on the tablet, if installed


# A planned event: (source, payload without timestamp, person index or -1).
_Planned = tuple[str, dict[str, Any], int]
_Session = list[_Planned]


class _Agent:
    """A call-centre agent and their habits: what they type when the caller gives nothing
    (the demo profile's agents have none: ``emails`` and ``phones`` stay empty)."""

    __slots__ = ("aid", "emails", "phones")

    def __init__(self, aid: str, emails: list[str], phones: list[str]) -> None:
        self.aid = aid
        self.emails = emails  # favourite first
        self.phones = phones


#: A count to draw and its weights (``rng.choices(*counts)[0]``).
_Counts = tuple[tuple[int, ...], tuple[int, ...]]


class _Generator:
    """Holds the rng and the id registries; one instance per :func:`generate` call.

    The class attributes are what a profile's shop and customers look like, the methods
    whose docstring says "hook" what a profile does differently; the realistic profile
    (:mod:`scv.connectors.realistic`) overrides both and its own people and households, and
    shares everything else. A profile's stream is pinned byte for byte, so a hook that a
    profile does not use draws nothing from the rng.
    """

    currency = "GBP"
    site = _SITE
    brand = "Northwind"
    paths: tuple[str, ...] = ("/", "/new-in", "/sale", "/women", "/men", "/help/delivery")
    home_title = "home"
    login_path, login_title = "/account/login", "Sign in"
    order_number = ("ORD-", 10)  # prefix, digits
    # ---- how customers behave (shares of a chance, counts as (values, weights)) ----
    churn_share = 0.06
    shop_sessions: _Counts = ((1, 2, 3), (55, 35, 10))
    login_share = 0.9  # of a registered customer's shop sessions
    return_share = 0.05
    #: households' members who put the family inbox on the newsletter list
    family_newsletter_share = 0.0
    call_share = 0.25
    calls: _Counts = ((1, 2), (75, 25))
    tablet_sessions: _Counts = ((1, 2), (70, 30))
    tablet_pages = (1, 3)
    #: a member logs in on the family tablet (1.0: whenever they have an account) ...
    tablet_login_share = 1.0
    #: ... and the pages after the login carry their customer id
    tablet_pages_logged_in = False
    order_email_share = 0.75  # of orders placed with an account (guests always give one)
    order_family_email_share = 0.5
    order_phone_share = 0.7
    order_landline_share = 0.4
    order_birth_share = 0.4
    order_address_share = 0.85
    #: a required checkout field filled with :attr:`form_emails` / :attr:`form_phones`
    checkout_placeholder_share = 0.0
    withheld_share = WITHHELD_SHARE
    call_landline_share = 0.6
    call_cid_share = 0.7
    withheld_cid_share = 0.2
    churn_notes = _CHURN_NOTES
    dispositions = _DISPOSITIONS
    disposition_weights = _DISPOSITION_WEIGHTS
    # ---- junk ----
    #: junk values are placeholders in the truth (True), or values the demo's blocklist
    #: names, left unmarked (the demo's truth has no placeholders)
    marks_junk = False
    junk_cookies: tuple[str, ...] = _JUNK_COOKIES
    junk_mail_emails: tuple[str, ...] = _JUNK_EMAILS  # () : mail events keep their address
    form_emails: tuple[str, ...] = _JUNK_EMAILS
    form_phones: tuple[str, ...] = _JUNK_PHONES[:3]
    qa_emails: tuple[str, ...] = _JUNK_EMAILS  # a QA test order's

    def __init__(self, rng: random.Random, seed: int) -> None:
        self.rng = rng
        self.seed = seed
        self.used_ids: set[str] = set()
        self.used_emails: set[str] = set()
        self.used_phones: set[str] = set()
        self.products = self.catalogue(_PRODUCT_WORDS, _COLOURS, "{colour} {name}", (8, 180))
        self.campaigns = [f"cmp-2026-{i:03d}" for i in range(1, 25)]
        self.agents = [f"agent-{i:03d}" for i in range(1, 41)]
        #: id of an event dict -> (the dict, its payload fields that hold a placeholder); the
        #: dict is kept so that its id cannot be reused by another (a truncated session's)
        self.marks: dict[int, tuple[dict[str, Any], list[str]]] = {}
        self.n_households = 0

    def catalogue(
        self, words: Iterable[str], colours: Iterable[str], shape: str, prices: tuple[float, float]
    ) -> list[tuple[str, str, float]]:
        """Three (sku, name, price) products per word, each in a random colour."""
        rng = self.rng
        return [
            (
                f"SKU-{rng.randrange(10**6):06d}",
                shape.format(colour=rng.choice(tuple(colours)), name=name),
                round(rng.uniform(*prices), 2),
            )
            for name in words
            for _ in range(3)
        ]

    def mark(self, ev: dict[str, Any], field_name: str) -> None:
        """Record that ``field_name`` of ``ev`` holds a placeholder, not the person's value."""
        _, fields = self.marks.setdefault(id(ev), (ev, []))
        if field_name not in fields:
            fields.append(field_name)

    def mark_junk(self, ev: dict[str, Any], field_name: str, value: str) -> None:
        """Put a junk ``value`` into ``field_name``, marked when the profile says so."""
        ev[field_name] = value
        if self.marks_junk:
            self.mark(ev, field_name)

    def login_page(self) -> dict[str, str]:
        return {"url": f"{self.site}{self.login_path}", "title": self.login_title}

    # ---- ids ------------------------------------------------------------------------------
    def uid(self, prefix: str, bits: int = 64) -> str:
        """A unique random id; the registry makes collisions impossible, not just unlikely."""
        while True:
            value = f"{prefix}{self.rng.getrandbits(bits):0{bits // 4}x}"
            if value not in self.used_ids:
                self.used_ids.add(value)
                return value

    def cookie(self) -> str:
        h = self.uid("", 128)
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def customer_id(self) -> str:
        while True:
            value = f"C{self.rng.randrange(10**10):010d}"
            if value not in self.used_ids:
                self.used_ids.add(value)
                return value

    # ---- people ---------------------------------------------------------------------------
    def population(self, n: int) -> list[_Person]:
        """The customer base: ``n`` people (households are formed afterwards, if asked)."""
        return [self.person(i) for i in range(n)]

    def person(self, index: int) -> _Person:
        rng = self.rng
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        area, city = rng.choice(_AREAS)
        postcode = (
            f"{area}{rng.randint(1, 20)} {rng.randint(1, 9)}"
            f"{rng.choice(_POSTCODE_LETTERS)}{rng.choice(_POSTCODE_LETTERS)}"
        )
        address = {
            "street": f"{rng.randint(1, 220)} {rng.choice(_STREETS)}",
            "city": city,
            "postcode": postcode,
            "country": "GB",
        }
        local = f"{first}.{last}".lower().replace("'", "")
        emails = [self._email(local, _MAIL_DOMAINS)]
        if rng.random() < 0.3:
            emails.append(self._email(f"{first[0]}{last}".lower().replace("'", ""), _WORK_DOMAINS))
        while True:
            phone = f"+447{rng.choice('458')}{rng.randrange(10**8):08d}"
            if phone not in self.used_phones:
                self.used_phones.add(phone)
                break
        n_cookies = rng.choices((1, 2, 3), (50, 35, 15))[0]
        device = self.uid("dev-") if rng.random() < 0.25 else None
        return _Person(
            pid=f"p{self.seed}-{index:06d}",
            first=first,
            last=last,
            birth=f"{rng.randint(1940, 2006)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            address=address,
            emails=emails,
            phone=phone,
            cid=self.customer_id() if rng.random() < 0.85 else None,
            cookies=[self.cookie() for _ in range(n_cookies)],
            device=device,
            consent=rng.random() < 0.8,
        )

    def form_households(self, persons: list[_Person], share: float) -> None:
        """Put about ``share`` of ``persons`` into households of 2-4 living at one address,
        most with one surname, sharing a family email, a landline and (half) a tablet."""
        rng = self.rng
        pool = [p for p in persons if rng.random() < share]
        rng.shuffle(pool)
        while len(pool) >= 2:
            size = min(len(pool), rng.choices((2, 3, 4), (50, 30, 20))[0])
            members, pool = pool[:size], pool[size:]
            head = members[0]
            family = self._email(f"{head.last}.family".lower().replace("'", ""), _MAIL_DOMAINS)
            while True:
                landline = f"+4420{rng.choice('378')}{rng.randrange(10**7):07d}"
                if landline not in self.used_phones:
                    self.used_phones.add(landline)
                    break
            tablet = self.cookie() if rng.random() < 0.5 else None
            home = _Household(family, landline, tablet, hid=self.household_id())
            for p in members:
                p.household = home
                p.landline = landline
                p.address = dict(head.address)
                if rng.random() < 0.7:
                    p.last = head.last

    def household_id(self) -> str:
        """The next household's truth id (no rng: the demo stream stays byte-identical)."""
        self.n_households += 1
        return f"h{self.seed}-{self.n_households:05d}"

    def _email(self, local: str, domains: tuple[str, ...]) -> str:
        rng = self.rng
        candidate = f"{local}@{rng.choice(domains)}"
        while candidate in self.used_emails:
            candidate = f"{local}{rng.randint(1, 9999)}@{rng.choice(domains)}"
        self.used_emails.add(candidate)
        return candidate

    # ---- noise ----------------------------------------------------------------------------
    def email_as_typed(self, email: str) -> str:
        """How a form or CRM hands the address over: mostly clean, sometimes not."""
        r = self.rng.random()
        if r < 0.75:
            return email
        local, _, domain = email.partition("@")
        if r < 0.85:
            return f"{local.title()}@{domain.capitalize()}"
        if r < 0.93:
            return f"  {local.title()}@{domain.upper()}"
        return f"{email.upper()} "

    def phone_as_typed(self, e164: str) -> str:
        """Hook: the same mobile in the formats agents and checkout forms really produce."""
        n = e164[3:]  # national significant number, 10 digits starting with 7
        form = _PHONE_FORMS[self.rng.randrange(len(_PHONE_FORMS))]
        return form.format(e164=e164, n=n, a=n[:4], b=n[4:], c=n[4:7], d=n[7:])

    def name_as_typed(self, name: str) -> str:
        """Names are attributes, not identifiers: case and the odd typo must not matter."""
        r = self.rng.random()
        if r < 0.8 or len(name) < 3:
            return name
        if r < 0.87:
            return name.upper()
        if r < 0.92:
            return name.lower()
        i = self.rng.randrange(1, len(name) - 1)
        if r < 0.96:
            return name[:i] + name[i + 1] + name[i] + name[i + 2 :]  # swapped letters
        return name[:i] + name[i + 1 :]  # dropped letter

    # ---- event builders ---------------------------------------------------------------------
    def _base(self, etype: str) -> dict[str, Any]:
        return {"event_id": self.uid("ev-"), "timestamp": None, "type": etype}

    def web(
        self,
        p: _Person,
        etype: str,
        cookie: str,
        session: str,
        *,
        device: str | None = None,
        cid: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        ev = self._base(etype)
        ev["anonymous_id"] = cookie
        ev["session_id"] = session
        if device:
            ev["device_id"] = device
        if cid:
            ev["customer_id"] = cid
        ev.update(extra)
        return ev

    def page(self) -> dict[str, str]:
        path = self.rng.choice(self.paths)
        title = f"{self.brand} {path.strip('/') or self.home_title}"
        return {"url": f"{self.site}{path}", "title": title}

    def product(self) -> tuple[str, str, float]:
        return self.rng.choice(self.products)

    def browse(
        self,
        p: _Person,
        idx: int,
        cookie: str,
        session: str,
        n: int,
        *,
        device: str | None,
        cid: str | None = None,
    ) -> _Session:
        out: _Session = []
        for _ in range(n):
            if self.rng.random() < 0.5:
                out.append(
                    (
                        "web",
                        self.web(
                            p,
                            "page_view",
                            cookie,
                            session,
                            device=device,
                            cid=cid,
                            page=self.page(),
                        ),
                        idx,
                    )
                )
            else:
                sku, name, price = self.product()
                ev = self.web(
                    p,
                    "product_view",
                    cookie,
                    session,
                    device=device,
                    cid=cid,
                    page={"url": f"{self.site}/p/{sku}", "title": name},
                    product={"sku": sku, "name": name, "price": price},
                )
                out.append(("web", ev, idx))
        return out

    def shop_session(
        self, p: _Person, idx: int, cookie: str, mode: str
    ) -> tuple[_Session, dict[str, Any] | None]:
        """Browse → cart → login/signup → order or abandon. Returns the order, if any.

        ``mode`` is ``login``, ``signup``, ``anon`` (registered but not logging in) or
        ``guest`` (no account).
        """
        rng = self.rng
        session = self.uid("s-", 48)
        device = p.device if (p.device and cookie == p.cookies[0]) else None
        if cookie not in p.seen:
            p.seen.append(cookie)
        out = self.browse(p, idx, cookie, session, rng.randint(1, 4), device=device)
        has_cart = rng.random() < 0.8
        items: list[dict[str, Any]] = []
        cart_id = self.uid("cart-", 48)
        if has_cart:
            for _ in range(rng.choices((1, 2, 3), (55, 35, 10))[0]):
                sku, name, price = self.product()
                items.append({"sku": sku, "name": name, "qty": rng.randint(1, 3), "price": price})
                cart = {
                    "cart_id": cart_id,
                    "items": [dict(i) for i in items],
                    "currency": self.currency,
                }
                out.append(
                    (
                        "web",
                        self.web(
                            p,
                            "cart_add",
                            cookie,
                            session,
                            device=device,
                            cart=cart,
                            product={"sku": sku, "name": name, "price": price},
                        ),
                        idx,
                    )
                )
            if len(items) > 1 and rng.random() < 0.15:
                gone = items.pop()
                cart = {
                    "cart_id": cart_id,
                    "items": [dict(i) for i in items],
                    "currency": self.currency,
                }
                out.append(
                    (
                        "web",
                        self.web(
                            p,
                            "cart_remove",
                            cookie,
                            session,
                            device=device,
                            cart=cart,
                            product={
                                "sku": gone["sku"],
                                "name": gone["name"],
                                "price": gone["price"],
                            },
                        ),
                        idx,
                    )
                )
        cid: str | None = None
        if mode == "login" and p.cid:
            cid = p.cid
            extra: dict[str, Any] = {"page": self.login_page()}
            if rng.random() < 0.6:
                extra["email"] = self.email_as_typed(p.emails[0])
                p.known_emails.append(p.emails[0])
            out.append(
                ("web", self.web(p, "login", cookie, session, device=device, cid=cid, **extra), idx)
            )
            p.logged.append(cookie)
            p.linked.append(cookie)
            # (an address only becomes known when an event carries it)
        elif mode == "signup":
            p.cid = cid = self.customer_id()
            ev = self.web(
                p,
                "signup",
                cookie,
                session,
                device=device,
                cid=cid,
                email=self.email_as_typed(p.emails[0]),
                traits={"first_name": self.name_as_typed(p.first), "last_name": p.last},
                consent={"marketing": p.consent},
            )
            out.append(("web", ev, idx))
            p.logged.append(cookie)
            p.linked.append(cookie)
            p.known_emails.append(p.emails[0])
        if cid and rng.random() < 0.5:
            out += self.browse(p, idx, cookie, session, 1, device=device, cid=cid)
        if not has_cart or rng.random() < 0.2:
            return out, None  # browse only, or an abandoned cart
        order = self.order(p, idx, cart_id, items, cookie, logged_in=cid is not None)
        out.append(("transactions", order, idx))
        return out, order

    def order(
        self,
        p: _Person,
        idx: int,
        cart_id: str,
        items: list[dict[str, Any]],
        cookie: str,
        *,
        logged_in: bool,
    ) -> dict[str, Any]:
        rng = self.rng
        ev = self._base("order")
        prefix, digits = self.order_number
        ev["order_id"] = f"{prefix}{rng.randrange(10**digits):0{digits}d}"
        ev["items"] = [dict(i) for i in items]
        ev["total"] = round(sum(i["qty"] * i["price"] for i in items), 2)
        ev["currency"] = self.currency
        account = p.cid is not None and (logged_in or rng.random() < 0.5)
        if account and rng.random() < 0.95:
            ev["customer_id"] = p.cid
        home = p.household
        # (a guest may get past the required field with a placeholder)
        if (not account or rng.random() < self.order_email_share) and (
            account or not self.checkout_placeholder(ev, "email")
        ):
            email = p.emails[0] if rng.random() < 0.85 else p.emails[-1]
            family = home.family_email if home is not None else None
            if family and rng.random() < self.order_family_email_share:
                email = family  # the address the family orders with
            ev["email"] = self.email_as_typed(email)
            p.known_emails.append(email)
        if rng.random() < self.order_phone_share and not self.checkout_placeholder(ev, "phone"):
            ev["phone"] = self.phone_as_typed(self.home_or_mobile(p, self.order_landline_share))
        ev["first_name"] = self.name_as_typed(p.first)
        ev["last_name"] = self.name_as_typed(p.last)
        if rng.random() < self.order_birth_share:
            ev["birth_date"] = p.birth
        if rng.random() < self.order_address_share:
            ev["address"] = dict(p.address)
        ev["cart_id"] = cart_id
        if rng.random() < (0.4 if account else 0.85):
            ev["anonymous_id"] = cookie
            p.linked.append(cookie)
        if rng.random() < 0.8:
            ev["marketing_opt_in"] = p.consent
        return ev

    def home_or_mobile(self, p: _Person, home_share: float) -> str:
        """The person's phone on an order or a call: now and then their home landline."""
        if p.landline and self.rng.random() < home_share:
            return p.landline
        return p.phone

    def checkout_placeholder(self, ev: dict[str, Any], field_name: str) -> bool:
        """Whether a checkout's required ``field_name`` (email or phone) got a placeholder
        (then it is set and marked); never without a :attr:`checkout_placeholder_share`."""
        rng = self.rng
        if not self.checkout_placeholder_share or rng.random() >= self.checkout_placeholder_share:
            return False
        ev[field_name] = rng.choice(self.form_emails if field_name == "email" else self.form_phones)
        self.mark(ev, field_name)
        return True

    def order_return(self, p: _Person, idx: int, order: dict[str, Any]) -> _Session:
        ev = self._base("return")
        ev["order_id"] = order["order_id"]
        ev["items"] = [dict(order["items"][0])]
        ev["total"] = round(order["items"][0]["qty"] * order["items"][0]["price"], 2)
        ev["currency"] = self.currency
        if "customer_id" in order:
            ev["customer_id"] = order["customer_id"]
        else:
            ev["email"] = order.get("email") or self.email_as_typed(p.emails[0])
        return [("transactions", ev, idx)]

    def campaign(self, p: _Person, idx: int) -> list[_Session]:
        """sent → open → click (with a cookie; sometimes a brand-new one) → landing visit."""
        rng = self.rng
        campaign = rng.choice(self.campaigns)
        # Mostly an address the business learnt; now and then one only the ESP list has.
        email = rng.choice(p.known_emails) if rng.random() < 0.9 else p.emails[-1]

        def mail(etype: str, **extra: Any) -> _Planned:
            ev = self._base(etype)
            ev["email"] = self.email_as_typed(email)
            ev["campaign_id"] = campaign
            if p.cid and rng.random() < 0.25:
                ev["customer_id"] = p.cid
            ev.update(extra)
            return ("email", ev, idx)

        sessions: list[_Session] = [[mail("sent")]]
        r = rng.random()
        if r < 0.02:
            sessions[0].append(mail("bounce"))
            return sessions
        if r < 0.57:
            opened: _Session = [mail("open")]
            sessions.append(opened)
            r2 = rng.random()
            if r2 < 0.45:
                if p.seen and rng.random() < 0.65:
                    cookie = rng.choice(p.seen)
                else:  # a phone or work laptop the person never used on the site before
                    cookie = self.cookie()
                    p.cookies.append(cookie)
                    p.seen.append(cookie)
                url = f"{self.site}/sale?utm_campaign={campaign}"
                p.linked.append(cookie)
                opened.append(mail("click", link_url=url, anonymous_id=cookie))
                device = p.device if (p.device and cookie == p.cookies[0]) else None
                session = self.uid("s-", 48)
                landing = self.web(
                    p,
                    "page_view",
                    cookie,
                    session,
                    device=device,
                    page={"url": url, "title": f"{self.brand} sale"},
                )
                opened.append(("web", landing, idx))
                opened += self.browse(p, idx, cookie, session, rng.randint(0, 2), device=device)
            elif r2 < 0.50:
                ev = mail("unsubscribe")
                del ev[1]["campaign_id"]
                opened.append(ev)
            elif r2 < 0.505:
                opened.append(mail("complaint"))
        return sessions

    def call(self, p: _Person, idx: int, *, churn: bool = False) -> _Session:
        """A call: the caller id (mobile or the home landline), or withheld; then what the
        agent asks and types (a withheld caller is placed by name, birth date and postcode,
        few know their customer number)."""
        rng = self.rng
        ev = self._base("call")
        agent = self.call_agent()
        withheld = rng.random() < self.withheld_share
        if not withheld:
            ev["phone"] = self.phone_as_typed(self.home_or_mobile(p, self.call_landline_share))
        else:
            self.withheld_phone(ev, p, agent)
        # (the demo profile's agents have no habits: it picks one here, after the caller id)
        ev["agent_id"] = agent.aid if agent is not None else rng.choice(self.agents)
        if withheld or rng.random() < 0.9:
            ev["first_name"] = self.name_as_typed(p.first)
            ev["last_name"] = self.name_as_typed(p.last)
        if p.cid and (
            rng.random() < self.withheld_cid_share
            if withheld
            else churn or rng.random() < self.call_cid_share
        ):
            ev["customer_id"] = p.cid
        self.call_email(ev, p, agent, withheld)
        if withheld or rng.random() < 0.3:
            ev["birth_date"] = p.birth
        if withheld or rng.random() < 0.5:
            ev["postcode"] = p.address["postcode"]
        if churn:
            ev["disposition"] = {
                "code": "cancel_request",
                "cancel_intent": True,
                "notes": rng.choice(self.churn_notes),
            }
        else:
            code = rng.choices(self.dispositions, self.disposition_weights)[0]
            ev["disposition"] = {"code": code, "cancel_intent": False}
        ev["duration_s"] = rng.randint(30, 1800)
        if rng.random() < 0.1:
            ev["consent"] = {"marketing": p.consent}
        return [("callcenter", ev, idx)]

    def call_agent(self) -> _Agent | None:
        """Hook: the agent who takes a call, when a profile's agents have habits."""
        return None

    def withheld_phone(self, ev: dict[str, Any], p: _Person, agent: _Agent | None) -> None:
        """Hook: what lands in the phone field of a withheld call (here: nothing)."""

    def call_email(
        self, ev: dict[str, Any], p: _Person, agent: _Agent | None, withheld: bool
    ) -> None:
        """Hook: the email an agent notes on a call; here now and then the caller's own."""
        if not withheld and self.rng.random() < 0.15:
            ev["email"] = self.email_as_typed(p.emails[0])

    def churn_visit(self, p: _Person, idx: int) -> _Session:
        """An anonymous return visit on a cookie a login tied to the person earlier."""
        cookie = self.rng.choice(p.logged)
        device = p.device if (p.device and cookie == p.cookies[0]) else None
        session = self.uid("s-", 48)
        return self.browse(p, idx, cookie, session, self.rng.randint(1, 3), device=device)

    def shared_device_session(self, p: _Person, idx: int) -> _Session:
        """A household tablet: always logged in, the person's own browser profile cookie."""
        assert p.shared_device is not None and p.cid is not None
        cookie = self.cookie()
        p.cookies.append(cookie)
        p.seen.append(cookie)
        p.logged.append(cookie)
        session = self.uid("s-", 48)
        login = self.web(
            p,
            "login",
            cookie,
            session,
            device=p.shared_device,
            cid=p.cid,
            page=self.login_page(),
        )
        out: _Session = [("web", login, idx)]
        out += self.browse(
            p, idx, cookie, session, self.rng.randint(1, 3), device=p.shared_device, cid=p.cid
        )
        return out

    def tablet_session(self, p: _Person, idx: int) -> _Session:
        """The family tablet's one browser cookie (and the shop app, if installed there): a
        member logs in with their own customer id, or just browses (anonymously, so only
        the cookie names the household)."""
        home = p.household
        assert home is not None and home.tablet is not None
        rng = self.rng
        cookie, session = home.tablet, self.uid("s-", 48)
        device = home.device if home.device and rng.random() < 0.5 else None
        share = self.tablet_login_share
        cid = p.cid if p.cid and (share >= 1.0 or rng.random() < share) else None
        out: _Session = []
        if cid:
            login = self.web(
                p, "login", cookie, session, device=device, cid=cid, page=self.login_page()
            )
            out.append(("web", login, idx))
        n = rng.randint(*self.tablet_pages)
        cid = cid if self.tablet_pages_logged_in else None
        out += self.browse(p, idx, cookie, session, n, device=device, cid=cid)
        return out

    def consent_update(self, p: _Person, idx: int) -> _Session:
        assert p.cid is not None
        cookie = self.rng.choice(p.logged or p.cookies)
        p.consent = not p.consent if self.rng.random() < 0.5 else p.consent
        ev = self.web(
            p,
            "consent_update",
            cookie,
            self.uid("s-", 48),
            cid=p.cid,
            consent={"marketing": p.consent},
        )
        if cookie not in p.seen:
            p.seen.append(cookie)
        return [("web", ev, idx)]

    # ---- journeys -------------------------------------------------------------------------
    def journeys(self, p: _Person, idx: int) -> list[_Session]:
        """The person's core sessions in causal order (timestamps follow this order)."""
        rng = self.rng
        churn = p.cid is not None and rng.random() < self.churn_share
        shop: list[_Session] = []
        later: list[_Session] = []
        for i in range(rng.choices(*self.shop_sessions)[0]):
            cookie = p.cookies[i % len(p.cookies)]
            if p.cid:
                mode = "login" if (churn and i == 0) or rng.random() < self.login_share else "anon"
            else:
                mode = "signup" if rng.random() < 0.35 else "guest"
            session, order = self.shop_session(p, idx, cookie, mode)
            shop.append(session)
            if order is not None and rng.random() < self.return_share:
                later.append(self.order_return(p, idx, order))
        home = p.household
        family = home.family_email if home is not None else None
        newsletter = self.family_newsletter_share
        if newsletter and family and p.consent and rng.random() < newsletter:
            p.known_emails.append(family)  # the newsletter goes to the family inbox
        free: list[_Session] = []
        if p.consent and p.known_emails:
            for _ in range(rng.choices((0, 1, 2, 3), (10, 40, 35, 15))[0]):
                free += self.campaign(p, idx)
        if rng.random() < self.call_share:
            for _ in range(rng.choices(*self.calls)[0]):
                free.append(self.call(p, idx))
        if p.cid and rng.random() < 0.08:
            free.append(self.consent_update(p, idx))
        if p.shared_device and p.cid:
            free.append(self.shared_device_session(p, idx))
        if home is not None and home.tablet is not None:
            for _ in range(rng.choices(*self.tablet_sessions)[0]):
                free.append(self.tablet_session(p, idx))
        ordered = shop[:1]
        rest = shop[1:] + free
        rng.shuffle(rest)
        ordered += rest + later
        if churn and p.logged:
            ordered.append(self.call(p, idx, churn=True))
            ordered.append(self.churn_visit(p, idx))
        return ordered

    def filler(self, p: _Person, idx: int) -> _Session:
        """Extra everyday traffic of an active person: a browse or a campaign mail."""
        rng = self.rng
        if p.consent and p.known_emails and rng.random() < 0.3:
            ev = self._base(rng.choice(("sent", "open")))
            ev["email"] = self.email_as_typed(rng.choice(p.known_emails))
            ev["campaign_id"] = rng.choice(self.campaigns)
            return [("email", ev, idx)]
        # Most everyday visits happen in the browser people also log in with.
        if p.linked and rng.random() < 0.9:
            cookie = rng.choice(p.linked)
        else:
            cookie = rng.choice(p.seen) if p.seen else p.cookies[0]
        device = p.device if (p.device and cookie == p.cookies[0]) else None
        cid = p.cid if cookie in p.logged and rng.random() < 0.3 else None
        return self.browse(
            p, idx, cookie, self.uid("s-", 48), rng.randint(1, 4), device=device, cid=cid
        )

    # ---- junk and malformed ---------------------------------------------------------------
    def inject_junk(self, source: str, ev: dict[str, Any]) -> None:
        """Replace one identifier of a real person's event with a junk value."""
        rng = self.rng
        if source == "callcenter":
            self.mark_junk(ev, "phone", self.junk_call_phone())
        elif source == "email":
            if self.junk_mail_emails:
                self.mark_junk(ev, "email", rng.choice(self.junk_mail_emails))
        elif source == "transactions":
            if "email" in ev or rng.random() < 0.5:
                self.mark_junk(ev, "email", rng.choice(self.form_emails))
            else:
                self.mark_junk(ev, "phone", rng.choice(self.form_phones))
        else:
            self.mark_junk(ev, "anonymous_id", rng.choice(self.junk_cookies))

    def junk_call_phone(self) -> str:
        """Hook: the junk phone a real caller's call gets (here: a blocked value)."""
        return self.internal_call_phone()

    def internal_call_phone(self) -> str:
        """Hook: the number an internal test call logs."""
        return self.rng.choice(_JUNK_PHONES)

    def junk_mail(self) -> dict[str, Any]:
        """Hook: a mailing to nobody, with its address."""
        ev = self._base("sent")
        ev["email"] = self.rng.choice(_JUNK_EMAILS)
        return ev

    def qa_last_name(self) -> str:
        """Hook: the last name a QA test order carries."""
        return "User"

    def junk_only(self) -> _Planned:
        """Traffic of nobody: test mails, internal test calls, QA orders, bots."""
        rng = self.rng
        kind = rng.randrange(4)
        if kind == 0:
            ev = self.junk_mail()
            ev["campaign_id"] = rng.choice(self.campaigns)
            if self.marks_junk:
                self.mark(ev, "email")
            return ("email", ev, -1)
        if kind == 1:
            ev = self._base("call")
            self.mark_junk(ev, "phone", self.internal_call_phone())
            ev["agent_id"] = rng.choice(self.agents)
            ev["disposition"] = {"code": "other", "cancel_intent": False}
            ev["duration_s"] = rng.randint(5, 60)
            return ("callcenter", ev, -1)
        if kind == 2:
            sku, name, price = self.product()
            ev = self._base("order")
            ev["order_id"] = f"TEST-{rng.randrange(10**8):08d}"
            ev["items"] = [{"sku": sku, "name": name, "qty": 1, "price": price}]
            ev["total"] = price
            ev["currency"] = self.currency
            self.mark_junk(ev, "email", rng.choice(self.qa_emails))
            self.mark_junk(ev, "phone", rng.choice(self.form_phones))
            ev["first_name"] = "Test"
            ev["last_name"] = self.qa_last_name()
            return ("transactions", ev, -1)
        ev = self._base("page_view")
        self.mark_junk(ev, "anonymous_id", rng.choice(self.junk_cookies))
        ev["session_id"] = self.uid("s-", 48)
        ev["page"] = self.page()
        return ("web", ev, -1)

    def malformed(self, template: _Planned, stamp: str) -> tuple[bytes, str | None]:
        """Break a plausible event the ways real producers do; returns (bytes, readable id)."""
        rng = self.rng
        source, ev, _ = template
        ev = dict(ev)
        ev["timestamp"] = stamp
        kind = rng.randrange(8)
        if kind == 0:  # invalid JSON (hand-built string, unquoted key)
            return b"{event_id: " + ev["event_id"].encode() + b', "type": }', None
        if kind == 1:  # truncated in transit
            raw = orjson.dumps(ev)
            return raw[: rng.randrange(1, len(raw) - 1)], None
        if kind == 2:  # required field missing
            required = {
                "web": "anonymous_id",
                "email": "email",
                "transactions": "order_id",
                "callcenter": "type",
            }[source]
            del ev[rng.choice((required, "timestamp", "type"))]
        elif kind == 3:  # wrong types
            if source == "transactions":
                ev["items"] = "many"
            elif source == "web":
                ev["session_id"] = rng.randrange(10**6)
            elif source == "email":
                ev["email"] = ["a@b.com", "c@d.com"]
            else:
                ev["duration_s"] = "long"
        elif kind == 4:  # a timestamp that is no date
            ev["timestamp"] = rng.choice(("yesterday", "not-a-date", "24/11/2026 10:00", ""))
        elif kind == 5:  # unknown event type
            ev["type"] = "mystery_" + str(ev["type"])
        elif kind == 6:  # JSON, but not an object
            return rng.choice((b"[]", b'"hello"', b"null", b"42")), None
        else:  # not UTF-8 at all
            return b"\xff\xfe" + orjson.dumps(ev)[:20], None
        eid = ev.get("event_id") if isinstance(ev.get("event_id"), str) else None
        return orjson.dumps(ev), eid


_ISO_CACHE: dict[int, str] = {}


def _iso(ts: float) -> str:
    """ISO-8601 with milliseconds and ``+00:00``; the per-second prefix is cached because
    datetime formatting was a fifth of the generation time."""
    millis = round(ts * 1000)
    sec, ms = divmod(millis, 1000)
    prefix = _ISO_CACHE.get(sec)
    if prefix is None:
        if len(_ISO_CACHE) > 100_000:
            _ISO_CACHE.clear()
        prefix = datetime.fromtimestamp(sec, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _ISO_CACHE[sec] = prefix
    return f"{prefix}.{ms:03d}+00:00"


#: The message key a source would use, first field present wins (a withheld call: the event).
KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "web": ("anonymous_id",),
    "email": ("email",),
    "transactions": ("order_id",),
    "callcenter": ("phone", "event_id"),
}


def _key(source: str, ev: dict[str, Any]) -> bytes | None:
    for field_name in KEY_FIELDS[source]:
        value = ev.get(field_name)
        if isinstance(value, str):
            return value.encode()
    return None


def generate(
    n_events: int,
    seed: int,
    *,
    people: int | None = None,
    start_ts: float | None = None,
    malformed_rate: float = 0.01,
    junk_rate: float = 0.01,
    seconds_span: float | None = None,
    households: float = 0.0,
    profile: str = "demo",
) -> Iterator[DemoEvent]:
    """Exactly ``n_events`` raw events of ``people`` persons, in timestamp order.

    Each person's journeys (sessions of a few events a short gap apart) are placed at random
    times in ``[start_ts, start_ts + seconds_span]`` and everyone's events are interleaved by
    time, so causality within a person holds (browse → login → order; a cancel call before the
    churn visit) while the stream looks like live traffic. ``junk_rate`` is the share of events
    with a blocked identifier (half on real people's events, half junk-only traffic of nobody);
    ``malformed_rate`` the share of messages the normaliser must send to the DLQ;
    ``households`` the share of people living in households of 2-4 that share a family
    email, a landline and (half of them) a tablet's browser cookie.

    ``profile`` is the customer base: ``"demo"`` (the default, a UK shop whose traffic is
    shaped so that the identity rules can be checked exactly; its stream never changes) or
    ``"realistic"``, a German retailer's customers with households, agents' placeholders,
    typos and German phone formats (:mod:`scv.connectors.realistic`; read its phones with
    region DE). The realistic profile brings its own households, so ``households`` must stay
    0 with it.

    The whole run is planned before the first event is yielded (about 0.5 KB per event).
    """
    if n_events < 0:
        raise ValueError("n_events must be >= 0")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {PROFILES}")
    if profile == "realistic" and households:
        raise ValueError("households is a demo-profile option: the realistic profile has its own")
    rng = random.Random(seed)
    gen: _Generator
    if profile == "realistic":
        from scv.connectors.realistic import RealisticGenerator  # imports this module

        gen = RealisticGenerator(rng, seed)
    else:
        gen = _Generator(rng, seed)
    start = time.time() if start_ts is None else start_ts
    span = n_events * 0.01 if seconds_span is None else seconds_span
    n_people = max(1, round(n_events / 12)) if people is None else max(1, people)
    n_malformed = min(n_events, round(n_events * malformed_rate))
    n_junk_only = min(n_events - n_malformed, round(n_events * junk_rate / 2))
    budget = n_events - n_malformed - n_junk_only

    persons = gen.population(n_people)
    if profile == "demo":
        if households > 0:
            gen.form_households(persons, households)
        # A few households share a tablet; both partners need accounts (they log in on it).
        registered = [p for p in persons if p.cid]
        rng.shuffle(registered)
        for a, b in zip(registered[0::2], registered[1::2], strict=False):
            if rng.random() < 0.04:
                a.shared_device = b.shared_device = gen.uid("dev-")

    gap = min(max(span * 0.0005, 0.05), 20.0)
    timed: list[tuple[float, int, str, dict[str, Any], int]] = []
    seq = 0

    def place(sessions: list[_Session], clamp_person: bool) -> None:
        nonlocal seq
        starts = sorted(rng.uniform(0, span) for _ in sessions)
        last = -1.0
        for session, t in zip(sessions, starts, strict=True):
            for source, ev, idx in session:
                if clamp_person:
                    t = max(t, last + 0.001)
                    last = t
                timed.append((min(t, span), seq, source, ev, idx))
                seq += 1
                t += rng.uniform(0.3, 1.5) * gap

    active: list[int] = []
    for idx, p in enumerate(persons):
        if budget <= 0:
            break
        sessions = gen.journeys(p, idx)
        size = sum(len(s) for s in sessions)
        if size > budget:
            continue
        budget -= size
        active.append(idx)
        place(sessions, True)
    if not active:
        active.append(0)
    while budget > 0:
        idx = rng.choice(active)
        session = gen.filler(persons[idx], idx)[:budget]
        budget -= len(session)
        place([session], False)

    junk_share = junk_rate / 2
    for _, _, source, ev, _idx in timed:
        if rng.random() < junk_share:
            gen.inject_junk(source, ev)
    for _ in range(n_junk_only):
        source, ev, idx = gen.junk_only()
        timed.append((rng.uniform(0, span), seq, source, ev, idx))
        seq += 1
    n_real = len(timed)
    for _ in range(n_malformed):
        template = timed[rng.randrange(n_real)] if n_real else None
        if template is None:
            source, ev, _ = gen.junk_only()
        else:
            source, ev = template[2], template[3]
        timed.append((rng.uniform(0, span), seq, source, {"__malformed__": ev}, -1))
        seq += 1

    timed.sort(key=lambda item: (item[0], item[1]))
    for t, _, source, ev, idx in timed:
        stamp = _iso(start + t)
        if "__malformed__" in ev:
            template_ev = ev["__malformed__"]
            copy = dict(template_ev)
            copy["event_id"] = gen.uid("ev-")
            value, eid = gen.malformed((source, copy, -1), stamp)
            yield DemoEvent(source, gen.uid("k-", 32).encode(), value, eid, None, True)
            continue
        ev["timestamp"] = stamp
        home = persons[idx].household if idx >= 0 else None
        marked = gen.marks.get(id(ev))
        yield DemoEvent(
            source,
            _key(source, ev),
            orjson.dumps(ev),
            ev["event_id"],
            persons[idx].pid if idx >= 0 else None,
            False,
            home.hid if home is not None else None,
            tuple(marked[1]) if marked else (),
        )


# --------------------------------------------------------------------------------------------
# What a perfect deterministic resolver could achieve
# --------------------------------------------------------------------------------------------

_ID_FIELDS = ("customer_id", "email", "phone", "device_id", "anonymous_id")


def _identifiers(ev: dict[str, Any], source: str, region: str) -> list[tuple[str, str]]:
    """(field, ``kind:value``) of each usable identifier, normalised the way the pipeline's
    normaliser does it (an invalid email or an impossible phone identifies nothing; an
    order's phone is read with the order's country, like the normaliser reads it)."""
    from scv.domain.normalize import normalize_email, normalize_phone  # the same rules

    out: list[tuple[str, str]] = []
    for name in _ID_FIELDS:
        raw = ev.get(name)
        if not isinstance(raw, str):
            continue
        value: str | None = raw.strip()
        if not value or value.lower() in BLOCKED_VALUES:
            continue
        if name == "email":
            value = normalize_email(value)
        elif name == "phone":
            value = normalize_phone(value, _phone_region(ev, source, region))
            if value in _BLOCKED_E164:
                continue
        if value is not None:
            out.append((name, f"{name}:{value}"))
    return out


def identifiers_of(event: DemoEvent, region: str) -> list[tuple[str, str]]:
    """(payload field, ``kind:value``) of each usable identifier of ``event``, normalised as
    the pipeline does with default region ``region``."""
    return _identifiers(orjson.loads(event.value), event.source, region)


def _phone_region(ev: dict[str, Any], source: str, region: str) -> str:
    address = ev.get("address") if source == "transactions" else None
    country = address.get("country") if isinstance(address, dict) else None
    if isinstance(country, str) and len(country.strip()) == 2:
        return country.strip().upper()
    return region


def _components(rows: list[tuple[str, list[str]]]) -> tuple[int, int]:
    """Join each person's events sharing an identifier; (events in each person's largest
    component, pairs of events inside components)."""
    parent = list(range(len(rows)))
    owner: dict[tuple[str, str], int] = {}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (person, idents) in enumerate(rows):
        for ident in idents:
            j = owner.setdefault((person, ident), i)
            if j != i:
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[ri] = rj
    comps: Counter[int] = Counter(find(i) for i in range(len(rows)))
    largest: dict[str, int] = {}
    for root, size in comps.items():
        pid = rows[root][0]
        largest[pid] = max(largest.get(pid, 0), size)
    return sum(largest.values()), sum(n * (n - 1) // 2 for n in comps.values())


def linkability(events: Iterable[DemoEvent], *, region: str = "GB") -> dict[str, float]:
    """How much of the truth is reachable by deterministic linking at all.

    Within each person, events are joined when they share a non-blocked normalised identifier
    (the rule the resolver applies; national phones read with ``region``, the pipeline's
    ``SCV_DEFAULT_REGION``: ``"DE"`` for the realistic profile). ``linkable_share`` is the
    share of attributed events in their person's largest such component;
    ``max_pairwise_recall`` the pairwise recall of a resolver that joins exactly these
    components — the ceiling to compare a real run against. ``shared_identifiers`` counts
    identifiers used by more than one person (in the default traffic only household devices,
    always alongside a customer id).

    That ceiling still counts links through values several people use (a family email, a
    household landline, a tablet) and through placeholders typed instead of a value (an
    agent's ``keine@mail.de``), which no resolver can attribute to one member. The
    ``_personal`` figures are the same computation where such a value never links: an
    identifier used by more than one person over the whole stream, or one the generator
    typed as a placeholder (:attr:`DemoEvent.placeholders`). They are the honest ceiling
    for a resolver that must keep people apart; ``placeholder_identifiers`` counts the
    distinct placeholder values.
    """
    rows: list[tuple[str, list[str]]] = []
    placeholder: set[str] = set()
    users: defaultdict[str, set[str]] = defaultdict(set)
    total = 0
    for ev in events:
        total += 1
        if ev.malformed or ev.person_id is None:
            continue
        idents = []
        for field_name, ident in _identifiers(orjson.loads(ev.value), ev.source, region):
            users[ident].add(ev.person_id)
            idents.append(ident)
            if field_name in ev.placeholders:
                placeholder.add(ident)
        rows.append((ev.person_id, idents))
    per_person: Counter[str] = Counter(person for person, _ in rows)
    linkable, reachable = _components(rows)
    personal_rows = [
        (person, [i for i in idents if i not in placeholder and len(users[i]) == 1])
        for person, idents in rows
    ]
    linkable_personal, reachable_personal = _components(personal_rows)
    true_pairs = sum(n * (n - 1) // 2 for n in per_person.values())
    attributed = len(rows)
    return {
        "events": total,
        "attributed_events": attributed,
        "people": len(per_person),
        "linkable_events": linkable,
        "linkable_share": linkable / attributed if attributed else 1.0,
        "max_pairwise_recall": reachable / true_pairs if true_pairs else 1.0,
        "shared_identifiers": sum(1 for who in users.values() if len(who) > 1),
        "linkable_events_personal": linkable_personal,
        "linkable_share_personal": linkable_personal / attributed if attributed else 1.0,
        "max_pairwise_recall_personal": (reachable_personal / true_pairs if true_pairs else 1.0),
        "placeholder_identifiers": len(placeholder),
    }
