"""The rule extractors on hand-written sentences (facts and standing instructions), the validity timeline on its
own, and the LLM extractor's validation with a scripted chat model (a unit test of the parsing only)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from convmem.extract.facts import extract_facts, sentence_facts
from convmem.extract.facts_llm import llm_facts
from convmem.extract.instructions import classify, extract_instructions, is_instruction
from convmem.extract.timeline import contradictions, facts_at, timeline
from convmem.models import Fact, Session, Turn
from convmem.providers.chat import ChatModel, Completion
from convmem.providers.chat_json import JSONOutputError

FACTS = [
    ("I moved to Berlin last month.", [("lives in", "Berlin")]),
    ("So I just moved to the Bay Area two weeks ago", [("lives in", "the Bay Area")]),
    ("I live in New York with my wife.", [("lives in", "New York")]),
    ("In May I moved to Denver", [("lives in", "Denver")]),
    ("I work at Google as a software engineer.", [("works at", "Google")]),
    ("I work as a nurse", [("job", "nurse")]),
    ("I started running in March", [("running", "started")]),
    ("I've stopped running because of my knee", [("running", "stopped")]),
    ("I bought a new car, a Mazda.", [("latest purchase", "new car")]),
    ("I switched to oat milk.", [("switched to", "oat milk")]),
    ("My favourite colour is blue.", [("favorite color", "blue")]),
    ("my sister's name is Lena", [("sister's name", "Lena")]),
    ("I'm 34 years old", [("age", "34")]),
    ("I'm actually living in Tokyo right now, not Nikko.", [("lives in", "Tokyo")]),
    ("My wife and I just moved to Austin.", [("lives in", "Austin")]),
    ("I've been living in Porto for three years.", [("lives in", "Porto")]),
    ("I got promoted to senior engineer last week.", [("job", "senior engineer")]),
    ("I just got engaged!", [("relationship status", "engaged")]),
]
NOT_FACTS = [
    "Do I live in Paris?", "Did I tell you I moved to Rome?", "Where do I work at these days?",
    "If I moved to Rome, I would be happy.", "I might move to Lisbon.", "I want to move to Tokyo.",
    "Maybe I'll start running.", "My friend said I live in Oslo.", "I don't live in Madrid anymore.",
    "My point is that we should go.", "My problem is the noise.", "I got sick.", "I'm thinking of moving to Oslo.",
    "I think I dropped them off at the cleaners.", "I picked up a glass cleaner at the grocery store.",
    "I bought it from a fellow collector online.", "I've already started working on it.",
]
INSTRUCTIONS = [
    ("Always book aisle seats for me.", "general"), ("Never schedule meetings before 10am.", "general"),
    ("From now on, reply in French.", "language"), ("Please don't use emojis.", "format"),
    ("I prefer short answers.", "format"), ("I'm allergic to peanuts.", "allergy"), ("I'm vegetarian.", "diet"),
    ("I don't eat pork", "diet"), ("Call me Sam.", "address"),
    ("Oh, and by the way, I'm severely allergic to shellfish", "allergy"), ("Use metric units, always.", "units"),
    ("I'd like you to always answer in German.", "language"), ("I'm a bit lactose intolerant.", "diet"),
    ("I prefer Airbnb.", "general"), ("Keep your answers short.", "format"), ("Be concise.", "format"),
    ("Use metric units.", "units"), ("Don't use emojis.", "format"),
]
NOT_INSTRUCTIONS = [
    "Should I always wear a helmet?", "If I were vegan, what would I eat?", "I always go running on Sundays.",
    "Always wanted to see Rome.", "Never mind.", "Don't worry about it.", "Do you prefer tea?",
    "My friend prefers coffee.", "Never been to Paris.", "I want you to act as an advertiser.",
    "I'd prefer a park within a 30-minute drive.", "Always eager to learn new skills.",
    "Please write in English language.", "Use a spoon for the sauce.", "Keep the receipt.",
]
T = [datetime(2024, m, 1, 9, tzinfo=timezone.utc) for m in range(1, 13)]


@pytest.mark.parametrize("sentence, expected", FACTS)
def test_fact_rules_find_statements(sentence, expected):
    assert sentence_facts(sentence) == expected


@pytest.mark.parametrize("sentence", NOT_FACTS)
def test_questions_and_hypotheticals_are_not_facts(sentence):
    assert sentence_facts(sentence) == []


@pytest.mark.parametrize("sentence, kind", INSTRUCTIONS)
def test_instruction_rules_and_kinds(sentence, kind):
    assert is_instruction(sentence) and classify(sentence) == kind


@pytest.mark.parametrize("sentence", NOT_INSTRUCTIONS)
def test_not_instructions(sentence):
    assert not is_instruction(sentence)


def test_only_people_speak_facts_and_instructions():
    turns = [Turn(speaker="Caroline", role="participant", text="I moved to Austin. From now on, call me Caro.",
                  turn_id="d1"),
             Turn(speaker="assistant", role="assistant", text="I live in the cloud. Always be kind.", turn_id="d2")]
    facts = extract_facts(turns, "s1", T[0])
    assert [(f.subject, f.attribute, f.value, f.turn_id) for f in facts] == [("Caroline", "lives in", "Austin", "d1")]
    assert [i.text for i in extract_instructions("u", turns, "s1", T[0])] == ["From now on, call me Caro."]


def fact(value: str, when: datetime, session: str, attribute: str = "lives in", subject: str = "Ana") -> Fact:
    return Fact(subject=subject, attribute=attribute, value=value, valid_from=when, session_id=session,
                turn_id=session + "_1")


def test_timeline_closes_never_deletes_and_ignores_restatements():
    statements = [fact("Tokyo", T[6], "s3"), fact("Lisbon", T[0], "s1"), fact("lisbon", T[1], "s1b"),
                  fact("Berlin", T[3], "s2"), fact("ramen", T[0], "s1", attribute="favorite food")]
    records = [r for r in timeline(statements) if r.attribute == "lives in"]
    assert [(r.value, r.valid_from, r.valid_until) for r in records] == [
        ("Lisbon", T[0], T[3]), ("Berlin", T[3], T[6]), ("Tokyo", T[6], None)]
    assert [r.value for r in facts_at(statements, T[2])] == ["ramen", "Lisbon"]
    assert [r.value for r in facts_at(statements, T[3])] == ["ramen", "Berlin"]  # valid_from is inclusive
    assert [r.value for r in facts_at(statements)] == ["ramen", "Tokyo"]
    assert facts_at(statements, T[0].replace(hour=8)) == []
    assert facts_at(statements, subject="bob") == []


def test_contradictions_flag_same_session_and_same_day_changes():
    statements = [fact("Lisbon", T[0], "s1"), fact("Porto", T[0].replace(hour=11), "s1"),
                  fact("Berlin", T[5], "s2"), fact("Rome", T[5].replace(hour=18), "s3"),
                  fact("nurse", T[0], "s1", attribute="job")]
    [group] = contradictions(statements)
    assert group["attribute"] == "lives in" and [c["value"] for c in group["changes"]] == \
        ["Lisbon", "Porto", "Berlin", "Rome"]
    assert [(c["from"]["value"], c["to"]["value"], c["reason"]) for c in group["conflicts"]] == [
        ("Lisbon", "Porto", "same session"), ("Berlin", "Rome", "same day")]


class Scripted(ChatModel):
    """Answers each call with the next scripted text (to test parsing; not evidence for the feature)."""

    name = "scripted"

    def __init__(self, *answers: str):
        self.answers, self.calls = list(answers), []

    def generate(self, messages, **kw) -> Completion:
        self.calls.append(messages)
        return Completion(self.answers.pop(0) if self.answers else "no JSON here")


SESSION = Session(user="ana", session_id="s9", started_at=T[4], turns=[
    Turn(speaker="Ana", role="user", text="I moved to Berlin and work at Siemens."),
    Turn(speaker="bot", role="assistant", text="Nice! I work at OpenAI."),
    Turn(speaker="Ana", role="user", text="My cat is called Miso."),
])


def test_llm_facts_are_validated_and_grounded():
    model = Scripted('Sure! ```json\n[{"turn": 1, "attribute": "Lives in", "value": "Berlin"},'
                     ' {"turn": "2", "attribute": "cat name", "value": "Miso"},'
                     ' {"turn": 1, "attribute": "job", "value": "astronaut"},'
                     ' {"turn": 7, "attribute": "x", "value": "y"}, {"attribute": "no turn", "value": "Berlin"},'
                     ' "junk", {"turn": 1, "attribute": "", "value": "Siemens"}]\n```')
    facts = llm_facts(model, SESSION)
    assert [(f.subject, f.attribute, f.value, f.turn_id, f.extractor) for f in facts] == [
        ("Ana", "lives in", "Berlin", "s9_1", "llm"), ("Ana", "cat name", "Miso", "s9_3", "llm")]
    shown = model.calls[0][-1]["content"]
    assert "1. Ana: I moved to Berlin" in shown and "OpenAI" not in shown  # assistant turns are not shown


def test_llm_output_that_is_never_json_raises():
    with pytest.raises(JSONOutputError):
        llm_facts(Scripted("I cannot", "still no", "nope"), SESSION)
