"""prompt_problems renders and counts only the questions that could come near the context: the bound
it trusts (the prompt around no question + the question alone + JOIN_SLACK) must hold for every
family's chat template, for the study's own rewrites and for odd spacing and scripts."""

import pytest

from compute.demo.tiny import TINY_FAMILIES
from compute.model.loading import load_model
from compute.model.session import JOIN_SLACK
from compute.variants import generate_variants

QUESTIONS = ["Is there pleural effusion?", "  Is there   edema?  ", "Is the heart enlarged?\n\nPlease check.",
             "¿Hay derrame pleural?", "胸水はありますか?", "Is there a pneumothorax (left > right)?",
             "no", "?", "Is there edema " + "and more " * 40 + "?"]
QUESTIONS += [v.text for v in generate_variants("Is there pleural effusion?", "pleural_effusion", 10, 0)]


@pytest.mark.parametrize("family", ["demo", *TINY_FAMILIES])
def test_a_question_in_its_prompt_stays_within_the_bound(family, tiny_checkpoints):
    session = load_model("models/demo" if family == "demo" else str(tiny_checkpoints[family]))
    tokenizer = session.processor.tokenizer
    frame = session._prompt_lengths([""], session.prompt)[0]
    alone = tokenizer(QUESTIONS, add_special_tokens=False)["input_ids"]
    for question, own, length in zip(QUESTIONS, alone, session._prompt_lengths(QUESTIONS, session.prompt)):
        assert length <= frame + len(own) + JOIN_SLACK, (family, question, length, frame, len(own))


def test_a_question_near_the_context_is_counted_exactly(demo_session):
    context, reply = demo_session.context_length, demo_session.decode.max_new_tokens
    frame = demo_session._prompt_lengths([""], demo_session.prompt)[0]
    words = "and more " * ((context - frame - reply) // 2)
    lengths = {}
    for extra in range(0, 400, 7):  # walk a question across the limit: refused exactly when it does not fit
        question = "Is there edema " + words[:len(words) - extra * 9] + "?"
        (length,) = demo_session._prompt_lengths([question], demo_session.prompt)
        (problem,) = demo_session.prompt_problems([question])
        assert (problem is not None) == (length + reply > context), (length, problem)
        lengths[problem is None] = True
    assert lengths == {True: True, False: True}  # both sides of the limit were seen
