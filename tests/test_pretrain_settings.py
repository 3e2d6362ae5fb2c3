"""Pre-training settings from the config (sarssl.pretrain_settings): errors that name the
run and the key."""

import pytest

from sarssl.errors import ConfigError
from sarssl.pretrain_settings import settings_from_config


def test_config_errors_name_the_run_and_the_key(tiny_store):
    run = {"name": "r1", "architecture": "vit_tiny_patch16_224", "epochs": 2, "batch_size": 4}
    with pytest.raises(ConfigError, match=r"r1: dino overrides \['lerning_rate'\]"):
        settings_from_config({**run, "dino": {"lerning_rate": 1}}, {}, [str(tiny_store)], 32)
    with pytest.raises(ConfigError, match="'vit_tinny' is not a timm model"):
        settings_from_config({**run, "architecture": "vit_tinny"}, {}, [str(tiny_store)], 32)
    with pytest.raises(ConfigError, match=r"warmup_epochs=10 must be within 0..epochs \(2\)"):
        settings_from_config(run, {"warmup_epochs": 10}, [str(tiny_store)], 32)
