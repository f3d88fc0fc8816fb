"""The text the demo tokenizer is trained on.

Everything the project will ever put in a prompt or read back as an answer: the
training questions over every condition term and location, the rewrite styles the
phrasing study uses, the instruction, a system prompt, and short and long answers.
The order is fixed (insertion order, duplicates dropped), so training is reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator

from compute.data.conditions import CONDITIONS, LOCATION_PHRASES, Condition, all_terms
from compute.data.questions import DEFAULT_INSTRUCTION, TRAINING_TEMPLATES

SYSTEM_PROMPTS: tuple[str, ...] = (
    "You are an expert radiologist.",
    "You are a helpful medical assistant.",
)

# Rewrite styles the phrasing study draws on: synonym frames, passive, existential,
# telegraphic, conversational, formal. {Term} is the term with a capital first letter.
REWRITE_TEMPLATES: tuple[str, ...] = (
    "Can {term} be seen?",
    "Any {term}?",
    "Is {term} seen on this radiograph?",
    "Is {term} visible on this image?",
    "Is {term} identified?",
    "Is {term} demonstrated on this film?",
    "Is there any evidence of {term}?",
    "Is there any sign of {term}?",
    "Are there signs of {term}?",
    "Are there any findings of {term}?",
    "Does this chest X-ray demonstrate {term}?",
    "Does the radiograph show {term}?",
    "Does this image suggest {term}?",
    "Does the patient have {term}?",
    "Is this X-ray consistent with {term}?",
    "Would you say there is {term}?",
    "Do you see {term}?",
    "Could there be {term}?",
    "There is {term}, is there not?",
    "{Term}?",
    "{Term} present?",
    "Evidence of {term}?",
    "Hey, can you tell me if there's {term}?",
    "Quick question: is there {term}?",
    "I was wondering whether this patient has {term}.",
    "Looking at this image, would you say there is {term}?",
    "Please assess this radiograph for {term}.",
    "Kindly indicate whether {term} is present.",
)

# Rewrite styles that name a location.
LOCATED_REWRITE_TEMPLATES: tuple[str, ...] = (
    "In the {location}, is there {term}?",
    "Is {term} seen in the {location}?",
    "Looking at the {location}, is there {term}?",
    "Is there {term} involving the {location}?",
)

# Questions that are not about one condition term.
GENERAL_QUESTIONS: tuple[str, ...] = (
    "Is the heart size normal?",
    "Is the heart enlarged?",
    "Are the lungs clear?",
    "Is this chest X-ray normal?",
    "Is there any abnormality?",
    "Describe the findings.",
)

SHORT_ANSWERS: tuple[str, ...] = ("Yes", "No", "yes", "no", "Yes.", "No.", "YES", "NO")

# Long answers in the style of an instruction-tuned model; {term} is the canonical term.
LONG_ANSWER_TEMPLATES: tuple[str, ...] = (
    "Based on the chest X-ray provided, there is no clear evidence of a significant {term}.",
    "Based on the chest X-ray provided, there is evidence of {term}.",
    "Yes, there is {term}.",
    "No, there is no {term}.",
    "Yes, the image shows {term}.",
    "No, the image does not show {term}.",
)

# Words every chat prompt holds outside the user's text (roles) and separators.
CHAT_SCAFFOLD: tuple[str, ...] = ("user", "model", "system", "\n", "\n\n", "\n\n\n", "\n\n\n\n")


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _locations(c: Condition) -> Iterator[str]:
    """Location phrases that fit the condition: its zones, on each side it can occur."""
    if not c.lateral:
        return
    for (_side, zone), phrases in LOCATION_PHRASES.items():
        if zone in c.zones:
            yield from phrases


def _with_location(question: str, location: str) -> str:
    return question[:-1] + f" in the {location}?"


def _condition_questions(c: Condition) -> Iterator[str]:
    locations = tuple(_locations(c))
    for term in all_terms(c):
        for template in TRAINING_TEMPLATES:
            question = template.format(term=term)
            yield question
            yield f"{question} {DEFAULT_INSTRUCTION}"
            for location in locations:
                yield _with_location(question, location)
        for template in REWRITE_TEMPLATES:
            yield template.format(term=term, Term=_capitalised(term))
        for template in LOCATED_REWRITE_TEMPLATES:
            for location in locations:
                yield template.format(term=term, location=location)
    for template in LONG_ANSWER_TEMPLATES:
        yield template.format(term=c.term)


def _all_lines() -> Iterator[str]:
    yield from SYSTEM_PROMPTS
    yield DEFAULT_INSTRUCTION
    yield from CHAT_SCAFFOLD
    yield from SHORT_ANSWERS
    yield from GENERAL_QUESTIONS
    for question in GENERAL_QUESTIONS:
        yield f"{question} {DEFAULT_INSTRUCTION}"
    for c in CONDITIONS:
        yield from _condition_questions(c)
    for (side, zone), phrases in LOCATION_PHRASES.items():
        yield f"{_capitalised(side)} {zone} zone."
        yield from phrases


def question_corpus() -> list[str]:
    """Every line of the corpus, in a fixed order, without duplicates."""
    return list(dict.fromkeys(_all_lines()))
