"""`--image` on the CLI: a stand-in on the local emulator, which pulls no image, and warnings for images
Alibaba Cloud FC may not pull (deploy and `deploy --from-mcp-json`).

The emulator (`mcp-fc dev`) runs each function's command on its host, so a deploy there needs no image;
the API says so (`GET /v1/service`: `fc_local`, `default_image`) and the CLI then sends its stand-in. On
Alibaba Cloud every deploy names its image. An ACR image of another region is the API's 422; what no
public source says FC refuses (a registry outside ACR, no tag) is a warning on stderr, and in the events.
"""

from __future__ import annotations

import typer

from deployer.cli.input import InputError
from deployer.client import APIClient
from schemas.limits import image_warnings
from schemas.package import PACKAGE_COMMANDS, parse_package_command


def packaged(command: list[str] | None, *, quiet: bool = False) -> bool:
    """True when the server command is `npx PKG` / `uvx PKG`: with no --image the worker pins it and builds
    a code package (says so on stderr unless `quiet`)."""
    found = parse_package_command(list(command or []))
    if found is None:
        return False
    if not quiet:
        typer.echo(
            f"note: no --image: the worker pins {found.spec} ({found.ecosystem.value}) and builds it into a "
            "code package (FC runtime custom.debian12 with its official layers; on `mcp-fc dev`, built for "
            "this machine's platform and Python)",
            err=True,
        )
    return True


def default_image(api: APIClient) -> str:
    """The local emulator's stand-in image, or an error that says why --image is needed."""
    info = api.service_info()
    image = info.get("default_image") if info.get("fc_local") else None
    if not isinstance(image, str) or not image:
        raise InputError(
            "give --image IMAGE (or `image:` in --file): Function Compute runs the server from a container "
            "image in the function's region (only the local emulator of `mcp-fc dev` does without one), "
            f"unless the server command is {PACKAGE_COMMANDS}, which mcp-fc builds into a code package"
        )
    typer.echo(
        f"note: no --image: the local emulator runs the command on this host and pulls no image; using {image}",
        err=True,
    )
    return image


def warn(image: str | None, *, stand_in: str | None = None) -> None:
    """One `warning:` line on stderr per thing FC may not like about the image (none for the stand-in)."""
    if not image or image == stand_in:
        return
    for warning in image_warnings(image):
        typer.echo(f"warning: {warning}", err=True)
