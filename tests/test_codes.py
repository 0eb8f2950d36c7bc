"""Gift card codes: generation, normalization, and what the check character catches."""

import itertools
from unittest import mock

import pytest

from accounts import codes
from accounts.codes import (
    ALPHABET,
    CODE_LENGTH,
    MAX_LENGTH,
    check_character,
    format_code,
    generate_code,
    is_valid_code,
    normalize_code,
)
from accounts.exceptions import AccountException, CodeGenerationError, InvalidArgument

from .factories import AccountFactory


def test_the_alphabet_has_a_prime_number_of_characters_and_no_look_alikes():
    assert len(ALPHABET) == len(set(ALPHABET)) == 31
    assert all(31 % divisor for divisor in range(2, 31))
    assert not set("01OIL") & set(ALPHABET)


@pytest.mark.django_db
def test_generated_codes_are_valid_normalized_and_of_the_default_length():
    code = generate_code()
    assert len(code) == CODE_LENGTH
    assert set(code) <= set(ALPHABET)
    assert normalize_code(code) == code
    assert is_valid_code(code)


@pytest.mark.django_db
def test_generated_codes_come_from_secrets():
    with mock.patch("accounts.codes.secrets.choice", return_value="7") as choice:
        code = generate_code(6)
    assert choice.call_count == 5
    assert code == "77777" + check_character("77777")


@pytest.mark.django_db
def test_a_code_already_on_an_account_is_drawn_again():
    taken = "2" * 15 + check_character("2" * 15)
    AccountFactory(code=taken)
    payloads = iter(["2" * 15, "3" * 15])
    with mock.patch("accounts.codes._random_payload", side_effect=lambda n: next(payloads)):
        code = generate_code()
    assert code == "3" * 15 + check_character("3" * 15)


@pytest.mark.django_db
def test_generation_gives_up_after_repeated_collisions():
    AccountFactory(code="2" * 15 + check_character("2" * 15))
    with mock.patch("accounts.codes._random_payload", return_value="2" * 15):
        with pytest.raises(CodeGenerationError, match="10 attempts"):
            generate_code()
    assert issubclass(CodeGenerationError, AccountException)


@pytest.mark.parametrize("length", [1, 31, 0, -4, "16", 16.0, True])
def test_generate_refuses_a_bad_length(length):
    with pytest.raises(InvalidArgument, match="code length must be an integer from 2 to 30"):
        generate_code(length)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("7kq2-m9xd-ht4r-wb3n", "7KQ2M9XDHT4RWB3N"),
        ("  7KQ2 M9XD\tHT4R WB3N\n", "7KQ2M9XDHT4RWB3N"),
        ("7kq2\u2013m9xd\u2014ht4r\u2010wb3n", "7KQ2M9XDHT4RWB3N"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalize_ignores_case_spaces_and_dashes(typed, stored):
    assert normalize_code(typed) == stored


def test_format_groups_a_code_by_four():
    assert format_code("7KQ2M9XDHT4RWB3N") == "7KQ2-M9XD-HT4R-WB3N"
    assert format_code("7kq2-m9xd-ht4") == "7KQ2-M9XD-HT4"
    assert format_code("ABCDEF", group=3) == "ABC-DEF"


def test_a_code_is_valid_however_it_is_typed():
    code = "7KQ2M9XDHT4RWB3" + check_character("7KQ2M9XDHT4RWB3")
    assert is_valid_code(code)
    assert is_valid_code(format_code(code).lower())
    assert is_valid_code(" ".join(code))


@pytest.mark.parametrize(
    "text", ["", "2", "A" * 31, "7KQ2M9XDHT4RWB30", "7KQ2M9XDHT4RWBO3", "7KQ2M9XD+T4RWB3N", 42]
)
def test_malformed_codes_are_invalid(text):
    assert not is_valid_code(text)


def test_check_character_refuses_foreign_characters_and_overlong_payloads():
    with pytest.raises(InvalidArgument, match="outside the code alphabet"):
        check_character("ABC0")
    with pytest.raises(InvalidArgument, match="at most 30 characters"):
        check_character("A" * MAX_LENGTH)
    assert is_valid_code("A" * (MAX_LENGTH - 1) + check_character("A" * (MAX_LENGTH - 1)))


# What the check character catches, proved exhaustively. The weighted sum is
# linear, so changing one position changes it by an amount that depends only
# on the position and the two characters, never on the rest of the code: it
# is enough to try every position of the longest code with every pair of
# characters, around any base code.


def longest_valid_code():
    payload = (ALPHABET * 2)[: MAX_LENGTH - 1]
    return payload + check_character(payload)


def test_every_single_substitution_is_caught():
    code = longest_valid_code()
    assert is_valid_code(code)
    caught = 0
    for position in range(MAX_LENGTH):
        for old, new in itertools.permutations(ALPHABET, 2):
            original = code[:position] + old + code[position + 1 :]
            typo = code[:position] + new + code[position + 1 :]
            assert codes._weighted_sum(original) != codes._weighted_sum(typo), (position, old, new)
            caught += 1
    assert caught == MAX_LENGTH * 31 * 30


def test_every_swap_of_two_neighbours_is_caught():
    code = longest_valid_code()
    caught = 0
    for position in range(MAX_LENGTH - 1):
        for first, second in itertools.permutations(ALPHABET, 2):
            before = code[:position] + first + second + code[position + 2 :]
            swapped = code[:position] + second + first + code[position + 2 :]
            assert codes._weighted_sum(before) != codes._weighted_sum(swapped), (position, first)
            caught += 1
    assert caught == (MAX_LENGTH - 1) * 31 * 30


@pytest.mark.django_db
def test_every_typo_in_a_generated_code_makes_it_invalid():
    code = generate_code()
    for position, character in enumerate(code):
        for other in ALPHABET.replace(character, ""):
            assert not is_valid_code(code[:position] + other + code[position + 1 :])
    for position in range(len(code) - 1):
        if code[position] != code[position + 1]:
            swapped = code[:position] + code[position + 1] + code[position] + code[position + 2 :]
            assert not is_valid_code(swapped)
