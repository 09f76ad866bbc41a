"""Synthetic conversations for scale and load tests: users, named speakers, dated sessions, topics, and personal
facts that recur and change over time ("I moved to Porto" ... months later "we left Porto for Lyon").

Deterministic: the same (seed, user index, turns) gives the same sessions on every machine, and each user is
generated independently, so any slice of users can be generated (or regenerated) on its own:

>>> gen = SynthGenerator(seed=7)
>>> sessions = gen.user_sessions(0, turns=200)          # about 200 turns for user "u00000"
>>> questions = gen.user_questions(0, turns=200, n=5)  # questions about that user's facts, with the answer

Texts mix templated small talk (many unique combinations) with fact statements that repeat, so a store sees
both mostly-unique texts and exact repeats (which the embedding cache deduplicates), as real chat logs do.
`unique_text_share` in the scale report says how many texts were unique.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterator

from convmem.models import Session, Turn

FIRST_NAMES = """Ana Ben Carla Dev Elif Farid Greta Hugo Ines Jonas Kemal Lena Marco Nadia Omar Paula Quinn Rosa Sami
Tara Umar Vera Wim Xenia Yusuf Zoe Alba Bruno Chiara Dario Emma Felix Gina Hamid Ivo Jana Karl Luca Mia Nico Olga
Pedro Rhea Sofia Tomas Uma Viktor Wanda Yara Zeno Aida Boris Cleo Dina Erik Fatima Gael Hana Igor Joao Kira Leo
Maya Noor Oscar Pia Raul Sara Theo Ulla Vito""".split()
LAST_NAMES = """Silva Novak Rossi Weber Costa Moreau Kowalski Jansen Ortiz Haddad Larsen Petrov Rahman Santos Keller
Dubois Nilsson Yilmaz Tanaka Okafor Brennan Fischer Lindqvist Marino Duarte Kaplan Varga Horvat Bauer Conti""".split()
CITIES = """Lisbon Porto Lyon Berlin Hamburg Madrid Seville Turin Milan Krakow Utrecht Ghent Vienna Graz Prague
Dublin Cork Oslo Bergen Tallinn Riga Vilnius Athens Split Zagreb Bologna Valencia Toulouse Leipzig Gdansk""".split()
JOBS = """nurse teacher electrician architect barista accountant pharmacist carpenter translator paramedic librarian
chef journalist plumber designer dentist engineer florist pilot lawyer""".split()
EMPLOYERS = """Northwind Contoso Fabrikam Initech Globex Umbrella Hooli Vandelay Wonka Stark Acme Tyrell Cyberdyne
Soylent Oscorp Wayne Gringotts Monarch Aperture Massive""".split()
PETS = "dog cat rabbit parrot tortoise hamster ferret".split()
PET_NAMES = """Biscuit Pepper Mango Luna Ziggy Olive Rocket Noodle Pixel Maple Tofu Juniper Comet Waffle
Clover""".split()
FOODS = """ramen paella tacos pierogi falafel risotto pho moussaka curry sushi goulash empanadas shakshuka lasagne
dumplings""".split()
HOBBIES = """climbing pottery chess birdwatching salsa running sailing knitting photography woodworking cycling
gardening swimming painting archery""".split()
CARS = "Golf Corolla Clio Civic Octavia Panda Leaf Model3 Yaris Astra".split()
INSTRUMENTS = "guitar piano violin cello drums ukulele saxophone flute".split()
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
RELATIONS = "sister brother cousin colleague neighbour friend mother father aunt uncle".split()
PLACES = """the market the park the gym the library the cafe the beach the museum the cinema the station the clinic
the office the bakery the lake the harbour the old town""".split("the ")[1:]
PLACES = ["the " + p.strip() for p in PLACES]
FEELINGS = "tired excited nervous relaxed busy happy stressed curious bored proud".split()
THINGS = """a new lamp concert tickets a used bike running shoes a board game a plant a coffee grinder a tent
a rain jacket a cookbook""".split(" a ")
THINGS = [t.strip() if t.strip().startswith("a ") else "a " + t.strip() for t in THINGS]
WHEN = ["yesterday", "last Saturday", "last week", "this morning", "two days ago", "last night", "today",
        "last Sunday", "a few days ago", "last month"]

# (fact key, value pool, statement templates (first mention / change), question, answer template)
FACTS: list[tuple[str, list[str], list[str], str]] = [
    ("city", CITIES, ["I live in {v} now.", "We finally moved to {v}, the flat is small but bright.",
                      "Since the move I am based in {v}."], "Where does {name} live?"),
    ("job", JOBS, ["I started working as a {v} this month.", "Work as a {v} is intense lately.",
                   "Being a {v} means early shifts for me."], "What does {name} do for work?"),
    ("employer", EMPLOYERS, ["My new job is at {v}.", "I signed the contract with {v} today.",
                             "Things at {v} are going well."], "Which company does {name} work for?"),
    ("pet", PET_NAMES, ["Our {p} {v} chewed my charger again.", "{v}, my {p}, had a vet check yesterday.",
                        "We adopted a {p} and named it {v}."], "What is the name of {name}'s pet?"),
    ("food", FOODS, ["My favourite food these days is {v}.", "I could eat {v} every single day.",
                     "I learned to cook {v} last weekend."], "What is {name}'s favourite food?"),
    ("hobby", HOBBIES, ["I picked up {v} as a hobby.", "I go {v} every week now.",
                        "{v} is what keeps me sane lately."], "What hobby did {name} take up?"),
    ("car", CARS, ["I bought a second-hand {v}.", "The {v} needs new tyres.",
                   "I drive a {v} these days."], "What car does {name} drive?"),
    ("instrument", INSTRUMENTS, ["I am learning the {v}.", "My {v} teacher says I improved.",
                                 "I practised the {v} for an hour."], "Which instrument is {name} learning?"),
    ("gym_day", WEEKDAYS, ["My gym day is {v} now.", "I moved my training to {v}.",
                           "Every {v} I go to the gym."], "On which day does {name} go to the gym?"),
    ("partner", FIRST_NAMES, ["My partner {v} says hi.", "{v} and I have been together for a while now.",
                              "I am going to dinner with {v}, my partner."], "What is the name of {name}'s partner?"),
]

SMALL_TALK = [
    "I went to {place} {when} and it was {feeling}.",
    "{when} I felt {feeling}, work was a lot.",
    "Do you have tips for {hobby}? I want to try it.",
    "My {relation} {other} recommended {place} for the weekend.",
    "I bought {thing} {when}.",
    "Can you remind me to call my {relation} {other} on {weekday}?",
    "The weather in {city} was terrible {when}.",
    "I am thinking about a trip to {city} in {month}.",
    "{other} cooked {food} for everyone {when}.",
    "I feel {feeling} about the meeting on {weekday}.",
    "We watched a film at {place} {when}, {other} loved it.",
    "Is it normal to feel {feeling} before a long trip?",
    "I spent {hours} hours on {hobby} {when}.",
    "My {relation} {other} is visiting from {city} next week.",
]
REPLIES = [
    "That sounds {adj}. How did it go?",
    "Good idea. Do you want me to keep a note of it?",
    "Noted. I will remind you on {weekday}.",
    "{adj} choice. What made you pick it?",
    "It is common to feel {feeling}; taking a short walk often helps.",
    "Thanks for telling me. Anything else about {topic}?",
    "That is {adj}! Tell me more about {other}.",
    "I saved that. You mentioned {topic} before, too.",
    "Sounds like a {adj} week overall.",
]
ADJS = "great lovely tough interesting fun exhausting sensible nice brave practical".split()
MONTHS = "January February March April May June July August September October November December".split()


@dataclass(frozen=True)
class Question:
    user: str
    query: str
    answer: str  # the fact's value at the end of the user's history
    fact: str


class SynthGenerator:
    """Deterministic conversation generator. `seed` fixes everything; user `i` is `u{i:05d}`."""

    def __init__(self, seed: int = 0, *, start: datetime = datetime(2023, 1, 2, tzinfo=timezone.utc),
                 session_turns: tuple[int, int] = (6, 20), fact_change: float = 0.04, fact_mention: float = 0.25,
                 assistant_share: float = 0.6):
        self.seed, self.start, self.session_turns = seed, start, session_turns
        self.fact_change, self.fact_mention, self.assistant_share = fact_change, fact_mention, assistant_share

    @staticmethod
    def user_id(index: int) -> str:
        return f"u{index:05d}"

    def _rng(self, index: int, salt: str = "") -> random.Random:
        return random.Random(f"{self.seed}:{index}:{salt}")

    def _profile(self, rng: random.Random) -> dict:
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        friends = rng.sample([n for n in FIRST_NAMES if n != name.split()[0]], 4)
        facts = {key: rng.choice(pool) for key, pool, _, _ in FACTS}
        return {"name": name, "first": name.split()[0], "friends": friends, "facts": facts,
                "pet_kind": rng.choice(PETS)}

    def _small_talk(self, rng: random.Random, prof: dict) -> str:
        tpl = rng.choice(SMALL_TALK)
        return _cap(tpl.format(place=rng.choice(PLACES), when=rng.choice(WHEN), feeling=rng.choice(FEELINGS),
                          hobby=rng.choice(HOBBIES), relation=rng.choice(RELATIONS), other=rng.choice(prof["friends"]),
                          thing=rng.choice(THINGS), weekday=rng.choice(WEEKDAYS), city=rng.choice(CITIES),
                          month=rng.choice(MONTHS), food=rng.choice(FOODS), hours=rng.randint(1, 6)))

    def _reply(self, rng: random.Random, prof: dict) -> str:
        return rng.choice(REPLIES).format(adj=rng.choice(ADJS), weekday=rng.choice(WEEKDAYS),
                                          feeling=rng.choice(FEELINGS), other=rng.choice(prof["friends"]),
                                          topic=rng.choice(HOBBIES + FOODS + CITIES))

    def user_sessions(self, index: int, turns: int) -> list[Session]:
        """Exactly `turns` turns of user `index`, split into sessions, oldest session first."""
        return self._generate(index, turns)[1]

    def _generate(self, index: int, turns: int) -> tuple[dict, list[Session]]:
        rng = self._rng(index)
        prof = self._profile(rng)
        user = self.user_id(index)
        when = self.start + timedelta(days=rng.randint(0, 30), hours=rng.randint(7, 20))
        sessions: list[Session] = []
        stated: dict[str, str] = {}  # the last value stated of each fact
        left, n = turns, 0
        lo, hi = self.session_turns
        while left > 0:
            size = min(left, rng.randint(lo, hi))
            left -= size
            with_assistant = rng.random() < self.assistant_share
            other = "Assistant" if with_assistant else rng.choice(prof["friends"])
            other_role = "assistant" if with_assistant else "user"
            out: list[Turn] = []
            t = when
            for j in range(size):
                mine = j % 2 == 0
                if mine:
                    if rng.random() < self.fact_change:  # a fact changes: the new value is stated
                        key, pool, _, _ = rng.choice(FACTS)
                        prof["facts"][key] = rng.choice([v for v in pool if v != prof["facts"][key]])
                        text = self._fact_text(rng, prof, key)
                        stated[key] = prof["facts"][key]
                    elif rng.random() < self.fact_mention:  # a current fact recurs, often word for word
                        key = rng.choice(FACTS)[0]
                        text = self._fact_text(rng, prof, key)
                        stated[key] = prof["facts"][key]
                    else:
                        text = self._small_talk(rng, prof)
                    out.append(Turn(speaker=prof["name"], text=text, role="user", timestamp=t))
                else:
                    text = self._reply(rng, prof) if with_assistant else self._small_talk(rng, prof)
                    out.append(Turn(speaker=other, text=text, role=other_role, timestamp=t))
                t += timedelta(seconds=rng.randint(20, 240))
            sessions.append(Session(user=user, session_id=f"{user}-s{n:05d}", started_at=when, turns=out,
                                    metadata={"topic": rng.choice(HOBBIES)}))
            n += 1
            # the next session starts later (same day to a week on), never before this one ended
            when = max(when + timedelta(days=rng.randint(0, 6), hours=rng.randint(-4, 4), minutes=rng.randint(0, 59)),
                       t + timedelta(minutes=30))
        prof["stated"] = stated
        return prof, sessions

    @staticmethod
    def _fact_text(rng: random.Random, prof: dict, key: str) -> str:
        for k, _, templates, _ in FACTS:
            if k == key:
                return rng.choice(templates).format(v=prof["facts"][key], p=prof["pet_kind"])
        raise KeyError(key)

    def user_questions(self, index: int, turns: int, n: int = 5) -> list[Question]:
        """Questions about facts this user stated, answered by the last value stated."""
        prof, _ = self._generate(index, turns)
        rng = self._rng(index, "questions")
        keys = sorted(prof["stated"])
        rng.shuffle(keys)
        out = []
        for key in (keys * (n // max(len(keys), 1) + 1))[:n] if keys else []:
            question = next(q for k, _, _, q in FACTS if k == key)
            out.append(Question(self.user_id(index), question.format(name=prof["first"]), prof["stated"][key], key))
        return out

    def sessions(self, users: int, turns: int) -> Iterator[Session]:
        """All sessions of `users` users sharing `turns` turns (as evenly as possible), user by user."""
        for i in range(users):
            yield from self.user_sessions(i, turns_for_user(i, users, turns))


def turns_for_user(index: int, users: int, turns: int) -> int:
    base, extra = divmod(turns, users)
    return base + (1 if index < extra else 0)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]
