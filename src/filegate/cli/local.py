"""`filegate local up|down|status|env`: the local stack's commands.

They need the local twin (the ``local`` extra); it is imported only once a command runs, so
``filegate --help`` and the AWS-facing commands work without it, and each of these says how
to install it when it is missing (``filegate.extras``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from filegate.cli.render import (
    OutputFormat,
    console,
    console_err,
    key_value_table,
    print_json,
)
from filegate.extras import require_local_twin
from filegate.settings import LocalSettings

if TYPE_CHECKING:
    from filegate.local import state as local_state

app = typer.Typer(
    help="Run the pipeline on this machine: emulator, stack, function.", no_args_is_help=True
)

PortOption = Annotated[
    int | None, typer.Option("--port", help="Emulator port on 127.0.0.1 [default: 4566]")
]
ApiPortOption = Annotated[
    int | None,
    typer.Option("--api-port", help="Upload API port on 127.0.0.1 [default: --port + 1]"),
]
RegionOption = Annotated[str | None, typer.Option("--region", help="AWS region to emulate")]
OutputOption = Annotated[OutputFormat, typer.Option("--output", help="table or json")]


def _show_env(state: local_state.LocalState, output: OutputFormat) -> None:
    if output is OutputFormat.json:
        print_json(state.env())
    else:
        console.print(key_value_table("filegate local stack", state.env()))


@app.command("up")
def up(
    port: PortOption = None,
    api_port: ApiPortOption = None,
    region: RegionOption = None,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background")] = False,
    empty: Annotated[
        bool,
        typer.Option(
            "--empty",
            help="Deploy nothing: wait for `filegate deploy --endpoint-url ...` (a fresh account)",
        ),
    ] = False,
    aws_timing: Annotated[
        bool | None,
        typer.Option(
            "--aws-timing/--local-timing",
            help="A failed message comes back after the queue's visibility timeout (180 s),"
            " as on AWS, not after FILEGATE_LOCAL_RETRY_DELAY [default: local timing, or"
            " FILEGATE_LOCAL_AWS_TIMING]",
            show_default=False,
        ),
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Start the emulator, deploy the stack into it and run the function."""
    require_local_twin("`filegate local up`")
    from filegate.local import stack

    settings = LocalSettings.resolve(
        port=port, region=region, api_port=api_port, aws_timing=aws_timing
    )
    if detach:
        with console_err.status("starting the local stack"):
            state = stack.start_detached(settings, empty=empty)
        _show_env(state, output)
        return

    def ready(state: local_state.LocalState) -> None:
        _show_env(state, output)
        console_err.print("local stack running: Ctrl-C stops it")

    local_stack = stack.LocalStack(
        settings, progress=lambda m: console_err.print(f"• {m}"), empty=empty
    )
    stack.run_until_signalled(local_stack, ready)
    console_err.print("local stack stopped")


@app.command("down")
def down() -> None:
    """Stop the local stack started with --detach (nothing running is not an error)."""
    require_local_twin("`filegate local down`")
    from filegate.local import stack

    stopped = stack.stop_detached(LocalSettings.resolve())
    if stopped is None:
        console_err.print("no local stack is running")
    else:
        console_err.print(f"stopped the local stack on port {stopped.port} (pid {stopped.pid})")


@app.command("status")
def status(output: OutputOption = OutputFormat.table) -> None:
    """Say whether the local stack runs; exit 1 when it does not."""
    require_local_twin("`filegate local status`")
    from filegate.local import state as local_state

    state = local_state.read_state(LocalSettings.resolve())
    running = state is not None and local_state.is_healthy(state)
    document = {"running": running, **(state.env() if state and running else {})}
    if output is OutputFormat.json:
        print_json(document)
    elif running:
        console.print(key_value_table("filegate local stack: running", document))
    else:
        console_err.print("no local stack is running")
    if not running:
        raise typer.Exit(1)


@app.command("env")
def env(output: OutputOption = OutputFormat.table) -> None:
    """Print the endpoint, region, stack name and every stack output."""
    require_local_twin("`filegate local env`")
    from filegate.local import state as local_state

    _show_env(local_state.require_state(LocalSettings.resolve()), output)
