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


def test_every_section_has_every_profile_and_builds():
    for section, table in config.SIZES.items():
        assert set(table) == set(config.PROFILE_NAMES), section
        for name in config.PROFILE_NAMES:
            assert config.sizes(section, name) is not None  # a typed section builds its class
    assert config.sizes("assistant", "cpu").profile == "cpu" and config.sizes("course", "gpu").name == "gpu"
    assert config.sizes("ch08", "cpu").steps == config.SIZES["ch08"]["cpu"]["steps"]
    assert config.sizes("new_knowledge", "smoke").slick.n_sets == 2  # a nested table builds its class too


def test_sizes_follow_the_active_profile_and_name_bad_input(monkeypatch):
    monkeypatch.setenv(config.PROFILE_ENV, "smoke")
    assert config.sizes("ch03") == config.sizes("ch03", "smoke")
    with pytest.raises(ValueError, match=r"Unknown size section 'ch99'.*course, ch03"):
        config.sizes("ch99")
    with pytest.raises(ValueError, match="Unknown course profile 'tpu'"):
        config.sizes("ch03", "tpu")


def test_sizes_are_written_only_in_config():
    """No lesson or module of the package writes a size per profile or branches on the profile's name."""
    import re
    from pathlib import Path

    root = Path(config.__file__).resolve().parents[1]
    per_profile = re.compile(r"""\{\s*["'](smoke|cpu|gpu)["']\s*:|\[P\.name\]|P\.name\s*[!=]="""
                             r"""|\.name\s*[!=]=\s*["'](smoke|cpu|gpu)""")
    files = [*root.glob("lessons_src/*.py"), *root.glob("course_utils/**/*.py")]
    offenders = [f"{f.relative_to(root)}:{i}" for f in files if f.name != "config.py"
                 for i, line in enumerate(f.read_text().splitlines(), 1) if per_profile.search(line)]
    assert not offenders, f"sizes per profile outside course_utils/config.py SIZES: {offenders}"
