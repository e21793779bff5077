"""The request models give exactly the messages the hand-written validation gave (the frontend shows
them): checked against that validation, kept here as the oracle, on generated bodies."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hireflow.errors import BadRequest
from hireflow.models import NewSession, parse


def legacy_validate(body: object) -> tuple[str, str]:
    """The validation as it was before the models (services/sessions.py), verbatim in behaviour."""
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    problem, difficulty = body.get("problem"), body.get("difficulty")
    if problem is None or difficulty is None or problem == "" or difficulty == "":
        raise BadRequest("Problem and difficulty are required")
    if not isinstance(problem, str):
        raise BadRequest("Problem must be a string")
    if len(problem) > 200:
        raise BadRequest("Problem must be at most 200 characters")
    problem = problem.strip()
    if not problem:
        raise BadRequest("Problem and difficulty are required")
    if difficulty not in ("easy", "medium", "hard"):
        raise BadRequest("Difficulty must be one of: easy, medium, hard")
    return problem, difficulty


def outcome(validate: Any, body: object) -> tuple[str, object]:
    try:
        return "ok", validate(body)
    except BadRequest as exc:
        return "error", exc.message


def new_validate(body: object) -> tuple[str, str]:
    new = parse(NewSession, body)
    return new.problem, new.difficulty


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.sampled_from(["", " ", "easy", "medium", "hard", "EASY", "Two Sum", "  x  ", "\t", "x" * 200, "x" * 201]),
    st.text(max_size=5),
    st.text(alphabet=" x", min_size=195, max_size=205),
)
values = st.one_of(scalars, st.lists(scalars, max_size=2), st.dictionaries(st.text(max_size=3), scalars, max_size=2))
bodies = st.one_of(
    st.fixed_dictionaries({}, optional={"problem": values, "difficulty": values, "extra": values, "code": values}),
    values,
)


@settings(max_examples=600, deadline=None)
@given(bodies)
def test_new_session_matches_the_old_validation(body):
    assert outcome(new_validate, body) == outcome(legacy_validate, body)
