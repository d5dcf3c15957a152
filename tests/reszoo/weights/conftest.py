import pytest

from tests.reszoo.weights.cases import make_states


@pytest.fixture(scope="session")
def states():
    """{case: (state dict, reference logits)} for every import case, made once."""
    return make_states()
