"""The one configuration object that the CLI, the server and every graph read.

Values come from the environment (prefix ``LOOM_``) or a ``.env`` file. Graphs read settings
through :func:`get_settings` at call time, never at import, so a test or a server can point
Loom at another data directory without reloading modules.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, StrictFloat, StrictInt, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_LOCAL_MODEL = "local:smollm2"
Grant = Literal["read", "write", "destructive"]
FREE_PROVIDERS = frozenset({"local", "fake"})
"""Models that run in this process (the embedded model, the test model): they cost nothing."""
DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")
"""OpenAI answers with a dated snapshot name (``gpt-4o-mini-2024-07-18``); the table prices the model."""


class ModelPrice(BaseModel):
    """USD per million tokens."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)


DEFAULT_MODEL_PRICES: dict[str, ModelPrice] = {
    # Standard-tier list prices (USD per 1M tokens) of OpenAI's pricing page, as third-party summaries
    # dated March–June 2026 report them (deploybase.ai/articles/openai-pricing, tokenmath.io); read on
    # 2026-12-02, not from OpenAI directly. Check before relying on them; LOOM_MODEL_PRICES overrides.
    "openai:gpt-4o": ModelPrice(input=2.50, output=10.00),
    "openai:gpt-4o-mini": ModelPrice(input=0.15, output=0.60),
    "openai:gpt-4.1": ModelPrice(input=2.00, output=8.00),
    "openai:gpt-4.1-mini": ModelPrice(input=0.40, output=1.60),
    "openai:gpt-4.1-nano": ModelPrice(input=0.10, output=0.40),
    "openai:gpt-5": ModelPrice(input=1.25, output=10.00),
    "openai:gpt-5-mini": ModelPrice(input=0.25, output=2.00),
    "openai:o4-mini": ModelPrice(input=1.10, output=4.40),
}


class Budget(BaseModel):
    """Limits on what one run may spend; a run that reaches one stops at its next node boundary."""

    model_config = ConfigDict(extra="forbid")

    max_usd: Annotated[StrictFloat, Field(gt=0)] | None = Field(default=None, description="USD, by the price table.")
    max_tokens: Annotated[StrictInt, Field(ge=1)] | None = Field(default=None, description="Input plus output tokens.")
    max_model_calls: Annotated[StrictInt, Field(ge=1)] | None = Field(default=None, description="Model calls made.")


class McpServer(BaseModel):
    """One MCP server in langchain-mcp-adapters' connection format, plus the permission level of its tools.

    Keys other than ``permission`` and ``tools`` (``env``, ``cwd``, ``headers``, ``timeout``…) go to the adapter.
    """

    model_config = ConfigDict(extra="allow")

    transport: Literal["stdio", "streamable_http", "streamable-http", "http"]
    command: str | None = Field(default=None, description="stdio: the program that runs the server.")
    args: list[str] = Field(default_factory=list, description="stdio: its arguments.")
    url: str | None = Field(default=None, description="streamable_http: the endpoint, http:// or https:// only.")
    permission: Grant = Field(default="destructive", description="The level of this server's tools.")
    tools: dict[str, Grant] = Field(default_factory=dict, description="Tool name → its level, over `permission`.")

    @model_validator(mode="after")
    def _reachable(self) -> McpServer:
        if self.transport == "stdio" and not self.command:
            raise ValueError("command: a stdio server needs the command that runs it")
        if self.transport != "stdio" and not (self.url or "").lower().startswith(("http://", "https://")):
            raise ValueError(f"url: an HTTP server needs an http:// or https:// URL, not {self.url!r}")
        return self

    def connection(self) -> dict[str, object]:
        """The adapter's connection dict: every key but Loom's own."""
        return self.model_dump(
            exclude={"permission", "tools", *(() if self.transport == "stdio" else ("args",))}, exclude_none=True
        )

    def level_of(self, tool: str) -> Grant:
        return self.tools.get(tool, self.permission)


def model_key(provider: str | None, model: str) -> str:
    """``provider:model``, as the price table keys it; a name that already carries its provider is kept."""
    return model if ":" in model or not provider else f"{provider}:{model}"


class Settings(BaseSettings):
    """Loom's settings. Model choice is a ``provider:model`` string (see ``nodes.models``)."""

    model_config = SettingsConfigDict(
        env_prefix="LOOM_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
    )

    # models: the default and per-role model, the embedded model, providers' keys and endpoints --------------------
    model: str | None = Field(
        default=None,
        description="Default model for every role; when unset, openai:gpt-4o-mini if an OpenAI "
        f"key is configured, else the embedded {DEFAULT_LOCAL_MODEL}.",
    )
    models: dict[str, str] = Field(
        default_factory=dict,
        description="Per-role overrides, e.g. LOOM_MODELS__ROUTER=local:smollm2.",
    )
    model_temperature: float = 0.2
    model_max_tokens: int = Field(default=512, ge=16, le=32_768)
    local_context_tokens: int = Field(default=4096, ge=512, description="Context window of each embedded-model slot.")
    local_parallel: int = Field(
        default=4, ge=1, le=64, description="Embedded-model slots: requests generated together (continuous batching)."
    )
    local_threads: int = Field(
        default_factory=lambda: os.cpu_count() or 2, ge=1, le=256, description="CPU threads of the embedded model."
    )
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("LOOM_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("LOOM_OPENAI_BASE_URL", "OPENAI_BASE_URL")
    )
    azure_openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("LOOM_AZURE_OPENAI_API_KEY", "AZURE_OPENAI_API_KEY"),
    )
    azure_openai_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("LOOM_AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_ENDPOINT"),
    )
    openai_api_version: str | None = Field(
        default=None, validation_alias=AliasChoices("LOOM_OPENAI_API_VERSION", "OPENAI_API_VERSION")
    )
    image_model: str = "dall-e-3"

    # storage: the data folder, the checkpointer's and Loom's own databases ----------------------------------------
    data_dir: Path = Field(default=Path(".loom"), description="Checkpoints, stores, artifacts.")
    checkpoint_url: str | None = Field(
        default=None,
        description="sqlite:///path or postgresql://…; default: SQLite under data_dir.",
    )
    sqlite_synchronous: Literal["NORMAL", "FULL"] = Field(
        default="NORMAL",
        description="SQLite (WAL) commit durability: NORMAL survives a killed process, FULL also a power cut "
        "at about 18 ms more per run on a shared disk (fsync per checkpoint).",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL for Loom's own tables; default: SQLite under data_dir.",
    )

    # agents: what the graphs may do in one turn or run ------------------------------------------------------------
    max_handoffs: int = Field(default=3, ge=0, le=20, description="Handoffs allowed per turn.")
    max_tool_rounds: int = Field(default=6, ge=1, le=50, description="Agent↔tool loops per turn.")
    direct_tool_dispatch: bool = Field(
        default=True, description="Build tool calls for plain requests without a model call."
    )
    quote_tool_results: bool | None = Field(
        default=None,
        description="After a tool round, the assistant's specialists (and plan_execute's synthesizer, after a "
        "plan) answer with the tools' results instead of a model summary; unset: only for local: models, whose "
        "summaries of tool output are unreliable.",
    )
    router_confidence: float = Field(
        default=0.4,
        ge=0.0,
        le=1.0,
        description="First-stage confidence that skips the LLM (0.4: a clear keyword lead beats the embedded model, "
        "which is near chance; see `loom eval components`).",
    )
    memory: bool = Field(
        default=True,
        description='Long-term memory in the chat graphs ("remember that …", recalled into later threads); a run '
        "turns it off with config.configurable.memory=false.",
    )
    memory_recall_tokens: int = Field(
        default=400, ge=0, le=20_000, description="Tokens of recalled memories a prompt may carry (≈4 characters each)."
    )
    support_retry_budget: int = Field(
        default=3, ge=1, le=20, description="Invalid tool calls (unknown tool, bad arguments) a support run may make."
    )
    knowledge_dir: Path | None = Field(
        default=None,
        description="Folder of Markdown, text and PDF documents for search_knowledge_base; "
        "default: the demo articles shipped in services/knowledge/documents.",
    )
    knowledge_top_k: int = Field(default=5, ge=1, le=50, description="Passages search_knowledge_base returns.")
    tavily_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("LOOM_TAVILY_API_KEY", "TAVILY_API_KEY"),
        description="Enables the search_web research tool (Tavily); without it the tool is absent.",
    )
    supervisor_max_rounds: int = Field(
        default=8, ge=1, le=50, description="Supervisor decisions per run before it finishes with what exists."
    )
    review_threshold: float = Field(
        default=0.8, ge=0.0, le=1.0, description="Share of rubric criteria a draft must pass to be published."
    )
    max_revisions: int = Field(default=2, ge=0, le=10, description="Pipeline revisions after the first draft.")
    code_max_attempts: int = Field(
        default=4, ge=1, le=20, description="Code generations (first + fixes) the code-reflection loop may run."
    )
    plan_max_steps: int = Field(default=8, ge=1, le=50, description="Steps a plan may have.")
    plan_max_attempts: int = Field(
        default=3, ge=1, le=10, description="Planner calls per plan when validation sends errors back."
    )
    plan_step_retries: int = Field(default=3, ge=0, le=10, description="Retries of a failing plan step.")
    plan_retry_initial_s: float = Field(
        default=0.1, ge=0, le=60, description="Backoff: retry 1 is immediate, then this, doubling each time."
    )
    plan_retry_backoff: float = Field(default=2.0, ge=1.0, le=10.0, description="Backoff multiplier.")
    plan_max_replans: int = Field(default=2, ge=0, le=10, description="Replans of a failed plan part per task.")

    # support webhooks: escalations and resolutions posted to a URL ------------------------------------------------
    support_webhook_url: str | None = Field(
        default=None, description="Called (POST, JSON) when a support request is escalated or resolved."
    )
    support_webhook_retries: int = Field(default=3, ge=0, le=10, description="Retries after a failed webhook call.")
    support_webhook_backoff_s: float = Field(
        default=0.5, ge=0.0, le=60.0, description="First retry delay; doubles each retry."
    )
    support_webhook_timeout_s: float = Field(default=5.0, gt=0.0, le=60.0, description="Per webhook attempt.")

    # sandbox: the fenced child process that runs model-written Python ---------------------------------------------
    sandbox_timeout_s: float = Field(
        default=10.0, gt=0, le=600, description="Wall-clock limit of one run_python call (CPU limit follows it)."
    )
    sandbox_memory_mb: int = Field(default=1024, ge=64, le=65_536, description="Address-space limit of sandboxed code.")
    sandbox_max_output_bytes: int = Field(
        default=64_000, ge=1_024, le=16_000_000, description="Stdout/stderr kept per stream; more ends the run."
    )
    sandbox_max_file_bytes: int = Field(
        default=16_000_000, ge=1_024, le=1_000_000_000, description="Largest file sandboxed code may write."
    )

    # serving: the graphs served, the run queue and its workers, streams, Redis (scale mode) -----------------------
    graphs_config: Path | None = Field(
        default=None,
        description="A langgraph.json naming the graphs to serve (loom --config); default: ./langgraph.json in the "
        "working directory if present, else Loom's own.",
    )
    server_concurrency: int = Field(
        default=10,
        ge=1,
        le=256,
        description="Runs executing at once per process (langgraph-api's default N_JOBS_PER_WORKER); runs on the "
        "embedded model also wait for one of its LOOM_LOCAL_PARALLEL slots.",
    )
    server_queue_size: int = Field(default=64, ge=1, le=100_000, description="Accepted runs waiting; then 429.")
    run_workers: bool = Field(
        default=True, description="Execute runs in this process; `loom serve --no-workers` serves the API only."
    )
    run_lease_s: float = Field(
        default=10.0, ge=0.5, le=3600, description="A claimed run's lease; renewed every third of it while it runs."
    )
    run_max_attempts: int = Field(
        default=3, ge=1, le=100, description="Attempts (first + after lost leases) before a run ends in error."
    )
    run_poll_s: float = Field(
        default=1.0, gt=0, le=60, description="Longest a worker waits before looking for queued runs unprompted."
    )
    keepalive_s: float = Field(
        default=5.0, gt=0, le=300, description="Silence before a keep-alive on run streams, joins and /wait (proxies)."
    )
    stream_buffer_events: int = Field(
        default=20_000, ge=100, description="Events kept per run so a client can rejoin with Last-Event-ID."
    )
    stream_ttl_s: float = Field(
        default=600.0, gt=0, le=7 * 86_400, description="How long a finished run's events can still be joined."
    )
    stream_keep_finished: int = Field(
        default=1_000, ge=1, le=1_000_000, description="Finished runs' event streams kept in memory (embedded)."
    )
    redis_url: str | None = Field(
        default=None, description="redis://… : run events and cancel signals on Redis (scale mode); unset: in process."
    )
    detect_blocking: bool = Field(
        default=False,
        description="Fail a run that makes a blocking call on the event loop (blockbuster, as langgraph dev "
        "does); the test suite turns it on.",
    )

    # limits: what one request, run or user may take ---------------------------------------------------------------
    max_body_bytes: int = Field(default=1_000_000, ge=1_024, description="Larger request bodies get 413.")
    body_read_timeout_s: float = Field(
        default=10.0, gt=0, le=600, description="Time to receive a whole request body; a slower one gets 408."
    )
    header_read_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="Time to receive a request's line and headers, from the connection opening or the previous "
        "response; a slower client's connection is closed (408 if it had begun a request).",
    )
    user_max_unfinished_runs: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="At most this many accepted-but-unfinished runs per user, then 429, so that one user cannot "
        "fill the queue for everyone (a cron of a user at the limit waits); unset: only the server's limit.",
    )
    run_retry_budget: int = Field(
        default=10, ge=0, le=1000, description="Retries of transient errors allowed across all nodes of one run."
    )
    run_timeout_s: float = Field(default=600.0, gt=0, le=86_400, description="Wall-clock limit of one run.")

    # budgets: prices, and what runs and users may spend -----------------------------------------------------------
    model_prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description="Prices per provider:model, USD per 1M tokens, added to or replacing the built-in table, e.g. "
        'LOOM_MODEL_PRICES=\'{"openai:gpt-4o-mini": {"input": 0.15, "output": 0.6}}\'.',
    )
    run_budget: Budget | None = Field(
        default=None, description="A ceiling for every run, e.g. LOOM_RUN_BUDGET='{\"max_usd\": 0.5}'."
    )
    assistant_budgets: dict[str, Budget] = Field(
        default_factory=dict,
        description='Per-run ceilings by graph id, e.g. \'{"pipeline": {"max_tokens": 20000}}\'.',
    )
    user_daily_budgets: dict[str, Budget] = Field(
        default_factory=dict,
        description='What each user\'s runs may spend per UTC day together, by user id; "*" for users not listed.',
    )

    # auth: the built-in API keys and the tool permissions each user is granted ------------------------------------
    api_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='User id → API key, e.g. LOOM_API_KEYS=\'{"alice": "sk-…"}\'; empty: one local user.',
    )
    user_permissions: dict[str, list[Grant]] = Field(
        default_factory=dict,
        description='User id → tool permissions the server grants, e.g. LOOM_USER_PERMISSIONS=\'{"alice": ["read", '
        '"write"]}\'; a user not listed gets ["read"]. A run\'s context.permissions can only narrow this.',
    )

    # MCP servers whose tools Loom's agents may use (services/mcp.py) ---------------------------------------------
    mcp_servers: dict[str, McpServer] = Field(
        default_factory=dict,
        description="Name → MCP server whose tools Loom's agents may use, e.g. LOOM_MCP_SERVERS='{\"notes\": "
        '{"transport": "streamable_http", "url": "https://notes.example/mcp", "permission": "read"}}\'.',
    )
    mcp_list_timeout_s: float = Field(default=10.0, gt=0, le=600, description="Time to list one server's tools.")
    mcp_call_timeout_s: float = Field(default=60.0, gt=0, le=3600, description="Time one MCP tool call may take.")
    mcp_tools_ttl_s: float = Field(default=300.0, ge=0, le=86_400, description="How long a tool list is reused.")

    # observability: traces, metrics and logs (server/observability/) ----------------------------------------------
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("LOOM_OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        description="OpenTelemetry collector (OTLP/HTTP); set: traces are exported (the exporter reads the other "
        "OTEL_* variables itself), unset: tracing is off.",
    )
    trace_content: bool = Field(
        default=False, description="Put message content and tool arguments on spans; off: only ids, names, counts."
    )
    metrics: bool = Field(default=True, description="Prometheus metrics at /metrics (API and worker processes).")
    log_format: Literal["text", "json"] = Field(
        default="text", description="json: one JSON object per line with run, thread, user and trace ids."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def secrets(self) -> list[str]:
        """Every configured key, so logs can blank them wherever they appear."""
        keys = [self.openai_api_key, self.azure_openai_api_key, self.tavily_api_key, *self.api_keys.values()]
        return [key.get_secret_value() for key in keys if key is not None and key.get_secret_value()]

    @property
    def default_model(self) -> str:
        if self.model:
            return self.model
        if self.openai_api_key or self.azure_openai_api_key:
            return "openai:gpt-4o-mini"
        return DEFAULT_LOCAL_MODEL

    def model_for(self, role: str) -> str:
        """The ``provider:model`` string for one role (router, writer, coder, judge…)."""
        return self.models.get(role, self.default_model)

    def quotes_tool_results(self, role: str) -> bool:
        if self.quote_tool_results is not None:
            return self.quote_tool_results
        return self.model_for(role).startswith("local:")

    def granted(self, user_id: str) -> tuple[Grant, ...]:
        """What the server lets ``user_id``'s runs do; never taken from a request."""
        return tuple(self.user_permissions.get(user_id, ["read"]))

    def price_of(self, model: str) -> ModelPrice | None:
        """The price of a ``provider:model`` key; None when unknown (a cost is never guessed)."""
        if model.partition(":")[0] in FREE_PROVIDERS:
            return ModelPrice(input=0, output=0)
        prices = {**DEFAULT_MODEL_PRICES, **self.model_prices}
        return prices.get(model) or prices.get(DATED.sub("", model))

    def cost_usd(self, model: str, input_tokens: int, output_tokens: int) -> float | None:
        price = self.price_of(model)
        if price is None:
            return None
        return round((input_tokens * price.input + output_tokens * price.output) / 1_000_000, 10)

    def resolved_checkpoint_url(self) -> str:
        return self.checkpoint_url or f"sqlite:///{self.data_dir / 'checkpoints.sqlite'}"

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'loom.sqlite'}"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def workspaces_dir(self) -> Path:
        return self.data_dir / "workspaces"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after changing env."""
    return Settings()
