"""``loom``: list graphs, run one on a thread with live output, inspect and resume threads.

The CLI is a client of the server's own engine, in process (``server.app.open_services``): a run is admitted,
executed and recorded as an HTTP run is (``server.engine.admission``), and a thread is read as
``GET /threads/{id}/state`` reads it. So a thread made by either side is the other's too, under the ids
clients see, with its owner, status and runs. The CLI executes only the runs it creates; it never claims
runs a server queued.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from loom.eval_cli import add_eval_commands
from loom.persistence import open_checkpointer, open_store
from loom.settings import Settings, get_settings
from server.app import open_services
from server.auth import LOCAL_USER, Caller, User, user_for_key
from server.db import RunRow, new_id
from server.deps import Services, visible_thread
from server.engine import admission
from server.engine.streams import to_jsonable
from server.errors import ApiError
from server.registry import auth_handlers, graph_specs
from server.routes import threads
from server.schemas import CommandBody, HistoryQuery, RunCreate, ThreadCreate
from server.store_config import store_options
from services.paths import artifacts_folder

console = Console(soft_wrap=True)  # the terminal wraps long lines: ids and paths stay whole to copy
log = logging.getLogger("loom.server")
SHOWN_CHARS = 300
"""A tool result or a state message is shown up to this many characters, then "…"."""
STREAMED = ["messages-tuple", "custom"]


class CommandFailed(Exception):
    """The command could not do what was asked; its message says why (exit status 2)."""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.config is not None:  # the server reads it from settings, in this process or a worker's
        os.environ["LOOM_GRAPHS_CONFIG"] = str(args.config.expanduser().resolve())
        get_settings.cache_clear()
    if args.handler is None:  # serve and worker: uvicorn owns the event loop
        return _serve(args)
    try:
        return int(asyncio.run(args.handler(args)) or 0)
    except ApiError as exc:
        console.print(f"[red]error:[/red] {exc.message}", highlight=False)
        return 2
    except ValidationError as exc:  # a value given as JSON that the run's schema refuses
        problem = exc.errors()[0]
        console.print(f"[red]error:[/red] {'.'.join(map(str, problem['loc']))}: {problem['msg']}", highlight=False)
        return 2
    except (CommandFailed, KeyError, ValueError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loom", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(required=True, metavar="command")

    def command(name: str, handler: Any, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        sub.add_argument(
            "--config",
            type=Path,
            help="the project's langgraph.json (default: ./langgraph.json if present, else Loom's own)",
        )
        return sub

    command("graphs", _graphs, "list the graphs in langgraph.json")
    for name, handler, help in (
        ("run", _run, "send one message to a graph and stream the answer"),
        ("chat", _chat, "talk to a graph turn by turn on one thread"),
        ("state", _state, "show a thread's current state"),
        ("history", _history, "list a thread's checkpoints, newest first"),
        ("resume", _resume, "continue an interrupted or crashed run on a thread"),
    ):
        sub = command(name, handler, help)
        if name in ("run", "chat"):
            sub.add_argument("graph", nargs="?" if name == "chat" else None, default="assistant")
            if name == "run":
                sub.add_argument("message", nargs="?", help="the user's message (the graph's input is its messages)")
                sub.add_argument("--input", type=json.loads, help="the graph's input as JSON, instead of a message")
            sub.add_argument("--thread", help="thread id (a new one if omitted; made if it does not exist)")
        else:
            sub.add_argument("thread", help="the thread's id, as clients of the server see it")
        _caller_options(sub)
        if name in ("run", "chat", "resume"):
            sub.add_argument("--context", type=json.loads, help="the graph's context, as JSON")
        if name == "resume":
            sub.add_argument("--value", type=json.loads, help="JSON answer for a pending interrupt()")
        if name == "history":
            sub.add_argument("--limit", type=int, default=20, help="how many checkpoints (default 20)")
    serve = command("serve", None, "start the HTTP API (LangGraph Agent Server shapes)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8123)
    serve.add_argument("--no-workers", action="store_true", help="serve the API only; `loom worker`s run the runs")
    serve.add_argument("--concurrency", type=int, default=None, help="runs this process executes at once")
    worker = command("worker", None, "execute queued runs (scale mode: PostgreSQL + Redis); /ok answers health checks")
    worker.add_argument("--host", default="127.0.0.1")
    worker.add_argument("--port", type=int, default=8124)
    worker.add_argument("--concurrency", type=int, default=None, help="runs this process executes at once")
    database = command("db", _db, "manage the server's tables (threads, runs, crons)")
    database.add_argument("action", choices=["upgrade"], help="upgrade: apply Alembic migrations up to head")
    add_eval_commands(commands)
    return parser


def _caller_options(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--user", help=f"the user whose threads these are (default: {LOCAL_USER!r} without API keys)")
    who.add_argument("--api-key", help="act as the user this API key belongs to (LOOM_API_KEYS), as the server does")


def _caller(settings: Settings, args: argparse.Namespace) -> Caller:
    """The user the command acts for: named, or the owner of an API key, or the server's local user."""
    handlers = auth_handlers()
    if args.api_key is not None:
        if not settings.api_keys:
            raise CommandFailed("--api-key: no API keys are configured (LOOM_API_KEYS); name the user with --user")
        identity = user_for_key(settings, args.api_key)
    elif args.user:
        identity = args.user
    elif settings.api_keys or handlers is not None:
        raise CommandFailed("the server has users of its own (API keys or auth): name one with --user or --api-key")
    else:
        identity = LOCAL_USER
    return Caller(User(identity, identity, tuple(settings.granted(identity))), handlers)


@contextlib.asynccontextmanager
async def _engine(args: argparse.Namespace) -> AsyncIterator[tuple[Services, Caller]]:
    """The server's engine in this process, and the caller the command acts for."""
    settings = get_settings()
    caller = _caller(settings, args)
    # the CLI runs its own runs, also where the server's settings leave running to `loom worker`s
    async with open_services(settings.model_copy(update={"run_workers": True}), claim=False) as loom:
        yield loom, caller


async def _graphs(args: argparse.Namespace) -> None:
    for spec in graph_specs().values():
        console.print(f"{spec.graph_id:<20} {spec.target}", highlight=False)


async def _run(args: argparse.Namespace) -> int:
    thread = _thread_id(args.thread)
    async with _engine(args) as (loom, caller):
        return await _turn(loom, caller, thread, _new_run(args, args.message))


async def _chat(args: argparse.Namespace) -> int:
    thread = _thread_id(args.thread)
    console.print(f"[dim]graph {args.graph} · thread {thread} · model {get_settings().model_for('router')}[/dim]")
    console.print("[dim]Empty line or Ctrl-D to quit.[/dim]")
    async with _engine(args) as (loom, caller):
        while True:
            try:
                text = (await asyncio.to_thread(console.input, "[bold cyan]you>[/bold cyan] ")).strip()
            except EOFError:
                return 0
            if not text:
                return 0
            await _turn(loom, caller, thread, _new_run(args, text))


def _thread_id(given: str | None) -> str:
    """A new id, or the one given if a client could have made it (``POST /threads`` accepts the same ids)."""
    try:
        return ThreadCreate(thread_id=given).thread_id or new_id()
    except ValidationError as exc:
        raise CommandFailed(f"--thread: {exc.errors()[0]['msg']}") from None


def _new_run(args: argparse.Namespace, text: str | None) -> RunCreate:
    """A run of ``args.graph`` with the user's message as input, or ``--input`` (``loom run`` only)."""
    given = getattr(args, "input", None)
    if (text is None) == (given is None):
        raise CommandFailed("give either a message or --input JSON")
    return RunCreate(
        assistant_id=args.graph,
        input=given if text is None else {"messages": [{"role": "user", "content": text}]},
        context=args.context,
        stream_mode=STREAMED,  # type: ignore[arg-type]
        multitask_strategy="reject",  # the CLI runs what it creates: a busy thread is an error, never a queue
        if_not_exists="create",
    )


async def _resume(args: argparse.Namespace) -> int:
    async with _engine(args) as (loom, caller):
        async with loom.sessions() as session:
            thread = await visible_thread(session, args.thread, caller, "read")
        state = await threads.get_state(args.thread, loom, caller)
        if not state["next"] and not state["interrupts"]:
            raise CommandFailed(
                f"thread {args.thread!r} has nothing to resume: no run stopped part-way or waits for an answer"
                f" (status {thread.status})"
            )
        if state["interrupts"] and args.value is None:
            question = json.dumps(state["interrupts"][0]["value"], default=to_jsonable)
            raise CommandFailed(f"thread {args.thread!r} waits for an answer to {question}: give it with --value JSON")
        body = RunCreate(
            assistant_id=thread.graph_id or "",
            command=CommandBody(resume=args.value) if args.value is not None else None,
            context=args.context,
            stream_mode=STREAMED,  # type: ignore[arg-type]
            multitask_strategy="reject",
        )
        return await _turn(loom, caller, args.thread, body)


async def _turn(loom: Services, caller: Caller, thread: str, body: RunCreate) -> int:
    """One run through the engine, printed as it streams: tokens, tool results, custom events; then its end."""
    run = await admission.admit(loom.manager, caller, thread, await loom.prepare(caller.identity, body), None)
    printer = TurnPrinter(loom.settings, caller.identity, thread)
    try:
        async for event in loom.manager.events(run.run_id, known_status=run.status):
            printer.event(event.name, json.loads(event.data))
    except asyncio.CancelledError:  # Ctrl-C: the run stops as a cancelled one, its finished steps kept
        await asyncio.shield(_cancel(loom, run))
        raise
    return printer.ended(body.assistant_id)


async def _cancel(loom: Services, run: RunRow) -> None:
    await loom.manager.cancel(run.run_id)
    await loom.manager.wait(run.run_id)


class TurnPrinter:
    """Prints a run's events; remembers the artifacts its tools made and how it ended."""

    def __init__(self, settings: Settings, user: str, thread: str) -> None:
        self.folder = artifacts_folder(settings, user, thread)
        self.thread = thread
        self.artifacts: list[dict[str, Any]] = []
        self.end: dict[str, Any] = {}

    def event(self, name: str, data: Any) -> None:
        if name == "messages":
            self.message(data[0])
        elif name == "custom":
            console.print(f"[dim]{json.dumps(data, default=to_jsonable)}[/dim]")
        elif name == "error" and data.get("error") == "RequestNotDone":  # the reply said why; the status says so too
            console.print(f"\n[red]not done:[/red] {escape(str(data.get('message')))}", highlight=False)
        elif name == "error":
            console.print(
                f"\n[red]error:[/red] {data.get('error')}: {escape(str(data.get('message')))}", highlight=False
            )
        elif name == "end":
            self.end = data

    def message(self, message: dict[str, Any]) -> None:
        kind, content = message.get("type"), message.get("content")
        if kind in ("ai", "AIMessageChunk") and isinstance(content, str):  # a token, or a whole reply
            console.print(content, end="", markup=False, highlight=False)
        elif kind == "tool":
            text = content if isinstance(content, str) else json.dumps(content, default=to_jsonable)
            console.print(f"\n[magenta]{message.get('name')}[/magenta] → {shortened(text)}", highlight=False)
            artifact = message.get("artifact")
            if isinstance(artifact, dict) and "url" in artifact:
                self.artifacts.append(artifact)

    def ended(self, graph_id: str) -> int:
        """The run's artifacts, pending questions and status; the exit status (1 if the run failed)."""
        console.print()
        for artifact in self.artifacts:
            file = self.folder / str(artifact.get("name"))
            console.print(
                f"[green]artifact[/green] {artifact.get('kind')}: {artifact['url']}  ({file})", highlight=False
            )
        show_questions(self.end.get("interrupts") or [], self.thread)
        status = self.end.get("status", "unknown")
        console.print(f"[dim]thread {self.thread} · graph {graph_id} · run {status}[/dim]", highlight=False)
        return 0 if status in ("success", "interrupted") else 1


def show_questions(interrupts: Sequence[Mapping[str, Any]], thread: str) -> None:
    """The questions a thread waits on (``interrupt()`` values), and how to answer them."""
    for pending in interrupts:
        console.print(f"[yellow]waiting for input[/yellow] {json.dumps(pending['value'], default=to_jsonable)}")
    if interrupts:
        value = interrupts[0]["value"]
        example = '{"decisions": [{"type": "approve"}]}'  # reject: {"type": "reject", "message": "why"}
        answer = example if isinstance(value, dict) and "action_requests" in value else "<json>"
        console.print(f"[dim]answer with: loom resume {thread} --value '{answer}'[/dim]", highlight=False)


def shortened(text: str, limit: int = SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _state(args: argparse.Namespace) -> None:
    async with _engine(args) as (loom, caller):
        view = await threads.get_state(args.thread, loom, caller)
    if view["checkpoint_id"] is None:
        raise CommandFailed(f"thread {args.thread!r} has no state yet: it has had no run")
    values = {key: value for key, value in view["values"].items() if key != "messages"}
    for message in view["values"].get("messages", []):
        console.print(f"[bold]{message.type}[/bold]: {shortened(message.text, 500)}", highlight=False)
    console.print_json(json.dumps(values, default=to_jsonable))
    show_questions(view["interrupts"], args.thread)
    console.print(f"next: {view['next']}  checkpoint: {view['checkpoint_id']}", highlight=False)


async def _history(args: argparse.Namespace) -> None:
    """Full checkpoint ids (to fork from with ``checkpoint_id``); ``writes``: the nodes whose output made it."""
    async with _engine(args) as (loom, caller):
        snapshots = await threads.history(args.thread, HistoryQuery(limit=args.limit), loom, caller)
    rows = [("checkpoint", "step", "source", "next", "writes")]
    for snapshot, parent in zip(snapshots, [*snapshots[1:], None], strict=True):
        metadata = snapshot["metadata"]
        writes = [task["name"] for task in (parent["tasks"] if parent else []) if task["result"] is not None]
        step, source = str(metadata.get("step")), str(metadata.get("source"))
        rows.append((str(snapshot["checkpoint_id"]), step, source, ",".join(snapshot["next"]), ",".join(writes)))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        console.print(f"{line}  {row[4]}", highlight=False)


def _serve(args: argparse.Namespace) -> int:
    """``serve`` (API, and workers unless ``--no-workers``) or ``worker`` (runs only, plus /ok and /info)."""
    import uvicorn

    from server.app import create_app
    from server.http_protocol import head_deadline_protocol
    from server.observability.logs import configure_logging

    worker = not hasattr(args, "no_workers")
    updates: dict[str, Any] = {"run_workers": worker or not args.no_workers}
    if args.concurrency:
        updates["server_concurrency"] = args.concurrency
    settings = get_settings().model_copy(update=updates)
    configure_logging(settings)  # uvicorn's loggers too (log_config=None): one format for the whole process
    listening = _listening(args.host, args.port)
    if listening is None:
        return 2
    log.info("%s", _banner(settings, worker, args.host, args.port))
    app = create_app(settings, api=not worker)
    protocol = head_deadline_protocol(settings.header_read_timeout_s)
    config = uvicorn.Config(app, http=protocol, log_level=settings.log_level.lower(), log_config=None)
    server = uvicorn.Server(config)
    # Once shut down, uvicorn raises the signal that stopped it again: Ctrl-C's as KeyboardInterrupt, and
    # SIGTERM's, by default, killed the process before its last log lines were written (no atexit ran).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[listening])
    return 0 if server.started else 3  # 3: the app did not start (uvicorn's own code for it)


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _banner(settings: Settings, worker: bool, host: str, port: int) -> str:
    """What the process is and where: the model only when Loom's own graphs are served (a project's own graphs
    choose theirs), the API docs only where there is an API."""
    from server.registry import BUNDLED_CONFIG, config_path

    role = "worker" if worker else "API" + ("" if settings.run_workers else " (no workers)")
    served = config_path()
    graphs = f"model {settings.model_for('router')}" if served == BUNDLED_CONFIG else f"graphs of {served}"
    where = "health at /ok" if worker else "API docs at /docs"
    return f"Loom {role} on http://{host}:{port} · {graphs} · data in {settings.data_dir.resolve()} · {where}"


def _listening(host: str, port: int) -> socket.socket | None:
    """The server's socket, bound before the app starts, so a taken port fails at once and says so (uvicorn
    binds after start-up: it logged "startup complete", then the error). None, the error logged, if taken."""
    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as exc:
        listening.close()
        log.error(
            "cannot listen on %s:%s (%s): stop what uses it, or choose another port with --port N "
            "(make run PORT=N)", host, port, exc.strerror or exc,
        )  # fmt: skip
        return None
    return listening


async def _db(args: argparse.Namespace) -> None:
    """``loom db upgrade``: the set-up every server does when it starts: Loom's tables (Alembic migrations),
    the checkpointer's and the store's, each under ``setting_up``'s lock on PostgreSQL."""
    from server.db import open_database

    settings = get_settings()
    url = settings.resolved_database_url()
    options = await asyncio.to_thread(store_options, settings)
    async with open_checkpointer(settings), open_store(settings, **options):
        engine, _ = await open_database(url)
        await engine.dispose()
    console.print(f"[green]database at head[/green] {url.split('@')[-1]}")
