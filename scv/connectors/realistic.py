"""The ``realistic`` traffic profile: a German retailer's customer base, as it really looks.

The demo profile (:mod:`scv.connectors.demo`) is shaped so that the identity rules can be
checked exactly. A new user's data set (issue 18) showed what it leaves out, and each of those
things fused different people in a real run; this profile puts them in, so accuracy is
measured on traffic that looks like a customer base rather than like the rules:

* German names with umlauts and ß (emails transliterate them: ``mueller``, ``gross``; some
  keep the umlaut-free spelling ``muller``), German addresses (street and number, 5-digit
  PLZ, city), a few customers from AT, CH, NL and GB;
* phones typed the ways agents and forms type them (``0171/1234567``, ``+49 (0)171 …``,
  ``(030) 1234567``, ``030 123 45 67`` …), foreign ones with their international prefix;
* households of 2-4 (about 40 % of people) at one address sharing a landline, a family
  email and often a tablet's browser cookie, each member with their own personal email and
  mostly their own customer id and mobile;
* people with a second (work or old) address, several browsers, an app;
* case/space noise, agents' one-character typos (a typo'd address is a distinct value used
  once or twice, still that person's), misspelt names;
* **placeholders**: ~40 call-centre agents, each with the habit of typing a favourite value
  or two when a caller gives no email or phone (``keine@mail.de``, ``x@x.de``, ``k.a.``,
  ``0123456789``, the hotline's own number), some of them a team's convention, so one value
  ends up on the calls of dozens of callers, each with their own real phone on that call;
  guests type ``test@test.de`` in a checkout now and then.

Placeholders are drawn from templates with randomness (letters, keyboard runs, mailbox
words and domains), not from a fixed list, so a resolver cannot pass by knowing the list.
The truth stays honest: every event keeps the ``person_id`` of who produced it, and every
field holding a placeholder is named in :attr:`~scv.connectors.demo.DemoEvent.placeholders`.
"""

from __future__ import annotations

import random
from typing import Any

from scv.connectors.demo import _Agent, _Generator, _Household, _Person, _Session

__all__ = ["HOTLINE", "RealisticGenerator"]

#: The retailer's own service number (agents type it when a caller gives none).
HOTLINE = "+494032904400"

_MALE = (  # noqa: SIM905 (a word list reads better than a 40-line literal)
    "Jürgen Thomas Michael Andreas Stefan Peter Klaus Frank Markus Christian Wolfgang "
    "Matthias Uwe Jörg Günter Hans-Peter Sebastian Tobias Jan Lukas Jonas Leon Finn Felix "
    "Maximilian Paul Ben Niklas Tim Björn Sören Jens Dirk Holger Ralf Karl-Heinz Hüseyin Mehmet"
).split()
_FEMALE = (  # noqa: SIM905
    "Sabine Andrea Petra Claudia Susanne Monika Birgit Stefanie Nicole Katrin Julia Anna "
    "Lena Laura Lea Sophie Marie Hannah Emma Mia Jana Sarah Jessica Melanie Sandra Ute "
    "Brigitte Käthe Jördis Bärbel Dörte Anja Kerstin Silke Heike Gülay Ayşe Zoë"
).split()
_SURNAMES = (  # noqa: SIM905
    "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer "
    "Koch Bauer Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann "
    "Hartmann Lange Schmitt Werner Schmitz Krause Meier Lehmann Schmid Schulze Maier Köhler "
    "Herrmann König Walter Mayer Huber Kaiser Fuchs Peters Lang Scholz Möller Weiß Jung Hahn "
    "Schubert Vogel Friedrich Keller Günther Frank Berger Winkler Roth Beck Lorenz Baumann "
    "Franke Albrecht Schuster Simon Ludwig Böhm Winter Kraus Martin Schumacher Krämer Vogt "
    "Stein Jäger Otto Sommer Groß Seidel Heinrich Brandt Haas Schreiber Graf Schulte Dietrich "
    "Ziegler Kuhn Kühn Pohl Engel Horn Busch Bergmann Thomas Voigt Sauer Arnold Wolff Pfeiffer "
    "Y\u0131lmaz Kaya Nowak Kowalski Öztürk Demir Popović Süß Strauß Weißmann Lößner"
).split()
_SURNAMES_NL = ("de Vries", "Jansen", "van den Berg", "Bakker", "Visser", "de Jong", "Smit")
_FIRST_NL = ("Daan", "Sem", "Lotte", "Sanne", "Bram", "Femke", "Joost", "Anouk")
_SURNAMES_GB = ("Smith", "Jones", "Taylor", "Brown", "Wilson", "Evans", "O'Brien", "Walker")
_FIRST_GB = ("James", "Oliver", "Amelia", "Olivia", "Harry", "Emily", "George", "Isla")

_STREETS = (  # noqa: SIM905
    "Hauptstraße,Bahnhofstraße,Schulstraße,Gartenstraße,Dorfstraße,Bergstraße,Lindenstraße,"
    "Kirchstraße,Waldstraße,Ringstraße,Schillerstraße,Goethestraße,Mühlenweg,Birkenweg,"
    "Am Markt,Friedrichstraße,Mozartstraße,Rosenweg,Wiesenweg,Königsallee,Uhlandstraße,"
    "Bismarckstraße,Poststraße,Jahnstraße,Am Sportplatz,Eichendorffstraße,Marktplatz,"
    "Ludwig-Erhard-Straße,Karl-Marx-Allee,Sonnenallee,Talstraße,Feldstraße"
).split(",")
#: (city, area code without 0, lowest PLZ, highest PLZ, weight)
_CITIES = (
    ("Berlin", "30", 10115, 14199, 18),
    ("Hamburg", "40", 20095, 22769, 10),
    ("München", "89", 80331, 81929, 9),
    ("Köln", "221", 50667, 51149, 7),
    ("Frankfurt am Main", "69", 60306, 60599, 6),
    ("Düsseldorf", "211", 40210, 40629, 5),
    ("Stuttgart", "711", 70173, 70629, 5),
    ("Leipzig", "341", 4103, 4357, 5),
    ("Dresden", "351", 1067, 1328, 4),
    ("Hannover", "511", 30159, 30669, 4),
    ("Nürnberg", "911", 90402, 90491, 4),
    ("Bremen", "421", 28195, 28779, 4),
    ("Essen", "201", 45127, 45359, 4),
    ("Dortmund", "231", 44135, 44388, 4),
    ("Münster", "251", 48143, 48167, 3),
    ("Freiburg im Breisgau", "761", 79098, 79117, 3),
    ("Würzburg", "931", 97070, 97084, 2),
    ("Göttingen", "551", 37073, 37085, 2),
)
_CITY_WEIGHTS = tuple(c[4] for c in _CITIES)
_MOBILE_DE = (  # (prefix without 0, subscriber digits)
    ("151", 8),
    ("152", 8),
    ("157", 8),
    ("159", 8),
    ("160", 7),
    ("162", 7),
    ("163", 7),
    ("170", 7),
    ("171", 7),
    ("172", 7),
    ("173", 7),
    ("174", 7),
    ("175", 7),
    ("176", 8),
    ("177", 7),
    ("178", 7),
    ("179", 7),
)
#: Foreign customers: country, its customers' weight, mail domains.
_FOREIGN = (
    ("AT", 35, ("gmx.at", "aon.at", "gmail.com", "chello.at")),
    ("CH", 25, ("bluewin.ch", "gmx.ch", "gmail.com", "sunrise.ch")),
    ("NL", 20, ("ziggo.nl", "kpnmail.nl", "gmail.com", "hotmail.nl")),
    ("GB", 20, ("gmail.com", "btinternet.com", "hotmail.co.uk", "yahoo.co.uk")),
)
_FOREIGN_SHARE = 0.07
_MAIL_DE = (
    ("gmx.de", 20),
    ("web.de", 20),
    ("t-online.de", 12),
    ("gmail.com", 18),
    ("yahoo.de", 4),
    ("outlook.de", 4),
    ("hotmail.de", 4),
    ("freenet.de", 3),
    ("icloud.com", 5),
    ("gmx.net", 5),
    ("posteo.de", 2),
    ("mail.de", 2),
    ("arcor.de", 1),
)
_MAIL_DOMAINS = tuple(d for d, _ in _MAIL_DE)
_MAIL_WEIGHTS = tuple(w for _, w in _MAIL_DE)
_OLD_DOMAINS = ("t-online.de", "arcor.de", "hotmail.de", "freenet.de", "lycos.de", "aol.com")
_WORK_DOMAINS = (  # noqa: SIM905
    "schneider-bau.de kanzlei-weber.de stadt-essen.de uni-leipzig.de stadtwerke-koeln.de "
    "autohaus-becker.de praxis-hoffmann.de logistik-nord.de hansa-versicherung.de "
    "klinikum-nuernberg.de ingenieurbuero-krause.de it-service-wolf.de"
).split()
_PRODUCTS = (  # noqa: SIM905
    "Merino-Pullover,Regenjacke,Wanderschuhe,Jeans,Leinenhemd,Wollschal,Ledergürtel,"
    "Stofftasche,Laufsocken,Baumwoll-T-Shirt,Steppweste,Chino-Shorts,Strickmütze,"
    "Seidenkrawatte,Stiefeletten,Kapuzenpullover,Badeshorts,Fleecejacke,Schlafanzug,Sonnenhut"
).split(",")
_COLOURS = ("Marine", "Schwarz", "Grau", "Oliv", "Rot", "Creme")
_PATHS = ("/", "/neuheiten", "/sale", "/damen", "/herren", "/hilfe/versand", "/kinder")
_CHURN_NOTES = (
    "möchte Kundenkonto kündigen, zu teuer",
    "fragt wie man das Konto löscht",
    "Kündigung Abo - wechselt zur Konkurrenz",
)
_DISPOSITIONS = ("inquiry", "complaint", "purchase", "other")
_DISPOSITION_WEIGHTS = (45, 25, 15, 15)

# ---- placeholder templates -------------------------------------------------------------------
#: Letters agents hit for "nothing": x far more than any other, so agents coincide.
_LETTERS = "xxxxxxaaakkknnyqo"
_KEY_ROWS = ("qwertzuiop", "asdfghjkl", "yxcvbnm")
_NOMAIL_LOCALS = (  # noqa: SIM905
    "keine keine keine.email keine.mail keinemail kein kein.mail nomail nomail no.email "
    "noemail ohne ohne.email keineangabe keine.angabe none nicht.vorhanden hat.keine "
    "kunde.hat.keine keine-email"
).split()
_NOMAIL_DOMAINS = (  # noqa: SIM905
    "mail.de mail.de email.de email.de web.de gmx.de t-online.de nomail.de keine.de none.com "
    "test.de online.de"
).split()
_BARE_EMAILS = (
    "k.a.",
    "ka",
    "k.A.",
    "-",
    "--",
    ".",
    "keine",
    "n.v.",
    "nicht vorhanden",
    "no email",
    "0",
    "x",
    "entfällt",
)
_PHONE_SEQUENCES = ("0123456789", "123456789", "1234567", "01234567", "12345678", "0123456")
_BARE_PHONES = ("-", "k.a.", "0", "--", "keine", "n.v.", "x")
#: What a guest types in a checkout to get past a required field (far rarer than agents).
_FORM_EMAILS = ("test@test.de", "a@a.de", "test@test.com", "x@x.de", "asdf@asdf.de")
_FORM_PHONES = ("0123456789", "0000000", "123456789", "01234567890", "0")
_JUNK_COOKIES = ("null", "undefined", "unknown")
#: How a foreign number is typed: always international (``prefix``: the area or network code
#: without 0, ``sub``: the subscriber number), one form as likely as another.
_FOREIGN_PHONE_FORMS = (
    "{e164}",
    "+{cc} {prefix} {sub}",
    "00{cc} {prefix} {sub}",
    "+{cc} (0){prefix} {sub}",
    "+{cc}-{prefix}-{sub}",
)
#: How a German number is typed, with its weight; grouped as 030 123 45 67 (``a`` ``b``
#: ``c``) or extension style 030/12345-67 (``head`` ``c``).
_DE_PHONE_TYPED = (
    ("0{prefix} {sub}", 24),
    ("0{prefix}/{sub}", 10),
    ("0{prefix}-{sub}", 6),
    ("+49 {prefix} {sub}", 12),
    ("+49 (0){prefix} {sub}", 6),
    ("0049 {prefix} {sub}", 5),
    ("0{prefix}{sub}", 14),
    ("(0{prefix}) {sub}", 5),
    ("0{prefix} {a} {b} {c}", 8),
    ("{e164}", 7),
    ("0{prefix}/{head}-{c}", 3),
)
_DE_PHONE_FORMS = tuple(f for f, _ in _DE_PHONE_TYPED)
_DE_PHONE_WEIGHTS = tuple(w for _, w in _DE_PHONE_TYPED)


def transliterate(text: str) -> str:
    """ä → ae, ö → oe, ü → ue, ß → ss: how Germans spell their names in an address."""
    return (
        text.replace("ä", "ae")
        .replace("ö", "oe")
        .replace("ü", "ue")
        .replace("Ä", "Ae")
        .replace("Ö", "Oe")
        .replace("Ü", "Ue")
        .replace("ß", "ss")
        .replace("\u0131", "i")  # dotless i (Y\u0131lmaz)
        .replace("ş", "s")
        .replace("ć", "c")
        .replace("ë", "e")
    )


def strip_umlauts(text: str) -> str:
    """ä → a, ö → o, ü → u (ß → ss): the spelling some people (and keyboards) use."""
    return transliterate(
        text.replace("ä", "a")
        .replace("ö", "o")
        .replace("ü", "u")
        .replace("Ä", "A")
        .replace("Ö", "O")
        .replace("Ü", "U")
    )


def _local(text: str) -> str:
    """A name as an address's local part: lower-case, no spaces or apostrophes."""
    return text.lower().replace(" ", "").replace("'", "")


class RealisticGenerator(_Generator):
    """A German retailer's customer base (see the module docstring)."""

    currency = "EUR"
    site = "https://www.nordwind-mode.de"
    brand = "Nordwind"
    paths = _PATHS
    home_title = "Start"
    login_path, login_title = "/konto/anmelden", "Anmelden"
    order_number = ("B-", 9)
    # more shopping and calls, the family inbox on the newsletter list, the tablet in use
    churn_share = 0.05
    shop_sessions = ((1, 2, 3, 4), (45, 33, 15, 7))
    login_share = 0.85
    return_share = 0.08
    family_newsletter_share = 0.5
    call_share = 0.4
    calls = ((1, 2, 3), (60, 30, 10))
    tablet_sessions = ((1, 2, 3), (50, 35, 15))
    tablet_pages = (1, 4)
    tablet_login_share = 0.6
    tablet_pages_logged_in = True
    order_email_share = 0.8
    order_family_email_share = 0.4
    order_phone_share = 0.75
    order_landline_share = 0.35
    order_birth_share = 0.3
    order_address_share = 0.9
    checkout_placeholder_share = 0.03
    withheld_share = 0.12
    call_landline_share = 0.55
    call_cid_share = 0.6
    withheld_cid_share = 0.3
    churn_notes = _CHURN_NOTES
    dispositions = _DISPOSITIONS
    disposition_weights = _DISPOSITION_WEIGHTS
    # a broken tag manager's cookie, an agent's placeholder phone, a checkout's test
    # address; mail events keep their address (an ESP sends only to its list)
    marks_junk = True
    junk_cookies = _JUNK_COOKIES
    junk_mail_emails = ()
    form_emails = _FORM_EMAILS
    form_phones = _FORM_PHONES
    qa_emails = ("test@test.de", "test@nordwind-mode.de", "qa@nordwind-mode.de")

    def __init__(self, rng: random.Random, seed: int) -> None:
        super().__init__(rng, seed)  # (draws the demo's catalogue first, then its own)
        self.products = self.catalogue(_PRODUCTS, _COLOURS, "{name} {colour}", (9.95, 199.0))
        #: how each known number is grouped: e164 -> (country code, prefix, subscriber)
        self.split: dict[str, tuple[str, str, str]] = {}
        self.split[HOTLINE] = ("49", "40", "32904400")
        self.team = self._agents()

    # ---- agents and placeholders ----------------------------------------------------------
    def _agents(self) -> list[_Agent]:
        """40 agents in 3 teams; a team's convention ("we type keine@email.de") is what most
        of its agents type, the rest have a habit of their own."""
        rng = self.rng
        conventions = [
            (self.placeholder_email(kind="nomail"), self.placeholder_phone()),
            (self.placeholder_email(kind="letter"), self.placeholder_phone(kind="hotline")),
            (self.placeholder_email(), self.placeholder_phone(kind="zeros")),
        ]
        agents = []
        for i, aid in enumerate(self.agents):
            email_habit, phone_habit = conventions[i % len(conventions)]
            emails = [email_habit] if rng.random() < 0.55 else [self.placeholder_email()]
            if rng.random() < 0.4:
                emails.append(self.placeholder_email())
            phones = [phone_habit] if rng.random() < 0.5 else [self.placeholder_phone()]
            if rng.random() < 0.3:
                phones.append(self.placeholder_phone())
            agents.append(_Agent(aid, emails, phones))
        return agents

    def placeholder_email(self, kind: str | None = None) -> str:
        """An email an agent types for "none given", from templates with randomness."""
        rng = self.rng
        if kind is None:
            kind = rng.choices(
                ("letter", "pair", "double", "mash", "nomail", "bare"), (22, 8, 8, 8, 34, 20)
            )[0]
        if kind == "letter":
            c = rng.choice(_LETTERS)
            return f"{c}@{c}.{rng.choice(('de', 'de', 'de', 'com'))}"
        if kind == "pair":
            a, b = rng.sample("abcxyz", 2)
            return f"{a}@{b}.de"
        if kind == "double":
            cc = rng.choice(_LETTERS) * rng.choice((2, 2, 3))
            return f"{cc}@{cc}.{rng.choice(('xx', 'de', 'com', cc))}"
        if kind == "mash":
            row = rng.choice(_KEY_ROWS)
            start = rng.choice((0, 0, 0, 1, 2))
            run = row[start : start + rng.choice((3, 4, 4))]
            return f"{run}@{run}.{rng.choice(('de', 'de', 'com'))}"
        if kind == "nomail":
            local = rng.choice(_NOMAIL_LOCALS)
            if rng.random() < 0.2:  # the mirrored kind: nomail@nomail.de, none@none.com
                word = local.replace(".", "").replace("-", "")
                return f"{word}@{word}.{rng.choice(('de', 'com'))}"
            return f"{local}@{rng.choice(_NOMAIL_DOMAINS)}"
        return rng.choice(_BARE_EMAILS)

    def placeholder_phone(self, kind: str | None = None) -> str:
        """A phone an agent types for "none given": zeros, a sequence, junk, the hotline."""
        rng = self.rng
        if kind is None:
            kind = rng.choices(
                ("zeros", "sequence", "bare", "hotline", "repeat"), (30, 30, 15, 15, 10)
            )[0]
        if kind == "zeros":
            return "0" * rng.randint(6, 11)
        if kind == "sequence":
            return rng.choice(_PHONE_SEQUENCES)
        if kind == "bare":
            return rng.choice(_BARE_PHONES)
        if kind == "hotline":
            return self.phone_as_typed(HOTLINE)
        return rng.choice("1235789") * rng.randint(7, 10)

    def agent_email(self, agent: _Agent) -> str:
        """The agent's habit, mostly the favourite, now and then a fresh one."""
        rng = self.rng
        r = rng.random()
        if r < 0.05:
            value = self.placeholder_email()
        elif r < 0.75 or len(agent.emails) == 1:
            value = agent.emails[0]
        else:
            value = agent.emails[1]
        return value.upper() if rng.random() < 0.05 and "@" in value else value

    def agent_phone(self, agent: _Agent) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.05:
            return self.placeholder_phone()
        if r < 0.8 or len(agent.phones) == 1:
            return agent.phones[0]
        return agent.phones[1]

    # ---- people ---------------------------------------------------------------------------
    def population(self, n: int) -> list[_Person]:
        """``n`` people; about 23 % of the "units" are households of 2-4, which puts
        roughly 40 % of people in a household."""
        rng = self.rng
        persons: list[_Person] = []
        while len(persons) < n:
            left = n - len(persons)
            if left >= 2 and rng.random() < 0.23:
                size = min(left, rng.choices((2, 3, 4), (55, 28, 17))[0])
                persons += self.household(len(persons), size)
            else:
                persons.append(self.person(len(persons)))
        return persons

    def _country(self) -> str:
        rng = self.rng
        if rng.random() >= _FOREIGN_SHARE:
            return "DE"
        return rng.choices([f[0] for f in _FOREIGN], [f[1] for f in _FOREIGN])[0]

    def _names(self, country: str) -> tuple[str, str]:
        rng = self.rng
        if country == "NL":
            return rng.choice(_FIRST_NL), rng.choice(_SURNAMES_NL)
        if country == "GB":
            return rng.choice(_FIRST_GB), rng.choice(_SURNAMES_GB)
        first = rng.choice(_MALE) if rng.random() < 0.5 else rng.choice(_FEMALE)
        return first, rng.choice(_SURNAMES)

    def _address(self, country: str) -> dict[str, str]:
        rng = self.rng
        number = str(rng.randint(1, 180)) + (rng.choice("abc") if rng.random() < 0.1 else "")
        if country == "DE":
            city, _, low, high, _ = rng.choices(_CITIES, _CITY_WEIGHTS)[0]
            street = f"{rng.choice(_STREETS)} {number}"
            return {"street": street, "city": city, "postcode": f"{rng.randint(low, high):05d}"}
        if country == "AT":
            city, plz = rng.choice((("Wien", f"1{rng.randint(1, 23):02d}0"), ("Graz", "8010")))
            street = f"{rng.choice(('Mariahilfer Straße', 'Hauptplatz', 'Landstraßer Gürtel'))}"
            return {"street": f"{street} {number}", "city": city, "postcode": plz}
        if country == "CH":
            city, plz = rng.choice((("Zürich", f"80{rng.randint(1, 57):02d}"), ("Basel", "4051")))
            street = rng.choice(("Bahnhofstrasse", "Seestrasse", "Dorfstrasse"))
            return {"street": f"{street} {number}", "city": city, "postcode": plz}
        if country == "NL":
            letters = "".join(rng.choice("ABCEGHJKLMNPRSTVWXZ") for _ in range(2))
            plz = f"{rng.randint(1011, 1109)} {letters}"
            street = rng.choice(("Prinsengracht", "Kerkstraat", "Dorpsstraat"))
            return {"street": f"{street} {number}", "city": "Amsterdam", "postcode": plz}
        inward = f"{rng.randint(1, 9)}{rng.choice('ABDEFGHJ')}{rng.choice('LNPQRST')}"
        plz = f"SW{rng.randint(1, 20)} {inward}"
        return {
            "street": f"{number} {rng.choice(('High Street', 'Station Road'))}",
            "city": "London",
            "postcode": plz,
        }

    def _number(self, cc: str, prefix: str, digits: int) -> str:
        """A new unique number; remembers its grouping for :meth:`phone_as_typed`."""
        rng = self.rng
        while True:
            first = rng.choice("23456789")  # no leading 0/1: such numbers read as other ranges
            sub = first + "".join(rng.choice("0123456789") for _ in range(digits - 1))
            e164 = f"+{cc}{prefix}{sub}"
            if e164 not in self.used_phones:
                self.used_phones.add(e164)
                self.split[e164] = (cc, prefix, sub)
                return e164

    def mobile(self, country: str) -> str:
        rng = self.rng
        if country == "DE":
            prefix, digits = rng.choice(_MOBILE_DE)
            return self._number("49", prefix, digits)
        if country == "AT":
            return self._number("43", rng.choice(("664", "676", "650", "660", "699")), 7)
        if country == "CH":
            return self._number("41", rng.choice(("76", "77", "78", "79")), 7)
        if country == "NL":
            return self._number("31", "6", 8)
        return self._number("44", "7" + rng.choice("458") + rng.choice("0123456789"), 7)

    def landline_for(self, country: str, address: dict[str, str]) -> str:
        if country == "DE":
            area = next(c[1] for c in _CITIES if c[0] == address["city"])
            return self._number("49", area, 7 if len(area) == 2 else self.rng.choice((6, 7)))
        if country == "AT":
            return self._number("43", "1" if address["city"] == "Wien" else "316", 7)
        if country == "CH":
            return self._number("41", "44" if address["city"] == "Zürich" else "61", 7)
        if country == "NL":
            return self._number("31", "20", 7)
        return self._number("44", "20", 8)

    def personal_email(self, first: str, last: str, birth: str, country: str) -> str:
        """A private address in one of the shapes people choose, umlauts transliterated
        (or, for some, just dropped)."""
        rng = self.rng
        spell = strip_umlauts if rng.random() < 0.15 else transliterate
        f, la = _local(spell(first)), _local(spell(last))
        yy, yyyy = birth[2:4], birth[:4]
        shape = rng.choices(range(9), (35, 10, 12, 5, 5, 8, 8, 7, 10))[0]
        local = (
            f"{f}.{la}",
            f"{f}{la}",
            f"{f[0]}.{la}",
            f"{la}.{f}",
            f"{f}_{la}",
            f"{f}.{la}{yy}",
            f"{la}{rng.randint(1, 99)}",
            f"{f}{yyyy}",
            f"{f[0]}{la}",
        )[shape]
        if country == "DE":
            domains, weights = _MAIL_DOMAINS, _MAIL_WEIGHTS
        else:
            domains = next(x[2] for x in _FOREIGN if x[0] == country)
            weights = (1,) * len(domains)
        return self._unique_email(local, domains, weights)

    def _unique_email(
        self, local: str, domains: tuple[str, ...], weights: tuple[int, ...] | None = None
    ) -> str:
        rng = self.rng
        candidate = f"{local}@{rng.choices(domains, weights)[0]}"
        while candidate in self.used_emails:
            candidate = f"{local}{rng.randint(1, 999)}@{rng.choices(domains, weights)[0]}"
        self.used_emails.add(candidate)
        return candidate

    def person(
        self,
        index: int,
        *,
        country: str | None = None,
        last: str | None = None,
        address: dict[str, str] | None = None,
        birth_years: tuple[int, int] = (1945, 2005),
    ) -> _Person:
        rng = self.rng
        country = country or self._country()
        first, own_last = self._names(country)
        last = last or own_last
        birth = f"{rng.randint(*birth_years)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        address = dict(address) if address else self._address(country)
        address["country"] = country
        emails = [self.personal_email(first, last, birth, country)]
        if rng.random() < 0.35:  # a work address, or the old one from before
            spell = _local(transliterate(first)), _local(transliterate(last))
            if rng.random() < 0.6:
                emails.append(self._unique_email(f"{spell[0]}.{spell[1]}", tuple(_WORK_DOMAINS)))
            else:
                emails.append(self._unique_email(f"{spell[1]}{rng.randint(1, 99)}", _OLD_DOMAINS))
        n_cookies = rng.choices((1, 2, 3, 4), (40, 35, 18, 7))[0]
        return _Person(
            pid=f"p{self.seed}-{index:06d}",
            first=first,
            last=last,
            birth=birth,
            address=address,
            emails=emails,
            phone=self.mobile(country),
            cid=self.customer_id() if rng.random() < 0.85 else None,
            cookies=[self.cookie() for _ in range(n_cookies)],
            device=self.uid("dev-") if rng.random() < 0.35 else None,
            consent=rng.random() < 0.75,
            landline=self.landline_for(country, address) if rng.random() < 0.25 else None,
        )

    def household(self, start: int, size: int) -> list[_Person]:
        """``size`` people at one address, mostly one surname, sharing a landline (most),
        a family email (most) and a tablet (about half); each keeps their own personal
        email, and most their own customer id and mobile."""
        rng = self.rng
        head = self.person(start, birth_years=(1950, 1990))
        country = head.address["country"]
        members = [head]
        for i in range(1, size):
            last = head.last if rng.random() < 0.8 else None
            years = (1950, 1990) if i == 1 else (1995, 2008)
            members.append(
                self.person(
                    start + i, country=country, last=last, address=head.address, birth_years=years
                )
            )
        landline = self.landline_for(country, head.address) if rng.random() < 0.85 else None
        family = self.family_email(members) if rng.random() < 0.8 else None
        tablet = self.cookie() if rng.random() < 0.55 else None
        device = self.uid("dev-") if tablet and rng.random() < 0.3 else None
        home = _Household(family, landline, tablet, hid=self.household_id(), device=device)
        for i, p in enumerate(members):
            p.household = home
            p.landline = landline
            if i > 0 and landline and rng.random() < 0.1:
                self.used_phones.discard(p.phone)
                p.phone = landline  # no mobile of their own: reachable at home only
        return members

    def family_email(self, members: list[_Person]) -> str:
        """The family's shared inbox, in the many shapes families choose."""
        rng = self.rng
        la = _local(transliterate(members[0].last))
        a = _local(transliterate(members[0].first)).split("-")[0]
        b = _local(transliterate(members[1].first)).split("-")[0]
        local = rng.choice(
            (
                f"familie.{la}",
                f"familie{la}",
                f"fam.{la}",
                f"{la}-family",
                f"{la}.familie",
                f"{la}s",
                f"die.{la}s",
                f"{a}.und.{b}",
                f"{a}-{b}.{la}",
                f"{la}.home",
                f"{la}{members[0].address['postcode'][:3].strip()}",
                f"{a}{b}",
            )
        )
        return self._unique_email(local, _MAIL_DOMAINS, _MAIL_WEIGHTS)

    # ---- noise ----------------------------------------------------------------------------
    def phone_as_typed(self, e164: str) -> str:
        """German numbers the ways agents and forms write them; foreign ones always with
        their international prefix (a national "0664 …" would read as a German number)."""
        cc, prefix, sub = self.split[e164]
        rng = self.rng
        if cc != "49":
            form = _FOREIGN_PHONE_FORMS[rng.randrange(len(_FOREIGN_PHONE_FORMS))]
        else:
            form = rng.choices(_DE_PHONE_FORMS, _DE_PHONE_WEIGHTS)[0]
        parts = {"e164": e164, "cc": cc, "prefix": prefix, "sub": sub}
        return form.format(**parts, a=sub[:-4], b=sub[-4:-2], c=sub[-2:], head=sub[:-2])

    def name_as_typed(self, name: str) -> str:
        """Besides case and typos, an umlaut typed as ue (Mueller) or dropped (Muller)."""
        if name != transliterate(name) and self.rng.random() < 0.15:
            return transliterate(name) if self.rng.random() < 0.65 else strip_umlauts(name)
        return super().name_as_typed(name)

    def typed_by_agent(self, p: _Person, email: str) -> str:
        """An agent types the address the caller spells out: now and then one character
        wrong. The typo is a value of its own, used once or twice, still the caller's."""
        rng = self.rng
        if p.typo and rng.random() < 0.1:
            typo = p.typo
            p.typo = ""  # used twice: not again
            return typo
        if rng.random() >= 0.05:
            return self.email_as_typed(email)
        local, _, domain = email.partition("@")
        for _ in range(10):
            kind = rng.randrange(4)
            i = rng.randrange(len(local))
            if kind == 0 and len(local) > 2 and i < len(local) - 1:
                typo_local = local[:i] + local[i + 1] + local[i] + local[i + 2 :]
            elif kind == 1 and len(local) > 3:
                typo_local = local[:i] + local[i + 1 :]
            elif kind == 2:
                typo_local = local[:i] + local[i] + local[i:]
            else:
                typo_local = local.replace(".", "", 1) if "." in local else local + "1"
            typo = f"{typo_local}@{domain}"
            if typo != email and typo not in self.used_emails:
                self.used_emails.add(typo)
                if p.typo is None:
                    p.typo = typo
                return typo
        return email

    # ---- calls ------------------------------------------------------------------------------
    def call_agent(self) -> _Agent:
        return self.rng.choice(self.team)

    def withheld_phone(self, ev: dict[str, Any], p: _Person, agent: _Agent | None) -> None:
        """Half the time the agent's habitual placeholder, now and then the number the
        caller dictates."""
        assert agent is not None
        r = self.rng.random()
        if r < 0.5:
            ev["phone"] = self.agent_phone(agent)
            self.mark(ev, "phone")
        elif r < 0.7:
            ev["phone"] = self.phone_as_typed(p.phone)

    def call_email(
        self, ev: dict[str, Any], p: _Person, agent: _Agent | None, withheld: bool
    ) -> None:
        """The CRM mask asks for an email: the agent types the caller's address (or the
        family's) or, when the caller gives none, their habitual placeholder."""
        assert agent is not None
        rng = self.rng
        if rng.random() < 0.55:
            if rng.random() < 0.55:
                home = p.household
                email = p.emails[0]
                if home is not None and home.family_email and rng.random() < 0.25:
                    email = home.family_email
                ev["email"] = self.typed_by_agent(p, email)
            else:
                ev["email"] = self.agent_email(agent)
                self.mark(ev, "email")

    # ---- journeys -------------------------------------------------------------------------
    def filler(self, p: _Person, idx: int) -> _Session:
        """Everyday traffic; household members also browse on the family tablet."""
        home = p.household
        if home is not None and home.tablet is not None and self.rng.random() < 0.15:
            return self.tablet_session(p, idx)
        return super().filler(p, idx)

    # ---- junk -----------------------------------------------------------------------------
    def junk_call_phone(self) -> str:
        return self.agent_phone(self.rng.choice(self.team))

    def internal_call_phone(self) -> str:
        return self.phone_as_typed(HOTLINE)

    def junk_mail(self) -> dict[str, Any]:
        """A mailing to a placeholder address the CRM exported to the email service."""
        rng = self.rng
        agent = rng.choice(self.team)
        email = next((e for e in agent.emails if "@" in e), "keine@mail.de")
        ev = self._base(rng.choice(("sent", "bounce")))
        ev["email"] = email
        return ev

    def qa_last_name(self) -> str:
        return self.rng.choice(("Test", "Tester", "Testkunde"))
