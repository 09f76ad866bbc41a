"""Small seeded vocabularies shared by the task families (keys, values, names)."""

from __future__ import annotations

import random

ADJECTIVES = (
    "tasteless quiet brave hollow crimson gentle bitter frozen silent golden ancient rapid humble lucky fragile "
    "curious shiny narrow wooden dusty clever sleepy proud gloomy eager tender rusty polite vivid hungry"
).split()
NOUNS = (
    "cherry lantern falcon harbor violin pebble meadow compass thimble glacier orchard beacon saddle kettle "
    "lobster quarry ribbon walnut canyon feather anchor marble spindle tulip badger cobalt ferry mosaic"
).split()
MALE = (
    "James Robert John Michael David William Richard Joseph Thomas Charles Daniel Matthew Anthony Mark Paul "
    "Steven Andrew Kenneth Joshua Kevin Brian George Timothy Ronald Edward Jason Jeffrey Ryan Jacob Gary "
    "Nicholas Eric Jonathan Stephen Larry Justin Scott Brandon Benjamin Samuel Gregory Alexander Patrick Frank "
    "Raymond Jack Dennis Jerry Tyler Aaron"
).split()
FEMALE = (
    "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty Sandra Margaret "
    "Ashley Kimberly Emily Donna Michelle Carol Amanda Melissa Deborah Stephanie Dorothy Rebecca Sharon Laura "
    "Cynthia Amy Kathleen Angela Shirley Brenda Emma Anna Pamela Nicole Samantha Katherine Christine Helen "
    "Debra Rachel Carolyn Janet Maria Catherine Heather"
).split()
SURNAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson "
    "Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis "
    "Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall "
    "Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes"
).split()


def word_key(rng: random.Random) -> str:
    return f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}"


def number(rng: random.Random, digits: int = 7) -> str:
    return str(rng.randrange(10 ** (digits - 1), 10**digits))


def uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def make(kind: str, rng: random.Random) -> str:
    """A fresh key or value of `kind`: "words", "numbers" or "uuids"."""
    if kind == "words":
        return word_key(rng)
    if kind == "numbers":
        return number(rng)
    if kind == "uuids":
        return uuid(rng)
    from convmem.errors import InputError

    raise InputError(f"unknown kind {kind!r}: use 'words', 'numbers' or 'uuids'")


def distinct(kind: str, rng: random.Random, n: int, avoid: set[str] | None = None) -> list[str]:
    """n distinct items of `kind`, none in `avoid`."""
    seen = set(avoid or ())
    out: list[str] = []
    while len(out) < n:
        x = make(kind, rng)
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def people(rng: random.Random) -> list[tuple[str, str]]:
    """Every (full name, gender) pair, shuffled; gender is "m" or "f"."""
    pool = [(f"{f} {s}", "m") for f in MALE for s in SURNAMES] + [(f"{f} {s}", "f") for f in FEMALE for s in SURNAMES]
    rng.shuffle(pool)
    return pool
