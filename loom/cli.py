"""``loom``: list graphs, run one on a thread with live output, inspect and resume threads."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from loom.eval_cli import add_eval_commands
from loom.persistence import open_checkpointer, open_store
from loom.settings import Settings, get_settings
from server.registry import get_spec, graph_specs
from server.store_config import store_options
from server.store_scope import with_caller_store
from state.common import RequestNotDone, RunContext

console = Console()
log = logging.getLogger("loom.server")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.config is not None:  # the server reads it from settings, in this process or a worker's
        os.environ["LOOM_GRAPHS_CONFIG"] = str(args.config.expanduser().resolve())
        get_settings.cache_clear()
    if args.handler is None:  # serve and worker: uvicorn owns the event loop
        return _serve(args)
    try:
        return int(asyncio.run(args.handler(args)) or 0)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    except RequestNotDone as exc:  # the reply said why; the exit status says it too
        console.print(f"\n[red]not done:[/red] {escape(str(exc))}", highlight=False)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loom", description=__doc__)
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
    ):
        sub = command(name, handler, help)
        sub.add_argument("graph", nargs="?" if name == "chat" else None, default="assistant")
        if name == "run":
            sub.add_argument("message")
        _thread_options(sub, required=False)
    for name, handler, help in (
        ("state", _state, "show a thread's current state"),
        ("history", _history, "list a thread's checkpoints, newest first"),
        ("resume", _resume, "continue an interrupted or crashed run on a thread"),
    ):
        sub = command(name, handler, help)
        sub.add_argument("thread")
        sub.add_argument("--graph", default="assistant")
        sub.add_argument("--user", default="demo")
        if name == "resume":
            sub.add_argument("--value", help="JSON answer for a pending interrupt()")
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
    evaluate = command("eval-routing", _eval_routing, "measure the assistant router on the labelled set")
    evaluate.add_argument("--data", default="tests/data/routing.jsonl")
    evaluate.add_argument("--limit", type=int, default=0)
    add_eval_commands(commands)
    return parser


def _thread_options(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--thread", required=required, help="thread id (new one if omitted)")
    parser.add_argument("--user", default="demo", help="user id the run acts for")


async def _graphs(args: argparse.Namespace) -> None:
    table = Table("graph", "target")
    for spec in graph_specs().values():
        table.add_row(spec.graph_id, spec.target)
    console.print(table)


async def _run(args: argparse.Namespace) -> None:
    thread = args.thread or str(uuid.uuid4())
    await _stream_turn(args.graph, thread, args.user, {"messages": [HumanMessage(args.message)]})


async def _chat(args: argparse.Namespace) -> None:
    thread = args.thread or str(uuid.uuid4())
    console.print(f"[dim]graph {args.graph} · thread {thread} · model {get_settings().model_for('router')}[/dim]")
    console.print("[dim]Empty line or Ctrl-D to quit.[/dim]")
    while True:
        try:
            text = console.input("[bold cyan]you>[/bold cyan] ").strip()
        except EOFError:
            return
        if not text:
            return
        await _stream_turn(args.graph, thread, args.user, {"messages": [HumanMessage(text)]})


async def _resume(args: argparse.Namespace) -> None:
    payload: Any = Command(resume=json.loads(args.value)) if args.value is not None else None
    await _stream_turn(args.graph, args.thread, args.user, payload)


async def _stream_turn(graph_id: str, thread: str, user: str, payload: Any) -> None:
    """Stream one turn: tokens as they come, routing and tool activity, then artifacts."""
    settings = get_settings()
    options = await asyncio.to_thread(store_options, settings)
    async with open_checkpointer(settings) as saver, open_store(settings, **options) as store:
        graph = await get_spec(graph_id).build(saver, store)
        config = with_caller_store(RunnableConfig(configurable={"thread_id": thread}), store, user)
        async for mode, data in graph.astream(
            payload, config, context=RunContext(user_id=user), stream_mode=["messages", "custom", "updates"]
        ):
            _print_event(mode, data)
        state = await graph.aget_state(config)
    console.print()
    for artifact in state.values.get("artifacts", [])[-3:]:
        console.print(f"[green]artifact[/green] {artifact['kind']}: {artifact['path']}")
    if state.interrupts:
        for pending in state.interrupts:
            console.print(f"[yellow]waiting for input[/yellow] {json.dumps(pending.value, default=str)}")
        example = '{"decisions": [{"type": "approve"}]}'  # reject: {"type": "reject", "message": "why"}
        value = state.interrupts[0].value
        answer = example if isinstance(value, dict) and "action_requests" in value else "<json>"
        console.print(f"[dim]answer with: loom resume {thread} --graph {graph_id} --value '{answer}'[/dim]")
    console.print(f"[dim]thread {thread}[/dim]")


def _print_event(mode: str, data: Any) -> None:
    if mode == "messages":
        chunk, _metadata = data
        if isinstance(chunk, AIMessage) and isinstance(chunk.content, str):  # a token, or a whole reply
            console.print(chunk.content, end="", markup=False, highlight=False)
        elif isinstance(chunk, ToolMessage):
            console.print(f"\n[magenta]{chunk.name}[/magenta] → {chunk.text[:300]}", highlight=False)
    elif mode == "custom":
        console.print(f"[dim]{json.dumps(data, default=str)}[/dim]")


async def _state(args: argparse.Namespace) -> None:
    async with open_checkpointer(get_settings()) as saver:
        graph = await get_spec(args.graph).build(saver)
        snapshot = await graph.aget_state({"configurable": {"thread_id": args.thread}})
    if not snapshot.values:
        raise KeyError(f"thread {args.thread!r} has no state for graph {args.graph!r}")
    values = {key: value for key, value in snapshot.values.items() if key != "messages"}
    for message in snapshot.values.get("messages", []):
        console.print(f"[bold]{message.type}[/bold]: {message.text[:500]}", highlight=False)
    console.print_json(json.dumps(values, default=str))
    console.print(f"next: {list(snapshot.next)}  checkpoint: {snapshot.config['configurable']['checkpoint_id']}")


async def _history(args: argparse.Namespace) -> None:
    table = Table("checkpoint", "step", "source", "next", "writes")
    async with open_checkpointer(get_settings()) as saver:
        graph = await get_spec(args.graph).build(saver)
        async for snapshot in graph.aget_state_history({"configurable": {"thread_id": args.thread}}):
            metadata: dict[str, Any] = dict(snapshot.metadata or {})
            table.add_row(
                snapshot.config["configurable"]["checkpoint_id"],
                str(metadata.get("step")),
                str(metadata.get("source")),
                ",".join(snapshot.next),
                ",".join((metadata.get("writes") or {}).keys()),
            )
    console.print(table)


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


async def _eval_routing(args: argparse.Namespace) -> None:
    from loom.evals import evaluate_routing

    await evaluate_routing(args.data, args.limit, console)
