"""Structured-config schemas, registered with Hydra's ConfigStore.

Every YAML file of a config group starts from the group's schema (``defaults:
[/<group>_schema@_here_]``; a teacher file from its backend's, ``/teacher_<backend>_schema``), so
a typo in a key or a value of the wrong type fails at composition, and ``validate`` refuses
values that are well-typed but meaningless (``rounds=-1``) before any work starts. The names of
teacher backends, loaders and rationale formats come from ``fdd.runtime.registries``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import MISSING as NO_DEFAULT
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf, flag_override

from fdd.runtime import registries
from fdd.runtime.identity import COSMETIC, DEFINES, EXTENDS, REPLICATE

# the registries are the one source of these names
RATIONALE_FORMATS = tuple(registries.RATIONALE_FORMATS)
LOADERS = tuple(registries.DATA_LOADERS)
TEACHER_BACKENDS = tuple(registries.TEACHER_BACKENDS)
ARCHS = ("causal", "seq2seq")
RESUME_MODES = ("auto", "force", "never")
AUGMENTATION_MODES = ("fdd", "none", "easy_only", "hard_only", "random")
FEEDBACK_SIGNALS = ("trained", "probe")


class ConfigError(ValueError):
    """A configuration value that composes but cannot be run."""


ROLE = "role"  # field metadata: the key's role in a run's identity (fdd/runtime/identity.py)


CHOICES = "choices"  # field metadata: the closed set of values a string field takes (_one_of)


def _cosmetic(default=NO_DEFAULT, choices: Sequence[str] = (), **kw):
    """A field that changes how a run looks, where it lives or how fast it goes, not what it
    computes: out of the fingerprint, the run folder's name, the wandb group and the report's variants."""
    return field(default=default, metadata={ROLE: COSMETIC, **({CHOICES: tuple(choices)} if choices else {})}, **kw)


def _one_of(choices: Sequence[str], default=NO_DEFAULT):
    """A string field with a closed set of values, declared with the field: ``validate`` refuses
    any other value in one place (``check_choices``), named with the allowed ones. (OmegaConf has
    no Literal fields, and its Enum fields would put enum members into every saved config and
    fingerprint, so the choices live in the field's metadata.)"""
    return field(default=default, metadata={CHOICES: tuple(choices)})


def check_choices(obj: Any, prefix: str = "") -> None:
    """``ConfigError`` for the first field, anywhere under the dataclass ``obj``, whose value is
    not one of its declared choices (``_one_of``); dicts of dataclasses (held-out sources) are walked too."""
    for f in fields(obj):
        value, key = getattr(obj, f.name), f"{prefix}{f.name}"
        allowed = f.metadata.get(CHOICES)
        if allowed and value not in allowed:
            raise ConfigError(f"{key} must be one of {'|'.join(allowed)}, got {value!r}")
        if is_dataclass(value):
            check_choices(value, f"{key}.")
        elif isinstance(value, Mapping):
            for k, v in value.items():
                if is_dataclass(v):
                    check_choices(v, f"{key}.{k}.")


@dataclass
class SourceConfig:
    """Where one set of problems comes from."""

    loader: str = _one_of(LOADERS, MISSING)
    split: str = "train"
    path: Optional[str] = None  # original file, or a folder holding it; None = the Hugging Face Hub
    hub_name: Optional[str] = None  # overrides the loader's default hub id
    hub_config: Optional[str] = None
    limit: Optional[int] = None  # first N problems (after a seeded shuffle when shuffle=true)
    shuffle: bool = False
    n: int = 0  # synthetic: how many problems to generate
    families: Dict[str, float] = field(default_factory=dict)  # synthetic: base-family weights ({} = uniform)
    min_steps: int = 1  # synthetic: reasoning steps of the generated problems
    max_steps: int = 3
    # local: field names and format
    format: Optional[str] = None  # jsonl | json | csv; None = from the file suffix
    id_field: Optional[str] = None
    question_field: str = "question"
    answer_field: str = "answer"


@dataclass
class DatasetConfig:
    name: str = MISSING
    path: Optional[str] = None  # root folder of original files (e.g. ../shared/data)
    train: SourceConfig = field(default_factory=SourceConfig)
    # Held-out sets: name -> a SourceConfig mapping. Typed as Any, not SourceConfig, because
    # OmegaConf refuses to assign a plain mapping to a Dict[str, <dataclass>] entry, which is what
    # Hydra does for ``+dataset.eval.mine='{loader: local, path: ...}'``; a misspelled key of a
    # file's entry still fails at composition (struct), and ``validate`` types every entry as a
    # SourceConfig in place (typos and wrong types of a new entry fail there, before any work).
    eval: Dict[str, Any] = field(default_factory=dict)


def typed_sources(cfg: DictConfig) -> None:
    """Each ``cfg.dataset.eval`` entry as a SourceConfig node, in place: the schema's defaults
    filled in (the resolved config, and so a run's fingerprint, holds every field) and unknown
    keys or ill-typed values refused with a ConfigError naming the entry."""
    evals = OmegaConf.select(cfg, "dataset.eval")
    if evals is None:
        return
    _check(OmegaConf.is_dict(evals), f"dataset.eval must be a mapping of name -> source, got {evals!r}")
    for name in list(evals.keys()):
        node = evals._get_node(name)
        if OmegaConf.is_dict(node) and OmegaConf.get_type(node) is SourceConfig:
            continue
        _check(
            OmegaConf.is_dict(node),
            f"dataset.eval.{name} must be a mapping like {{loader: local, path: FILE}}, got {node!r}",
        )
        try:
            typed = OmegaConf.merge(OmegaConf.structured(SourceConfig), node)
        except Exception as e:  # noqa: BLE001 -- OmegaConf's errors: unknown key, wrong type
            msg = str(e).splitlines()[0]
            raise ConfigError(f"dataset.eval.{name}: {msg} (the keys of a source are SourceConfig's)") from None
        with flag_override(evals, ["struct", "readonly"], False):
            evals[name] = typed


@dataclass
class LoraConfig:
    enabled: bool = False
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: Optional[List[str]] = None  # None = peft's default for the architecture


@dataclass
class GenerationConfig:
    batch_size: int = 64
    max_new_tokens: int = 128
    backend: str = _one_of(("hf", "vllm"), "hf")  # vllm: causal students on GPU
    # also stop a row once the format's stop_rule sees a whole answer (pot: a complete `answer = ...` line)
    stop_at_answer: bool = False
    # backend=vllm: passed to vllm.LLM(...) (null values left out = vLLM's default); the engine
    # shares the GPU with nothing (fdd/runtime/gpu_plan.py). Other engine arguments: +student.generation.vllm.KEY=...
    vllm: Dict[str, Any] = field(default_factory=lambda: {"gpu_memory_utilization": 0.85, "max_model_len": None})


@dataclass
class StudentConfig:
    name: str = MISSING
    arch: str = _one_of(ARCHS, MISSING)
    pretrained: Optional[str] = None  # hub id or local folder; None = random init from model_config
    gguf_file: Optional[str] = None  # a .gguf file (or "pkg:<module>/<file>") to load weights from
    # auto (from pretrained) | byt5 | wordlevel (trained on the run's corpus)
    tokenizer: str = _one_of(("auto", "byt5", "wordlevel"), "auto")
    model_config: Dict[str, Any] = field(default_factory=dict)  # random init: config kwargs
    max_source_len: int = 256
    max_target_len: int = 256
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    batch_size: int = 16
    epochs: int = 3  # per round
    steps_per_round: Optional[int] = None  # a fixed optimisation budget per round (overrides epochs)
    continue_from_previous: bool = True  # round r starts from round r-1's weights, not the base
    # A killed training stage restarts from its beginning (bit-identical to an uninterrupted run);
    # true resumes from its last finished epoch instead: faster for long runs, not bit-identical.
    resume_from_last_epoch: bool = False
    gradient_checkpointing: bool = False
    compile: bool = False
    group_by_length: bool = True
    # Speed options (fdd/students/data.py, module.py), off by default so existing runs reproduce
    # bit-for-bit. fast_train: the same loss in exact arithmetic, computed with less work (causal:
    # no padding mask with right padding, so sdpa runs its causal kernel, and the LM head and
    # cross-entropy only at label positions; on CPU, dropout from a faster random generator);
    # it differs from the default in float rounding (and dropout draws) only.
    fast_train: bool = False
    # packing (causal): a batch's sequences concatenated into rows of at most pack_max_tokens
    # tokens, position ids restarting per sequence, attention kept within each sequence. The
    # batch holds the same batch_size sequences (the same steps and loss). Padding-free; the
    # attention of a row costs its full length squared unless the attention kernel skips masked
    # blocks (flash-attention varlen on GPU does, CPU sdpa does not).
    packing: bool = False
    pack_max_tokens: int = 1024
    lora: LoraConfig = field(default_factory=LoraConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    num_workers: int = _cosmetic(0)
    # Tokenizer fidelity (fdd/students/fidelity.py): escape what the tokenizer loses with added
    # tokens; items still lost are dropped and counted, and more than this share fails the fit.
    fidelity: bool = True
    max_unrepresentable: float = 0.5
    # items longer than max_source_len/max_target_len
    overlong: str = _one_of(("drop", "truncate", "error"), "drop")
    # Answer the held-out sets with the base student before round 1 (reported as round 0):
    # auto = on for pretrained students (a zero-shot starting point), off for random-init ones.
    eval_before_training: str = "auto"  # auto | true | false

    def evaluates_base(self) -> bool:
        """Whether the base student is evaluated before round 1."""
        choice = str(self.eval_before_training).lower()
        if choice == "auto":
            return bool(self.pretrained or self.gguf_file)
        return choice == "true"


@dataclass
class TeacherRoles:
    """The teacher's jobs on other backends. Each role is unset (null: this teacher config does
    it), the name of a fdd/conf/teacher/<name>.yaml, or a mapping of TeacherConfig fields
    ({config: <name>, ...overrides} starts from that file). new_rationale defaults to the
    rationale role's backend when it can write rationales for generated problems, else to this
    teacher config; problems sets harder and similar."""

    rationale: Optional[Any] = None  # rationales for the seed problems
    new_rationale: Optional[Any] = None  # rationales for generated problems (they have no gold)
    problems: Optional[Any] = None  # harder and similar problems
    harder: Optional[Any] = None
    similar: Optional[Any] = None


@dataclass
class PriceConfig:
    """Teacher prices in currency units per million tokens (dry_run's cost estimate)."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0


@dataclass
class TeacherConfig:
    """What every teacher backend has: sampling, prompts, cache, roles, failure handling, price.

    Each backend adds its own keys in a subclass (``TEACHER_CONFIGS``), so ``teacher=openai``
    holds exactly the keys that matter to it and a misspelled one fails at composition.
    ``TeacherConfig(backend="openai", ...)`` builds the backend's class (``teacher_config_class``)."""

    backend: str = MISSING  # a name in fdd.runtime.registries.TEACHER_BACKENDS
    model: Optional[str] = None
    # sampling (also the dry run's upper bound on reply tokens)
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 512
    # cache of every call: on | off | readonly
    cache: str = _one_of(("on", "off", "readonly"), "on")
    cache_dir: Optional[str] = _cosmetic(None)
    prompts: Dict[str, str] = field(default_factory=dict)
    roles: TeacherRoles = field(default_factory=TeacherRoles)  # jobs on other backends (fdd/teachers/roles.py)
    # failures (docs/guide.md "Teacher failures and cache health")
    max_failed_share: float = _cosmetic(0.1)  # a stage with more failed requests than this share is not marked done
    # reopen finished stages that recorded failed requests (and what depends on them)
    retry_failed: bool = _cosmetic(False)
    # recreate (move the damaged file aside, start afresh) | error
    cache_on_corrupt: str = _cosmetic("recreate", choices=("recreate", "error"))
    price: PriceConfig = field(default_factory=PriceConfig)  # for dry_run's cost estimate

    def __new__(cls, *args, **kwargs):
        # TeacherConfig(backend=X, ...) -> X's config class; subclasses (and copies) build themselves.
        if cls is TeacherConfig:
            cls = TEACHER_CONFIGS.get(kwargs.get("backend"), TeacherConfig)
        return super().__new__(cls)


@dataclass
class OracleTeacherConfig(TeacherConfig):
    """The offline simulator over the synthetic world (fdd/sim/oracle.py)."""

    backend: str = "oracle"
    error_rate: float = 0.0  # probability that the simulator writes a wrong rationale


@dataclass
class GoldTeacherConfig(TeacherConfig):
    """The dataset's own solutions (fdd/teachers/gold.py)."""

    backend: str = "gold"


@dataclass
class OpenAITeacherConfig(TeacherConfig):
    """Any OpenAI-compatible chat endpoint (fdd/teachers/openai.py)."""

    backend: str = "openai"
    # several are shared out; the same model may be served from elsewhere (so not part of the run)
    base_urls: List[str] = _cosmetic(default_factory=list)
    api_key: Optional[str] = None  # default: $OPENAI_API_KEY
    # requests in flight over all endpoints; null: the sum of the servers' parallel slots where
    # they tell (llama.cpp's /props), else DEFAULT_CONCURRENCY
    concurrency: Optional[int] = _cosmetic(16)  # every reply is cached per request
    # With stream, timeout_s bounds the wait for each piece of a reply (the first one included),
    # not the whole reply: a server still writing is never cut off. Without, the whole reply.
    stream: bool = _cosmetic(False)  # how a reply travels, not what it says
    timeout_s: float = _cosmetic(60.0)
    max_retries: int = _cosmetic(6)


@dataclass
class LocalModelTeacherConfig(TeacherConfig):
    """A model run in-process: weights from ``model`` or a ``gguf_file``."""

    gguf_file: Optional[str] = None
    dtype: str = "auto"


@dataclass
class HFTeacherConfig(LocalModelTeacherConfig):
    """A transformers causal LM in-process (fdd/teachers/hf.py)."""

    backend: str = "hf"
    batch_size: int = 8


@dataclass
class VLLMTeacherConfig(LocalModelTeacherConfig):
    """vLLM's offline engine in-process (fdd/teachers/vllm.py)."""

    backend: str = "vllm"
    vllm: Dict[str, Any] = field(default_factory=dict)  # vllm.LLM(...) arguments
    # how the engine leaves the GPU before a fit: release (shut down, rebuilt at the next
    # teacher stage) | sleep (vLLM sleep mode: weights parked in host memory, woken up next time)
    engine_release: str = _one_of(("release", "sleep"), "release")


# backend -> its config class, from the backend's one entry in fdd.runtime.registries
TEACHER_CONFIGS: Dict[str, type] = {name: globals()[b.config] for name, b in registries.TEACHER_BACKENDS.items()}


def teacher_config_class(backend: str) -> type:
    """The config class of ``backend``; a clear error naming the known backends otherwise."""
    try:
        return TEACHER_CONFIGS[backend]
    except KeyError:
        raise ConfigError(f"teacher.backend must be one of {TEACHER_BACKENDS}, got {backend!r}") from None


# Arguments of lightning.Trainer that the run owns (fdd/students/student.py sets them), with what
# sets them; validate() refuses trainer.<one of these> rather than let it clash or be ignored.
# (trainer.max_epochs / max_steps are not among them: set, they win over student.epochs /
# student.steps_per_round.)
TRAINER_ARGS_SET_BY_STUDENT = {
    "default_root_dir": "the run directory (paths.output_dir)",
    "logger": "the run (logger.* and the per-round CSV log)",
    "callbacks": "the student (student.resume_from_last_epoch)",
    "enable_checkpointing": "student.resume_from_last_epoch",
}


@dataclass
class TrainerConfig(Mapping):
    """``lightning.Trainer`` arguments (null = Lightning's default), so ``trainer.<argument>=...``
    overrides any of them and a misspelled one fails at composition. Reads as a mapping of the
    arguments that are set, which the student passes on. A test keeps the fields equal to
    ``inspect.signature(lightning.Trainer.__init__)``."""

    accelerator: Optional[Any] = None  # cpu | gpu | auto | ...
    strategy: Optional[Any] = None  # auto | ddp | ddp_spawn | ...
    devices: Optional[Any] = None  # int, list of ids, or auto
    num_nodes: Optional[int] = None
    precision: Optional[Any] = None  # 32 | bf16-mixed | 16-mixed | ...
    fast_dev_run: Optional[Any] = None
    min_epochs: Optional[int] = None
    min_steps: Optional[int] = None
    max_time: Optional[Any] = None
    limit_train_batches: Optional[Any] = None
    limit_val_batches: Optional[Any] = None
    limit_test_batches: Optional[Any] = None
    limit_predict_batches: Optional[Any] = None
    overfit_batches: Optional[Any] = None
    val_check_interval: Optional[Any] = None
    check_val_every_n_epoch: Optional[int] = None
    num_sanity_val_steps: Optional[int] = None
    log_every_n_steps: Optional[int] = _cosmetic(None)
    enable_progress_bar: Optional[bool] = _cosmetic(None)
    enable_model_summary: Optional[bool] = _cosmetic(None)
    accumulate_grad_batches: Optional[int] = None
    gradient_clip_val: Optional[float] = None
    gradient_clip_algorithm: Optional[str] = None
    deterministic: Optional[Any] = None
    benchmark: Optional[bool] = None
    inference_mode: Optional[bool] = None
    use_distributed_sampler: Optional[bool] = None
    profiler: Optional[Any] = None
    detect_anomaly: Optional[bool] = None
    barebones: Optional[bool] = None
    plugins: Optional[Any] = None
    sync_batchnorm: Optional[bool] = None
    reload_dataloaders_every_n_epochs: Optional[int] = None
    # null: student.epochs / student.steps_per_round decide; set, they win for every fit
    max_epochs: Optional[int] = None
    max_steps: Optional[int] = None
    # set by the student (TRAINER_ARGS_SET_BY_STUDENT): present so that setting one is refused by name
    default_root_dir: Optional[str] = None
    logger: Optional[Any] = None
    callbacks: Optional[Any] = None
    enable_checkpointing: Optional[bool] = None
    enable_autolog_hparams: Optional[bool] = None
    model_registry: Optional[str] = None

    def __iter__(self) -> Iterator[str]:
        return (f.name for f in fields(self) if getattr(self, f.name) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __getitem__(self, key: str) -> Any:
        if key not in {f.name for f in fields(self)} or getattr(self, key) is None:
            raise KeyError(key)
        return getattr(self, key)


@dataclass
class AugmentationConfig:
    mode: str = _one_of(AUGMENTATION_MODES, "fdd")
    per_easy: int = 1  # harder variations per easy problem
    per_hard: int = 1  # similar problems per hard problem
    budget: Optional[int] = None  # max new problems asked for per round (None = no cap)
    samples: int = 3  # k teacher rationales per new problem
    min_agree: int = 2  # of which at least this many must agree on the answer
    adaptive: bool = True  # ask min_agree rationales first, more only while agreement is open (fdd.method.agreement)
    # Votes count distinct rationales only (the same program twice is one vote; fdd.method.verify.vote).
    # null: on for LLM teachers, off for the simulator, which writes one rationale per problem by design.
    distinct_votes: Optional[bool] = None
    # Refuse new problems with nothing to solve or that restate their parent before buying their
    # rationales (fdd.method.verify.problem_defect); overlap = content-word Jaccard with the parent.
    # null: on for LLM teachers, off for the simulator, whose problems are well-formed by construction.
    screen_problems: Optional[bool] = None
    max_parent_overlap: Optional[float] = 0.5
    seed_samples: int = 1  # teacher rationales per seed problem at initialization
    # then up to this many more, one at a time, for a seed problem none of whose rationales matched
    # its gold answer (a sampled teacher often solves on a second try what it missed on the first)
    seed_retries: int = 0
    dedup_threshold: float = 0.9  # jaccard similarity of word 3-grams above which a problem is a duplicate
    decontam_ngram: int = 13  # reject new problems sharing a word n-gram this long with a test set (GPT-3 rule)


@dataclass
class LoggerConfig:
    wandb: bool = True
    # auto: online when WANDB_API_KEY is set, else offline
    mode: str = _one_of(("auto", "offline", "online", "disabled"), "auto")
    project: str = "fdd"
    entity: Optional[str] = None
    group: Optional[str] = None
    job_type: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    log_tables: bool = True
    log_artifacts: bool = True
    log_checkpoints: bool = False  # each round's student checkpoint as a wandb model artifact
    log_curves: bool = True  # per-step loss and learning rate as train/round_<r>/... in the same wandb run
    group_by_variant: bool = True  # group = <group>/<overrides without seed>, so seeds of a variant group together


@dataclass
class PathsConfig:
    root_dir: str = "."
    output_dir: str = MISSING  # the run directory
    cache_dir: str = MISSING  # shared across runs (teacher calls)
    log_dir: str = "logs"


@dataclass
class SandboxConfig:
    workers: int = _cosmetic(2)  # program-running processes
    timeout_s: float = 2.0
    memory_mb: int = 512
    cpu_s: int = 2  # CPU seconds per program (RLIMIT_CPU; reported as cpu_limit)
    # auto | require | off: Landlock + network namespace (fdd/sandbox/confine.py); a safety layer:
    # honest programs answer the same with or without it
    os_layer: str = _cosmetic("auto")


def check_sandbox(s: SandboxConfig) -> None:
    """Refuse sandbox settings under which no program could run (every one would 'time out'):
    fdd.sandbox.SandboxLimits, which the run builds from this section, is the one place that checks them."""
    from fdd.sandbox.limits import SandboxLimits  # the sandbox package only where a config is validated

    try:
        SandboxLimits.from_config(s)
    except ValueError as e:
        raise ConfigError(str(e)) from None


@dataclass
class HubConfig:
    model_id: Optional[str] = None  # e.g. user/fdd-student
    dataset_id: Optional[str] = None  # e.g. user/fdd-distill
    private: bool = False
    token: Optional[str] = None  # default: $HF_TOKEN / the cached login


@dataclass
class FinalConfig:
    """What leaves the run in ``final/``: the chosen student, its card and the distillation set."""

    enabled: bool = True
    select: str = _one_of(("last", "best"), "last")
    metric: str = "mean_accuracy"  # mean_accuracy | <held-out set name> (for select=best)
    push_to_hub: bool = False
    hub: HubConfig = field(default_factory=HubConfig)
    license: str = "apache-2.0"


@dataclass
class FeedbackConfig:
    """How the student's answers split the pool into easy and hard (fdd/method/feedback.py)."""

    # trained (the paper: answers on problems it was trained on) | probe
    signal: str = _one_of(FEEDBACK_SIGNALS, "trained")
    probe_fraction: float = 0.2  # probe: share of the pool held out of each round's training and answered
    samples: int = 1  # 1 = one greedy answer; k > 1 = k sampled answers, easy when the solve rate >= threshold
    temperature: float = 0.7  # sampling temperature when samples > 1
    easy_threshold: float = 0.5  # solve rate at or above which a problem is easy (samples > 1)


@dataclass
class FDDConfig:
    # a run may grow: rounds=3 after rounds=2 reuses rounds 0-2 (each stage depends only on earlier ones)
    rounds: int = field(default=3, metadata={ROLE: EXTENDS})
    seed: int = field(default=0, metadata={ROLE: REPLICATE})  # seeds of a variant group together
    rationale: str = _one_of(RATIONALE_FORMATS, "pot")
    train_subset: Optional[int] = None  # answer at most N problems of the pool per round for the split
    dry_run: bool = _cosmetic(False)  # print how many teacher calls the config would make, then exit
    task_name: str = "fdd"
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)  # lightning.Trainer arguments
    logger: LoggerConfig = _cosmetic(default_factory=LoggerConfig)  # tracking only
    paths: PathsConfig = _cosmetic(default_factory=PathsConfig)  # where the run, the cache and the logs live
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    extras: Dict[str, Any] = field(default_factory=dict)
    # Resuming a run directory (fdd/runtime/identity.py, fdd/runtime/stages.py): auto resumes a run whose
    # config fingerprint matches and refuses another; force resumes anyway; never refuses any
    # existing run. recompute_from=round_<r>/<stage> reruns that stage and every later one.
    resume: str = _cosmetic("auto", choices=RESUME_MODES)
    recompute_from: Optional[str] = _cosmetic(None)
    # final/ is rebuilt when its selection rule changes (fdd/reporting/final.py)
    final: FinalConfig = _cosmetic(default_factory=FinalConfig)


GROUP_SCHEMAS = {
    "student": StudentConfig,
    "dataset": DatasetConfig,
    "augmentation": AugmentationConfig,
    "feedback": FeedbackConfig,
    "logger": LoggerConfig,
    "paths": PathsConfig,
    "trainer": TrainerConfig,
}


# Keys outside the schema: Hydra's own settings and the sweeper's search space.
OUTSIDE_SCHEMA_ROLES = {"hydra": COSMETIC, "hparams_search": COSMETIC}


@functools.lru_cache(maxsize=1)
def key_roles() -> Dict[str, str]:
    """Every marked key (a dotted prefix) -> its role, read from the schema's field metadata,
    with each teacher backend's own fields under ``teacher.``."""
    out = dict(OUTSIDE_SCHEMA_ROLES)

    def walk(cls: type, prefix: str) -> None:
        for f in fields(cls):
            key = prefix + f.name
            if ROLE in f.metadata:
                out[key] = f.metadata[ROLE]
            elif f.default_factory is not NO_DEFAULT and is_dataclass(f.default_factory):
                walk(f.default_factory, key + ".")

    walk(FDDConfig, "")
    for cls in TEACHER_CONFIGS.values():
        walk(cls, "teacher.")
    return out


def key_role(key: str) -> str:
    """The role of a dotted config key or a command-line override's key (``+teacher.base_urls``,
    ``hydra/launcher``): that of its longest marked prefix, else ``defines``."""
    key = str(key).lstrip("+~").replace("/", ".")
    roles = key_roles()
    while key:
        if key in roles:
            return roles[key]
        key = key.rpartition(".")[0]
    return DEFINES


def register_configs() -> None:
    """The schemas as top-level ConfigStore entries (``<group>_schema``, ``teacher_<backend>_schema``),
    not inside the groups, so they are not offered as options; each group file starts from its
    schema with ``defaults: [/<group>_schema@_here_]``."""
    cs = ConfigStore.instance()
    cs.store(name="fdd_schema", node=FDDConfig)
    for group, node in GROUP_SCHEMAS.items():
        cs.store(name=f"{group}_schema", node=node)
    # one held-out source: a dataset file types each of its eval entries with
    # ``defaults: [/dataset_schema@_here_, /source_schema@eval.<name>]``
    cs.store(name="source_schema", node=SourceConfig)
    for backend, node in TEACHER_CONFIGS.items():
        cs.store(name=f"teacher_{backend}_schema", node=node)


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def _check_engine_args(name: str, kw: Dict[str, Any]) -> None:
    """vLLM engine arguments that are wrong before any GPU is touched."""
    util = kw.get("gpu_memory_utilization")
    _check(util is None or 0 < float(util) <= 1, f"{name}.gpu_memory_utilization must be in (0, 1], got {util}")
    for key in ("tensor_parallel_size", "max_model_len"):
        v = kw.get(key)
        _check(v is None or int(v) >= 1, f"{name}.{key} must be >= 1, got {v}")


# Far past any useful run; the call plan and the run directory hold one entry per round, so
# rounds=1000000000000 (a typo) grew dry_run to 8 GB before it printed anything.
MAX_ROUNDS = 1000


def validate(cfg: DictConfig) -> FDDConfig:
    """Refuse values that compose but cannot run; returns the typed config. Types the held-out
    sources of ``cfg`` in place (``typed_sources``)."""
    typed_sources(cfg)
    obj: FDDConfig = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    check_choices(obj)  # every field declared with _one_of
    _check(0 <= obj.rounds <= MAX_ROUNDS, f"rounds must be in [0, {MAX_ROUNDS}], got {obj.rounds}")
    s = obj.student
    _check(
        s.pretrained is not None or s.gguf_file is not None or bool(s.model_config),
        f"student {s.name!r} needs pretrained, gguf_file or model_config",
    )
    _check(s.lr > 0, f"student.lr must be > 0, got {s.lr}")
    _check(s.batch_size > 0 and s.epochs >= 0, "student.batch_size must be > 0 and student.epochs >= 0")
    _check(
        str(s.eval_before_training).lower() in ("auto", "true", "false"),
        f"student.eval_before_training must be auto|true|false, got {s.eval_before_training!r}",
    )
    _check(
        not (s.generation.backend == "vllm" and s.arch != "causal"),
        "student.generation.backend=vllm serves causal students only",
    )
    _check(
        0.0 <= s.max_unrepresentable <= 1.0,
        f"student.max_unrepresentable must be in [0, 1], got {s.max_unrepresentable}",
    )
    _check_engine_args("student.generation.vllm", s.generation.vllm)
    t = obj.teacher
    _check(t.backend in TEACHER_BACKENDS, f"teacher.backend must be one of {TEACHER_BACKENDS}, got {t.backend!r}")
    _check(
        isinstance(t, teacher_config_class(t.backend)),
        f"teacher.backend={t.backend} does not match the teacher config ({type(t).__name__}); "
        f"choose the backend with teacher={t.backend} (or a fdd/conf/teacher file of that backend)",
    )
    if isinstance(t, VLLMTeacherConfig):
        _check_engine_args("teacher.vllm", t.vllm)
    _check(0.0 <= t.max_failed_share <= 1.0, f"teacher.max_failed_share must be in [0, 1], got {t.max_failed_share}")
    a = obj.augmentation
    _check(
        a.samples >= 1 and 1 <= a.min_agree <= a.samples,
        f"augmentation needs 1 <= min_agree ({a.min_agree}) <= samples ({a.samples})",
    )
    _check(
        a.per_easy >= 0 and a.per_hard >= 0 and a.seed_samples >= 1,
        "augmentation.per_easy/per_hard must be >= 0 and seed_samples >= 1",
    )
    _check(a.budget is None or a.budget >= 0, f"augmentation.budget must be >= 0 or null, got {a.budget}")
    _check(a.decontam_ngram >= 1, f"augmentation.decontam_ngram must be >= 1, got {a.decontam_ngram}")
    _check(0 < a.dedup_threshold <= 1, f"augmentation.dedup_threshold must be in (0, 1], got {a.dedup_threshold}")
    f = obj.feedback
    _check(0 < f.probe_fraction < 1, f"feedback.probe_fraction must be in (0, 1), got {f.probe_fraction}")
    _check(f.samples >= 1, f"feedback.samples must be >= 1, got {f.samples}")
    _check(f.temperature > 0, f"feedback.temperature must be > 0, got {f.temperature}")
    _check(0 < f.easy_threshold <= 1, f"feedback.easy_threshold must be in (0, 1], got {f.easy_threshold}")
    _check(
        not (f.samples > 1 and s.generation.backend == "vllm"),
        "feedback.samples > 1 (sampled solve rate) is not available with student.generation.backend=vllm yet",
    )
    _check(
        obj.train_subset is None or obj.train_subset > 0, f"train_subset must be > 0 or null, got {obj.train_subset}"
    )
    d = obj.dataset
    for key in TRAINER_ARGS_SET_BY_STUDENT:
        _check(key not in obj.trainer, f"trainer.{key} is set by {TRAINER_ARGS_SET_BY_STUDENT[key]}; set that instead")
    _check_ranges(obj)
    check_sandbox(obj.sandbox)
    f = obj.final
    _check(
        f.metric == "mean_accuracy" or f.metric in d.eval,
        f"final.metric must be mean_accuracy or a held-out set ({sorted(d.eval)}), got {f.metric!r}",
    )
    _check(
        not f.push_to_hub or bool(f.hub.model_id or f.hub.dataset_id),
        "final.push_to_hub=true needs final.hub.model_id and/or final.hub.dataset_id",
    )
    return obj


def _in(value, lo=None, hi=None, lo_open=False, nullable=False) -> bool:
    if value is None:
        return nullable
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if lo is not None and (value <= lo if lo_open else value < lo):
        return False
    return hi is None or value <= hi


def _check_ranges(obj: FDDConfig) -> None:
    """Every numeric setting in its meaningful range, named with the range in the error."""
    s, g, t, a = obj.student, obj.student.generation, obj.teacher, obj.augmentation  # sandbox: check_sandbox
    # Keys validate() already checks with their own message (lr, batch_size, epochs, budget) are not repeated.
    checks = [  # (key, value, lo, hi, lo_open, nullable)
        ("seed", obj.seed, 0, None, False, False),
        ("student.max_source_len", s.max_source_len, 1, None, False, False),
        ("student.max_target_len", s.max_target_len, 1, None, False, False),
        ("student.weight_decay", s.weight_decay, 0, None, False, False),
        ("student.warmup_ratio", s.warmup_ratio, 0, 1, False, False),
        ("student.steps_per_round", s.steps_per_round, 1, None, False, True),
        ("student.num_workers", s.num_workers, 0, None, False, False),
        ("student.lora.r", s.lora.r, 1, None, False, False),
        ("student.lora.alpha", s.lora.alpha, 0, None, True, False),
        ("student.lora.dropout", s.lora.dropout, 0, 1, False, False),
        ("student.generation.batch_size", g.batch_size, 1, None, False, False),
        ("student.generation.max_new_tokens", g.max_new_tokens, 1, None, False, False),
        ("teacher.temperature", t.temperature, 0, 2, False, False),
        ("teacher.top_p", t.top_p, 0, 1, True, False),
        ("teacher.max_tokens", t.max_tokens, 1, None, False, False),
        ("augmentation.per_easy", a.per_easy, 0, None, False, False),
        ("augmentation.per_hard", a.per_hard, 0, None, False, False),
        ("augmentation.samples", a.samples, 1, None, False, False),
        ("augmentation.seed_samples", a.seed_samples, 1, None, False, False),
        ("augmentation.seed_retries", a.seed_retries, 0, None, False, False),
    ]
    backend_checks = [  # (key, lo, hi, lo_open, nullable) of the keys only some backends have
        ("concurrency", 1, None, False, True),
        ("timeout_s", 0, None, True, False),
        ("max_retries", 0, None, False, False),
        ("batch_size", 1, None, False, False),
        ("error_rate", 0, 1, False, False),
    ]
    checks += [(f"teacher.{k}", getattr(t, k), *rest) for k, *rest in backend_checks if hasattr(t, k)]
    for key, value, lo, hi, lo_open, nullable in checks:
        rng = ("(" if lo_open else "[") + f"{lo}, " + (f"{hi}]" if hi is not None else "inf)")
        _check(
            _in(value, lo, hi, lo_open, nullable),
            f"{key} must be in {rng}{' or null' if nullable else ''}, got {value!r}",
        )
    for name, src in [("train", obj.dataset.train), *obj.dataset.eval.items()]:
        _check(
            _in(src.limit, 1, nullable=True), f"dataset source {name!r}: limit must be >= 1 or null, got {src.limit}"
        )
        _check(_in(src.n, 0), f"dataset source {name!r}: n must be >= 0, got {src.n}")
        _check(
            _in(src.min_steps, 1) and _in(src.max_steps, src.min_steps),
            f"dataset source {name!r}: need 1 <= min_steps ({src.min_steps}) <= max_steps ({src.max_steps})",
        )
    if obj.recompute_from is not None:
        from fdd.runtime.stages import parse_stage

        try:
            parse_stage(obj.recompute_from)
        except ValueError as e:
            raise ConfigError(str(e)) from None
