import pytest

from course_utils import config


def test_profiles_are_frozen_and_ordered_by_scale():
    smoke, cpu, gpu = (config.PROFILES[n] for n in config.PROFILE_NAMES)
    for field in ("n_examples", "train_steps", "seq_len", "max_new_tokens"):
        assert getattr(smoke, field) <= getattr(cpu, field) <= getattr(gpu, field)
    with pytest.raises(AttributeError):
        smoke.train_steps = 99  # frozen dataclass
    assert smoke.to_dict()["name"] == "smoke"


def test_profile_from_env_and_argument(monkeypatch):
    monkeypatch.setenv(config.PROFILE_ENV, "cpu")
    assert config.profile().name == "cpu"
    assert config.profile("smoke").name == "smoke"
    monkeypatch.setenv(config.PROFILE_ENV, " GPU ")
    assert config.profile_name() == "gpu"


def test_auto_profile_follows_cuda(monkeypatch):
    monkeypatch.setenv(config.PROFILE_ENV, "auto")
    monkeypatch.setattr(config, "_cuda_available", lambda: True)
    assert config.profile_name() == "gpu"
    monkeypatch.setattr(config, "_cuda_available", lambda: False)
    assert config.profile_name() == "cpu"
    monkeypatch.delenv(config.PROFILE_ENV)
    assert config.profile_name() == "cpu"


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(config.PROFILE_ENV, "laptop")
    with pytest.raises(ValueError, match=r"Unknown course profile 'laptop'.*smoke, cpu, gpu.*COURSE_PROFILE"):
        config.profile()
    with pytest.raises(ValueError, match="from argument"):
        config.profile("tiny")


def test_sizes_for_profile_names_the_choices():
    from course_utils.config import sizes_for_profile

    assert sizes_for_profile({"smoke": 1, "cpu": 2}, "cpu") == 2
    with pytest.raises(ValueError, match=r"choose one of \['cpu', 'smoke'\]"):
        sizes_for_profile({"smoke": 1, "cpu": 2}, "tpu")
