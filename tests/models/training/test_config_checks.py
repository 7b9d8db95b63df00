"""--config settings of the wrong type or range are one sentence each, before any training."""

from __future__ import annotations

import pytest

from models.training.config import TrainConfig

LDA = {"arch": "pooled", "hidden": 0, "dropout": 0.0, "members": 1, "solver": "lda"}


@pytest.mark.parametrize(("values", "says"), [
    ({"lr": "fast"}, "lr must be a number greater than 0, not 'fast'"),  # TypeError traceback
    (LDA | {"hidden": 64}, "it needs \"arch\": \"pooled\" and \"hidden\": 0"),  # AssertionError in linear_fit
    ({"solver": "logistic"}, "it needs \"arch\": \"pooled\""),  # the default architecture is the CNN
    ({"val_fraction": 1.5}, "val_fraction must be a number greater than 0 and less than 1"),  # concatenate error
    ({"batch_size": 0}, "batch_size must be a whole number of at least 1, not 0"),  # range() arg 3
    (LDA | {"nuisance_weight": "x"}, "nuisance_weight must be a number at least 0, not 'x'"),  # accepted
    (LDA | {"temperature": -3}, "temperature must be a number greater than 0, not -3"),  # accepted
    ({"epochs": 2.5}, "epochs must be a whole number of at least 1, not 2.5"),
    ({"members": True}, "members must be a whole number of at least 1, not True"),
    ({"lr": float("nan")}, "lr must be a number greater than 0, not nan"),
    ({"dropout": 5}, "dropout must be a number at least 0 and less than 1, not 5"),
    ({"jitter": "yes"}, "jitter must be true or false, not 'yes'"),
    ({"arch": "transformer"}, "arch must be one of parallel_cnn, pooled, not 'transformer'"),
    ({"nuisance": 3}, "nuisance must be a string, not 3"),
])
def test_a_bad_setting_is_one_sentence(values, says):
    with pytest.raises(ValueError) as err:
        TrainConfig.from_dict(values)
    assert says in str(err.value)


def test_good_settings_and_cards_still_read():
    """The shipped recipes pass; a card's config (strict=False) is read as it was written."""
    assert TrainConfig.from_dict(LDA | {"nuisance_weight": 0.05, "c": 0.03}).solver == "lda"
    assert TrainConfig.from_dict({"epochs": 3, "lr": 1e-3, "val_fraction": 0.2, "jitter": False}).epochs == 3
    assert TrainConfig.from_dict({"epochs": 0}, strict=False).epochs == 0  # a test bundle's card
